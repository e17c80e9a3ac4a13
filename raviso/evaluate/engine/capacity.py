"""How many CV trials fit in memory at once, next to the shared labelled matrices: each trial's
peak memory is estimated from its variant's record (gene copies, bytes per isoform), and `cv`
turns the estimates into CPU requests so Ray keeps any mix of trials within a node's memory
(the constants and their measurements: docs/models.md)."""

from __future__ import annotations

from ...models.spec import FFNN_ISOFORM_BYTES, GENE_COPIES

WORKER_BYTES = 600 << 20
EVAL_BYTES = 400 << 20
MEMORY_FRACTION = 0.65


def trial_memory_bytes(variant: str, n_train: int, n_genes: int, n_isoforms: int) -> int:
    """Estimated peak private memory of one trial of `variant` (see the module docstring; a tuned
    column "<variant>@tuned" is its variant)."""
    from ...models.training import PREMADE_TARGET_BYTES
    from ...models.variants import spec, variant_needs

    try:
        rec, needs = spec(variant), variant_needs(variant)
    except Exception:          # noqa: BLE001 - an unknown variant is reported elsewhere
        rec, needs = None, {"genes"}
    copies = rec.gene_copies if rec else GENE_COPIES
    b = WORKER_BYTES + EVAL_BYTES
    if "genes" in needs:
        b += int(copies * n_train * n_genes * 4)
    if rec is None or rec.isoform_bytes:
        b += (rec.isoform_bytes if rec else FFNN_ISOFORM_BYTES) * n_isoforms
        # small target sets are copied once as float32 (`training.target_getter`); a variant
        # with an inner early-stopping split holds each part as its own copy
        parts = (0.85, 0.15) if rec is not None and rec.inner_split else (1.0,)
        for part in parts:
            copy = int(part * n_train) * n_isoforms * 4
            b += copy if copy <= PREMADE_TARGET_BYTES else 0
    return int(b)


def total_memory_bytes() -> int:
    return int(__import__("os").sysconf("SC_PAGE_SIZE") * __import__("os").sysconf("SC_PHYS_PAGES"))


def cpus_by_memory(variants, n_train: int, n_genes: int, n_isoforms: int, *, shared_bytes: int,
                   node_cpus: int, cpus_per_trial: float,
                   total_bytes: int | None = None) -> tuple[dict, dict]:
    """CPUs each variant's trials ask Ray for, so that any mix of trials Ray packs onto a node fits
    that node's memory budget ({variant: cpus}, the inputs for results.json).

    Every CPU of a node carries an equal slice of the budget (`MEMORY_FRACTION` of RAM less the
    shared
    mapped matrices); a trial asks for as many CPUs as its estimated footprint needs slices (whole
    CPUs above one: Ray's rule for resource quantities), at least `cpus_per_trial`, at most the
    node's CPUs. Ray's CPU accounting then bounds the memory of whatever runs together: a node's
    trials hold at most `node_cpus` slices, however they mix. A heavy variant (share_net at course
    width) runs with more torch threads and fewer at a time while the light ones (baselines,
    vae_ffnn) still pack as the cores allow; the cores a heavy trial holds are its threads, so
    none sits idle. The budget is this (the driver's) machine's; a cluster's worker
    nodes are taken to be alike."""
    import math

    total = total_memory_bytes() if total_bytes is None else int(total_bytes)
    budget = MEMORY_FRACTION * total - shared_bytes
    node_cpus = max(1, int(node_cpus))
    per_cpu = budget / node_cpus
    most = max(float(node_cpus), float(cpus_per_trial))
    gb = 1 << 30
    cpus, trial_gb = {}, {}
    for v in variants:
        need = trial_memory_bytes(v, n_train, n_genes, n_isoforms)
        c = max(float(cpus_per_trial), need / per_cpu if per_cpu > 0 else most)
        c = float(math.ceil(c - 1e-9)) if c > 1 else math.ceil(c * 100) / 100
        cpus[v] = min(most, c)
        trial_gb[v] = round(need / gb, 2)
    return cpus, {"trial_gb": trial_gb,
                  "shared_gb": round(shared_bytes / gb, 2), "budget_gb": round(budget / gb, 2),
                  "total_gb": round(total / gb, 2), "node_cpus": node_cpus}


def trial_cpus(data, folds, variants, cpus_per_trial: float) -> tuple[dict, dict]:
    """`cpus_by_memory` for a CV: `data` (`Labelled`) split by `folds`, on the connected Ray. The
    shared bytes are the mapped matrices every trial reads (of truth, only the validation rows)."""
    import numpy as np

    from ...core.ray_session import node_cpus

    n_train = int(len(folds.fold) - np.bincount(folds.fold).min())
    shared = data.genes.nbytes + data.isoforms.nbytes
    if data.truth is not None:
        shared += data.truth.nbytes // folds.k    # only the validation rows' truth is read
    return cpus_by_memory(variants, n_train, data.genes.shape[1], data.isoforms.shape[1],
                          shared_bytes=shared, node_cpus=node_cpus(),
                          cpus_per_trial=cpus_per_trial)


class TrialResources:
    """Tune's per-trial resource request (called with the trial's config): the CPUs of the trial's
    variant, plus its GPUs. A module-level class rather than a closure, so that Tune's experiment
    state pickles it by reference."""

    def __init__(self, cpus: dict, gpu: dict):
        self.cpus, self.gpu = dict(cpus), dict(gpu)

    def __call__(self, config: dict):
        from ray.tune.execution.placement_groups import resource_dict_to_pg_factory

        from .jobs import members        # a batch asks for what its heaviest member needs

        cpus = max(self.cpus[v] for v in members(config["job"]))
        return resource_dict_to_pg_factory({"cpu": cpus, **self.gpu})
