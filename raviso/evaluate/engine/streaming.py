"""Trial metrics accumulated over row chunks of the validation fold, so no full prediction matrix
is held; one pass gives exactly the keys of the two-pass metrics. Memory and numerics:
docs/statistics.md.
"""

from __future__ import annotations

import numpy as np

from ...core.metrics import add_moments, tiny_ss, column_blocks, metrics_dict


class StreamingMetrics:
    """Accumulate `evaluate`'s metrics over row chunks; `result()` returns the same dict."""

    def __init__(self, train_mean: np.ndarray, has_truth: bool = False):
        self.shift = np.asarray(train_mean, np.float64)
        m = len(self.shift)
        self.sums = np.zeros((5, m), np.float64)      # S_p, S_y, S_pp, S_yy, S_py
        self.has_truth = has_truth
        self.per_sample: list[np.ndarray] = []
        self.base: list[np.ndarray] = []
        self.floor: list[np.ndarray] = []
        self.vs_truth: list[np.ndarray] = []
        self.n = 0

    def add(self, pred: np.ndarray, Y: np.ndarray, truth: np.ndarray | None = None) -> None:
        if pred.shape != Y.shape or pred.shape[1] != len(self.shift):
            raise ValueError(f"prediction shape {pred.shape} != observed shape {Y.shape}")
        k, m = Y.shape
        err, base = np.zeros(k), np.zeros(k)
        floor, vt = (np.zeros(k), np.zeros(k)) if self.has_truth else (None, None)
        for cols in column_blocks(k, m):
            s = self.shift[cols]
            p = pred[:, cols].astype(np.float64) - s
            y = Y[:, cols].astype(np.float64) - s
            d = p - y
            err += np.einsum("ij,ij->i", d, d)
            base += np.einsum("ij,ij->i", y, y)       # the mean baseline predicts the shift
            add_moments(self.sums[:, cols], p, y)
            if self.has_truth:
                t = truth[:, cols].astype(np.float64) - s
                floor += np.einsum("ij,ij->i", t - y, t - y)
                vt += np.einsum("ij,ij->i", p - t, p - t)
        self.per_sample.append(err / m)
        self.base.append(base / m)
        if self.has_truth:
            self.floor.append(floor / m)
            self.vs_truth.append(vt / m)
        self.n += k

    def pearson(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        sp, sy, spp, syy, spy = self.sums
        vyy = syy - sy * sy / n
        vpp = spp - sp * sp / n
        cpy = spy - sp * sy / n
        ok = vyy > tiny_ss(n)
        both = ok & (vpp > tiny_ss(n))
        r = np.zeros(len(sp))
        r[both] = cpy[both] / np.sqrt(vpp[both] * vyy[both])
        return np.clip(r, -1.0, 1.0), ok

    def result(self) -> dict:
        r, defined = self.pearson()
        return metrics_dict(
            np.concatenate(self.per_sample), float(np.concatenate(self.base).mean()), r, defined,
            float(np.concatenate(self.floor).mean()) if self.has_truth else None,
            float(np.concatenate(self.vs_truth).mean()) if self.has_truth else None)


def predict_rows_per_chunk(n_isoforms: int, chunk_bytes: int = 64 << 20) -> int:
    """Validation rows predicted at once: ~64 MB of float32 predictions per chunk."""
    return max(1, chunk_bytes // (4 * max(1, n_isoforms)))


def evaluate_streaming(model, data, val_idx: np.ndarray, train_mean: np.ndarray) -> dict:
    """Predict `val_idx` in row chunks and accumulate the metrics (see the module docstring)."""
    acc = StreamingMetrics(train_mean, has_truth=data.truth is not None)
    step = predict_rows_per_chunk(data.isoforms.shape[1])
    for s in range(0, len(val_idx), step):
        rows = val_idx[s:s + step]
        pred = model.predict(data, rows)
        acc.add(pred, data.isoforms[rows], None if data.truth is None else data.truth[rows])
    return acc.result()
