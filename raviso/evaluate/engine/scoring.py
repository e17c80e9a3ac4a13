"""Where a trial's error is: by expression level, by an isoform's role in its gene, and how well it
follows samples WITHIN a tissue, accumulated over row chunks of the validation fold like the
trial's other metrics. The definitions and why these three: docs/statistics.md.
"""

from __future__ import annotations

import numpy as np

from ...core.metrics import LEVEL_EDGES, LEVELS, tiny_ss, column_blocks

ROLES = ("dominant", "minor", "single", "unmapped")


def isoform_roles(train_mean: np.ndarray, isoform_gene: np.ndarray) -> np.ndarray:
    """(I,) index into ROLES for every isoform (see the module docstring)."""
    gene = np.asarray(isoform_gene, np.int64)
    mean = np.asarray(train_mean, np.float64)
    role = np.full(len(gene), ROLES.index("unmapped"))
    mapped = np.flatnonzero(gene >= 0)
    if len(mapped) == 0:
        return role
    order = mapped[np.lexsort((np.arange(len(mapped)), -mean[mapped], gene[mapped]))]
    first = np.ones(len(order), bool)
    first[1:] = gene[order[1:]] != gene[order[:-1]]
    counts = np.bincount(gene[mapped])
    role[order] = np.where(first, ROLES.index("dominant"), ROLES.index("minor"))
    role[mapped[counts[gene[mapped]] == 1]] = ROLES.index("single")
    return role


class Breakdown:
    """Accumulate the breakdown of one trial; ``add`` row chunks, then ``result()``."""

    def __init__(self, train_mean: np.ndarray, isoform_gene: np.ndarray):
        self.shift = np.asarray(train_mean, np.float64)
        m = len(self.shift)
        self.level = np.searchsorted(LEVEL_EDGES, self.shift, side="right")
        self.role = isoform_roles(self.shift, isoform_gene)
        self.sse = np.zeros(m)
        self.sums = np.zeros((3, m))              # S_pp, S_yy, S_py (shifted)
        self.by_tissue: dict[str, list] = {}      # tissue -> [n, S_p (m,), S_y (m,)]
        self.n = 0

    def add(self, pred: np.ndarray, Y: np.ndarray, tissue) -> None:
        k, m = Y.shape
        tissue = np.asarray(tissue).astype(str)
        names, inverse = np.unique(tissue, return_inverse=True)
        for t, c in zip(names, np.bincount(inverse)):
            self.by_tissue.setdefault(t, [0, np.zeros(m), np.zeros(m)])[0] += int(c)
        for cols in column_blocks(k, m):
            p = pred[:, cols].astype(np.float64) - self.shift[cols]
            y = Y[:, cols].astype(np.float64) - self.shift[cols]
            self.sse[cols] += np.einsum("ij,ij->j", p - y, p - y)
            self.sums[0, cols] += np.einsum("ij,ij->j", p, p)
            self.sums[1, cols] += np.einsum("ij,ij->j", y, y)
            self.sums[2, cols] += np.einsum("ij,ij->j", p, y)
            for j, t in enumerate(names):
                rows = inverse == j
                acc = self.by_tissue[t]
                acc[1][cols] += p[rows].sum(axis=0)
                acc[2][cols] += y[rows].sum(axis=0)
        self.n += k

    def within_tissue_r(self) -> tuple[np.ndarray, np.ndarray]:
        """(r, defined) per isoform, pooled over tissues after centring on each tissue's mean."""
        cpp, cyy, cpy = self.sums.copy()
        for n_t, sp, sy in self.by_tissue.values():
            cpp -= sp * sp / n_t
            cyy -= sy * sy / n_t
            cpy -= sp * sy / n_t
        ok = cyy > tiny_ss(self.n)
        both = ok & (cpp > tiny_ss(self.n))
        r = np.zeros(len(cpp))
        r[both] = cpy[both] / np.sqrt(cpp[both] * cyy[both])
        return np.clip(r, -1.0, 1.0), ok

    def _by(self, index: np.ndarray, labels) -> tuple[dict, dict]:
        mse, count = {}, {}
        for j, label in enumerate(labels):
            sel = index == j
            count[label] = int(sel.sum())
            mse[label] = float(self.sse[sel].sum() / (sel.sum() * self.n)) if sel.any() else None
        return mse, count

    def result(self) -> dict:
        r, ok = self.within_tissue_r()
        by_level, n_level = self._by(self.level, LEVELS)
        by_role, n_role = self._by(self.role, ROLES)
        return {"within_tissue_median_r": float(np.median(r[ok])) if ok.any() else None,
                "within_tissue_n_isoforms": int(ok.sum()),
                "mse_by_level": by_level, "isoforms_by_level": n_level,
                "mse_by_role": by_role, "isoforms_by_role": n_role}


class Tap:
    """A predictor wrapper that feeds every block it predicts into a `Breakdown`, so the trial's
    streaming evaluation (`raviso.evaluate.engine.streaming`) computes the breakdown in the same
    pass, with no second prediction."""

    def __init__(self, model, breakdown: Breakdown):
        self.model, self.breakdown = model, breakdown

    def predict(self, data, rows):
        pred = self.model.predict(data, rows)
        self.breakdown.add(pred, data.isoforms[rows], data.tissue[rows])
        return pred

    def __getattr__(self, name):
        return getattr(self.model, name)


def training_curve(model) -> dict | None:
    """Per-epoch ``train_loss`` and ``val_loss`` (the inner early-stopping split; empty without
    one) from a fitted model's ``history_``, for the report's training curves; None for models
    that do not train by epochs (the baselines)."""
    hist = getattr(model, "history_", None) or {}
    train = [float(x) for x in hist.get("train_loss") or []]
    if not train:
        return None
    return {"train_loss": train, "val_loss": [float(x) for x in hist.get("val_loss") or []]}


def evaluate_trial(model, data, train_idx: np.ndarray, val_idx: np.ndarray, taps=()) -> dict:
    """A fitted model's trial metrics (`raviso.evaluate.engine.streaming`, predicted and scored in
    row chunks), plus ``breakdown`` (fed by the same prediction pass) and ``history``. `taps`:
    more accumulators fed by that pass (``start(train_mean, isoform_gene)``, then
    ``add(pred, Y, tissue)``)."""
    from ...core.metrics import column_mean
    from .streaming import evaluate_streaming

    train_mean = column_mean(data.isoforms, train_idx)
    breakdown = Breakdown(train_mean, data.isoform_gene)
    tapped = Tap(model, breakdown)
    for tap in taps:
        tap.start(train_mean, data.isoform_gene)
        tapped = Tap(tapped, tap)
    out = evaluate_streaming(tapped, data, val_idx, train_mean)
    out.update(breakdown=breakdown.result(), history=training_curve(model))
    return out
