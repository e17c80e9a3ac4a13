"""How many CV trials fit in memory at once, next to the shared labelled matrices.

`raviso cv` used to run as many trials as the cluster has CPUs. At GTEx width that is wrong in the
other direction from CPUs: a `pca_ridge` trial holds its training rows' genes (13,885 x 18,965
float32 = 1.05 GB) plus sklearn's centred copy, while the memory-mapped isoform matrix (float16:
5.45 GB) and genes (1.3 GB) sit once in the page cache for everyone. `max_trials_by_memory` caps the
concurrency at what fits in `MEMORY_FRACTION` of the machine after those shared pages:

    per-trial bytes = WORKER_BYTES (a Ray worker with torch imported)
                    + EVAL_BYTES (streamed evaluation: one chunk of predictions, float64 blocks)
                    + copies x n_train x n_genes x 4   for variants that read the genes (their
                      training rows + one centred/standardised copy + PCA work: 2.2 copies;
                      share_net / ffnn_plus 3.1, measured)
                    + per-isoform bytes x n_isoforms   for the neural variants: 16 x 64 x 4 for
                      the paper's FFNNs (weights, gradients, two Adam moments of the output
                      layer and a (64, n_isoforms) batch); share_net 8,200 (measured: its U and
                      R context weights with gradients, Adam moments and the early-stopping
                      snapshot, plus the segment softmax's (64, n_isoforms) temporaries);
                      ffnn_plus 10,400 (measured the same way: a 256-wide hidden layer plus
                      the linear skip; 2.02 / 2.37 GB at 1,200 / 2,400 rows)

                    + the float32 copies of targets small enough to premade (<= 512 MB each)

share_net's two constants come from one fit (epochs 1) at full width on 1,200 and 2,400 training
rows (peak RSS above the data: 1.54 and 1.82 GB before its targets went through
`ffnn_fit.target_getter`; 1.67 and 2.08 GB after, the difference being the premade float32 copy
of the early-stopping rows' targets); at course width they give 5.5 GB per trial, and
two such trials beside the shared matrices match the 18.7 GB measured in the session-3 run
(bench/README.md, scale). The largest variant's estimate is used for every slot (Tune starts
trials in any order). `MEMORY_FRACTION` leaves a third of the machine to the driver, the OS and
the page cache, so a course-width CV on 24 GB stays under 16 GB. `--max-concurrent` overrides
the choice; the choice and its inputs go into results.json (``tune.memory``).
"""

from __future__ import annotations

WORKER_BYTES = 600 << 20
EVAL_BYTES = 400 << 20
GENE_COPIES = 2.2
OUTPUT_WIDTH = 64            # output layer fan-in (32 for the paper's FFNNs, with headroom)
MEMORY_FRACTION = 0.65
# variants whose footprint differs from the defaults above: (gene copies, bytes per isoform)
FOOTPRINT = {"share_net": (3.1, 8_200), "ffnn_plus": (3.1, 10_400)}
NOT_NEURAL = ("mean", "tissue_mean", "isoform_fraction", "isoform_fraction_fit", "pca_ridge")


def trial_memory_bytes(variant: str, n_train: int, n_genes: int, n_isoforms: int) -> int:
    """Estimated peak private memory of one trial of `variant` (see the module docstring)."""
    from ..models.variants import variant_needs

    try:
        needs = variant_needs(variant)
    except Exception:          # noqa: BLE001 - an unknown variant is reported elsewhere
        needs = {"genes"}
    from ..models.ffnn_fit import PREMADE_TARGET_BYTES

    copies, per_isoform = FOOTPRINT.get(variant, (GENE_COPIES, 16 * OUTPUT_WIDTH * 4))
    b = WORKER_BYTES + EVAL_BYTES
    if "genes" in needs:
        b += int(copies * n_train * n_genes * 4)
    if variant not in NOT_NEURAL:
        b += per_isoform * n_isoforms
        # small target sets are copied once as float32 (`ffnn_fit.target_getter`); share_net
        # and ffnn_plus split the training rows 85/15 for early stopping, each part its own copy
        parts = (0.85, 0.15) if variant in FOOTPRINT else (1.0,)
        for part in parts:
            copy = int(part * n_train) * n_isoforms * 4
            b += copy if copy <= PREMADE_TARGET_BYTES else 0
    return int(b)


def total_memory_bytes() -> int:
    return int(__import__("os").sysconf("SC_PAGE_SIZE") * __import__("os").sysconf("SC_PHYS_PAGES"))


def max_trials_by_memory(variants, n_train: int, n_genes: int, n_isoforms: int,
                         shared_bytes: int, total_bytes: int | None = None,
                         fraction: float = MEMORY_FRACTION) -> tuple[int, dict]:
    """(how many trials fit at once, the inputs of that choice for results.json)."""
    total = total_memory_bytes() if total_bytes is None else int(total_bytes)
    per = max(trial_memory_bytes(v, n_train, n_genes, n_isoforms) for v in variants)
    budget = fraction * total - shared_bytes
    n = max(1, int(budget // per))
    gb = 1 << 30
    return n, {"per_trial_gb": round(per / gb, 2), "shared_gb": round(shared_bytes / gb, 2),
               "budget_gb": round(budget / gb, 2), "total_gb": round(total / gb, 2),
               "max_trials_by_memory": n}


def cpus_per_trial_when_memory_bound(max_concurrent: int, by_cores: int, cpus_per_trial: float,
                                     cluster_cpus: int, node_cpus: int) -> float:
    """CPUs (= torch threads) per trial: as asked, unless memory rather than cores caps the
    concurrent trials (`max_concurrent` < `by_cores`); then the cores that would sit idle go to
    the running trials, up to one node's CPUs (a trial runs on one node). Measured: share_net at
    course width trains 47 rows/s on 1 thread, 68 on 2 (bench/README.md, scale)."""
    if max_concurrent >= by_cores:
        return cpus_per_trial
    return float(max(cpus_per_trial, min(node_cpus, cluster_cpus // max(1, max_concurrent))))
