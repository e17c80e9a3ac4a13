"""Validation metrics of one trial (one fold x one variant): per-sample MSE, R^2 against the
training-mean baseline, per-isoform Pearson r, and noise-floor ratios on synthetic data, walked in
column blocks with float64 accumulators. Definitions: docs/internals.md."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK_BYTES = 64 << 20   # float64 working set per block
# Expression levels (log2(TPM+1) of the training mean) that errors are broken down by.
LEVEL_EDGES = (0.1, 1.0, 3.0, 6.0)
LEVELS = ("<0.1", "0.1-1", "1-3", "3-6", ">=6")


def column_blocks(n_rows: int, n_cols: int, block_bytes: int | None = None) -> Iterator[slice]:
    """Slices over columns so that an (n_rows, block) float64 array stays under `block_bytes`
    (default: the module's BLOCK_BYTES, read at call time so tests can shrink it)."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    width = max(1, block_bytes // (8 * max(1, n_rows)))
    for start in range(0, n_cols, width):
        yield slice(start, min(start + width, n_cols))


def column_mean(X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-column mean of ``X[rows]`` (all rows when None), float64 accumulation, float64 out."""
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("column_mean of zero rows")
    out = np.empty(X.shape[1], np.float64)
    for cols in column_blocks(len(rows), X.shape[1]):
        out[cols] = X[rows, cols].astype(np.float64).mean(axis=0)
    return out


def column_std(X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-column population standard deviation of ``X[rows]``, float64, in column blocks."""
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
    out = np.empty(X.shape[1], np.float64)
    for cols in column_blocks(len(rows), X.shape[1]):
        out[cols] = X[rows, cols].astype(np.float64).std(axis=0)
    return out


def per_sample_mse(pred: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(n,) float64: mean over isoforms of the squared error, for each sample (row)."""
    _check_shapes(pred, Y)
    acc = np.zeros(Y.shape[0], np.float64)
    for cols in column_blocks(*Y.shape):
        d = pred[:, cols].astype(np.float64) - Y[:, cols]
        acc += np.einsum("ij,ij->i", d, d)
    return acc / Y.shape[1]


def per_isoform_pearson(pred: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, defined): per-column Pearson r over rows; ``defined`` is False where Y is constant.
    Where only the prediction is constant, r is 0 (see the module docstring)."""
    _check_shapes(pred, Y)
    r = np.zeros(Y.shape[1], np.float64)
    defined = np.zeros(Y.shape[1], bool)
    for cols in column_blocks(*Y.shape):
        y = Y[:, cols].astype(np.float64)
        p = pred[:, cols].astype(np.float64)
        y -= y.mean(axis=0)
        p -= p.mean(axis=0)
        syy = np.einsum("ij,ij->j", y, y)
        spp = np.einsum("ij,ij->j", p, p)
        spy = np.einsum("ij,ij->j", p, y)
        ok = syy > tiny_ss(Y.shape[0])
        defined[cols] = ok
        both = ok & (spp > tiny_ss(Y.shape[0]))
        rb = np.zeros(len(syy))
        rb[both] = spy[both] / np.sqrt(spp[both] * syy[both])
        r[cols] = np.clip(rb, -1.0, 1.0)
    return r, defined


def evaluate(pred: np.ndarray, Y: np.ndarray, train_mean: np.ndarray,
             truth: np.ndarray | None = None) -> dict:
    """All metrics of one trial; see the module docstring. ``train_mean``: per-isoform mean of the
    TRAINING fold (`column_mean(isoforms, train_idx)`). Returns floats plus ``per_sample``
    (an array)."""
    per_sample = per_sample_mse(pred, Y)
    baseline = np.broadcast_to(np.asarray(train_mean, np.float64), Y.shape)
    r, defined = per_isoform_pearson(pred, Y)
    floor = None if truth is None else float(per_sample_mse(truth, Y).mean())
    vs_truth = None if truth is None else float(per_sample_mse(pred, truth).mean())
    return metrics_dict(per_sample, float(per_sample_mse(baseline, Y).mean()), r, defined,
                        floor, vs_truth)


def metrics_dict(per_sample: np.ndarray, mse_mean: float, r: np.ndarray, defined: np.ndarray,
                 floor: float | None = None, vs_truth: float | None = None) -> dict:
    """The trial metrics (module docstring) from their ingredients; shared by `evaluate` and the
    streamed `raviso.evaluate.engine.streaming`, so both return the same keys computed alike."""
    mse = float(per_sample.mean())
    rd = r[defined]
    out = {
        "mse": mse,
        "mse_mean_baseline": mse_mean,
        "r2": 1.0 - mse / mse_mean if mse_mean > 0 else float("nan"),
        "median_pearson": float(np.median(rd)) if len(rd) else float("nan"),
        "frac_r_gt_05": float((rd > 0.5).mean()) if len(rd) else float("nan"),
        "n_isoforms_r": int(defined.sum()),
        "n_isoforms_excluded": int((~defined).sum()),
        "n_samples": int(len(per_sample)),
        "per_sample": per_sample,
    }
    if floor is not None:
        out.update({
            "noise_floor": floor,
            "mse_over_noise_floor": mse / floor if floor > 0 else float("nan"),
            "mse_excess": mse - floor,
            "mse_vs_truth": vs_truth,
        })
    return out


def add_moments(S: np.ndarray, p: np.ndarray, y: np.ndarray) -> None:
    """Add a block's column sums of p, y, p^2, y^2 and p*y to the (5, block) view `S`: the
    streamed form of per-isoform Pearson r (shifted values keep it exact in float64)."""
    S[0] += p.sum(axis=0)
    S[1] += y.sum(axis=0)
    S[2] += np.einsum("ij,ij->j", p, p)
    S[3] += np.einsum("ij,ij->j", y, y)
    S[4] += np.einsum("ij,ij->j", p, y)


def tiny_ss(n_rows: int) -> float:
    # a sum of squared deviations this small is rounding noise of a constant column
    return 1e-12 * max(1, n_rows)


def _check_shapes(pred: np.ndarray, Y: np.ndarray) -> None:
    if pred.shape != Y.shape:
        raise ValueError(f"prediction shape {pred.shape} != observed shape {Y.shape}")
