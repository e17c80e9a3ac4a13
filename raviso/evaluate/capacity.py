"""How many CV trials fit in memory at once, next to the shared labelled matrices.

`raviso cv` used to run as many trials as the cluster has CPUs. At GTEx width that is wrong in the
other direction from CPUs: a `pca_ridge` trial holds its training rows' genes (13,885 x 18,965
float32 = 1.05 GB) plus sklearn's centred copy, while the memory-mapped isoform matrix (float16:
5.45 GB) and genes (1.3 GB) sit once in the page cache for everyone. `max_trials_by_memory` caps the
concurrency at what fits in `MEMORY_FRACTION` of the machine after those shared pages:

    per-trial bytes = WORKER_BYTES (a Ray worker with torch imported)
                    + EVAL_BYTES (streamed evaluation: one chunk of predictions, float64 blocks)
                    + 2.2 x n_train x n_genes x 4   for variants that read the genes
                      (their training rows + one centred/standardised copy + PCA work)
                    + 16 x n_isoforms x width x 4   for the neural variants (weights, gradients,
                      two Adam moments of the output layer) and a (64, n_isoforms) batch

The largest variant's estimate is used for every slot (Tune starts trials in any order). Measured
peaks at course width are in bench/README.md (scale section); the estimates sit above them.
`--max-concurrent` overrides the choice; the choice and its inputs go into results.json
(``tune.memory``).
"""

from __future__ import annotations

WORKER_BYTES = 600 << 20
EVAL_BYTES = 400 << 20
GENE_COPIES = 2.2
OUTPUT_WIDTH = 64            # output layer fan-in (32 for the paper's FFNNs; share_net's context)
MEMORY_FRACTION = 0.8


def trial_memory_bytes(variant: str, n_train: int, n_genes: int, n_isoforms: int) -> int:
    """Estimated peak private memory of one trial of `variant` (see the module docstring)."""
    from ..models.variants import variant_needs

    try:
        needs = variant_needs(variant)
    except Exception:          # noqa: BLE001 - an unknown variant is reported elsewhere
        needs = {"genes"}
    b = WORKER_BYTES + EVAL_BYTES
    if "genes" in needs:
        b += int(GENE_COPIES * n_train * n_genes * 4)
    if variant not in ("mean", "tissue_mean", "isoform_fraction", "isoform_fraction_fit",
                       "pca_ridge"):
        b += 16 * n_isoforms * OUTPUT_WIDTH * 4
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
