"""Baselines that see BOTH the genes and the tissue, as raviso's own models do.

A model that starts from [genes, tissue] must be compared with the cheap predictors that use the
same two inputs, or its margin over "the best baseline" partly measures the tissue input alone:
- `PCATissueRidgeBaseline` ("pca_tissue_ridge"): ridge regression on [the per-fold PCA of the
  genes exactly as `pca_ridge` makes it, the tissue one-hot x c]. One penalty for all isoforms,
  chosen with c by exact leave-one-out error over (c, alpha) grids (`ridge_select_fit`). The
  scale c matters because one penalty shrinks a one-hot column of scale 1 far more than a PCA
  score column of variance ~10-100; choosing it by leave-one-out keeps the baseline tuning-free.
  A tissue with no training rows gets an all-zero one-hot (the intercept: an average tissue).
- `IsoformFractionTissueBaseline` ("isoform_fraction_tissue"): `isoform_fraction_fit`'s share
  fitted PER TISSUE on that tissue's training rows and shrunk towards the global share with the
  empirical-Bayes weight ``n_t / (n_t + k)`` (k = `SHRINK_ROWS` training rows, a documented
  constant: a tissue with k rows gets half its own share, half the global one). A tissue never
  seen in training, or whose rows never express the isoform's gene, gets the global share.
Both fit on the training rows only.
"""

from __future__ import annotations

import numpy as np

from ...core.metrics import column_blocks, column_mean
from ...data.labelled import Labelled
from .standard import (DEFAULT_ALPHAS, FIT_SHARE_ROWS, fit_log_shares, fit_pca, pca_transform,
    ridge_select_fit, tpm)

TISSUE_SCALES = (1.0, 3.0, 10.0, 30.0)
SHRINK_ROWS = 5.0
TISSUE_SHARE_ROWS = 500      # per tissue: bounds the cost at GTEx scale (54 tissues)


def _rows(idx) -> np.ndarray:
    return np.asarray(idx, dtype=np.int64)


def _tissues(data: Labelled) -> np.ndarray:
    if data.tissue is None:
        return np.full(data.n, "", dtype=object)
    return np.asarray(data.tissue)


def one_hot(tissue: np.ndarray, classes: list) -> np.ndarray:
    """(n, len(classes)) float32 indicator; a tissue not in `classes` gets a zero row."""
    pos = {t: k for k, t in enumerate(classes)}
    out = np.zeros((len(tissue), len(classes)), np.float32)
    for i, t in enumerate(tissue):
        k = pos.get(t)
        if k is not None:
            out[i, k] = 1.0
    return out


class PCATissueRidgeBaseline:
    """[per-fold PCA of the genes, tissue one-hot x c] -> ridge; (c, alpha) by leave-one-out."""

    def __init__(self, name: str = "pca_tissue_ridge", n_components: int = 256,
                 alphas=DEFAULT_ALPHAS, tissue_scales=TISSUE_SCALES, seed: int = 0):
        self.name = name
        self.n_components = int(n_components)
        self.alphas = tuple(alphas)
        self.tissue_scales = tuple(float(c) for c in tissue_scales)
        self.seed = int(seed)

    def _features(self, data: Labelled, rows: np.ndarray, scale: float) -> np.ndarray:
        Z = pca_transform(data.genes[rows], self.pca_mean_, self.components_)
        return np.concatenate([Z, scale * one_hot(_tissues(data)[rows], self.tissues_)], axis=1)

    def fit(self, data: Labelled, train_idx) -> "PCATissueRidgeBaseline":
        rows = _rows(train_idx)
        X = data.genes[rows]
        self.pca_mean_, self.components_ = fit_pca(X, self.n_components, self.seed)
        del X
        self.tissues_ = sorted(set(_tissues(data)[rows].tolist()))
        best = None
        self.loo_ = {}
        for c in self.tissue_scales:
            fitted = ridge_select_fit(self._features(data, rows, c), data.isoforms, self.alphas,
                                      rows)
            self.loo_[c] = fitted[1]
            if best is None or fitted[1].min() < best[1][1].min():
                best = (c, fitted)
        self.tissue_scale_, (self.alpha_, _, z_mean, self.coef_, y_mean) = best
        self.intercept_ = (y_mean - z_mean.astype(np.float32) @ self.coef_).astype(np.float32)
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        return self._features(data, _rows(idx), self.tissue_scale_) @ self.coef_ + self.intercept_


def shrink_weight(n_rows, k: float = SHRINK_ROWS):
    """The weight of a tissue's own share: n_t / (n_t + k) (0 for no rows, -> 1 for many)."""
    n = np.asarray(n_rows, np.float64)
    return n / (n + k) if k > 0 else (n > 0).astype(np.float64)


class IsoformFractionTissueBaseline:
    """gene x a per-tissue isoform share (fitted in log space), shrunk towards the global one."""

    def __init__(self, name: str = "isoform_fraction_tissue", shrink: float = SHRINK_ROWS,
                 seed: int = 0, max_rows: int = FIT_SHARE_ROWS,
                 max_rows_per_tissue: int = TISSUE_SHARE_ROWS):
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.name = name
        self.shrink = float(shrink)
        self.seed = int(seed)
        self.max_rows = int(max_rows)
        self.max_rows_per_tissue = int(max_rows_per_tissue)

    def _subsample(self, rows: np.ndarray, cap: int, salt: int) -> np.ndarray:
        if len(rows) <= cap:
            return rows
        return np.sort(np.random.default_rng([self.seed, salt]).choice(rows, cap, replace=False))

    def _expressed(self, data: Labelled, rows: np.ndarray) -> np.ndarray:
        """(I,) bool: the isoform's gene is measured and expressed in some of `rows`."""
        gene_sum = np.zeros(data.genes.shape[1])
        for cols in column_blocks(len(rows), data.genes.shape[1]):
            gene_sum[cols] = tpm(data.genes[rows, cols]).sum(axis=0)
        return (self.gene_of_ >= 0) & (gene_sum[np.maximum(self.gene_of_, 0)] > 0)

    def fit(self, data: Labelled, train_idx) -> "IsoformFractionTissueBaseline":
        rows = _rows(train_idx)
        self.gene_of_ = np.asarray(data.isoform_gene, np.int64)
        self.mean_ = column_mean(data.isoforms, rows).astype(np.float32)
        self.has_share_ = self._expressed(data, rows)
        use = np.flatnonzero(self.has_share_)
        self.global_share_ = np.zeros(len(self.gene_of_))
        self.global_share_[use] = fit_log_shares(
            data.genes, data.isoforms, self._subsample(rows, self.max_rows, 0), use, self.gene_of_)
        tissue = _tissues(data)[rows]
        self.shares_, self.weights_ = {}, {}
        for k, t in enumerate(sorted(set(tissue.tolist()))):
            t_rows = rows[tissue == t]
            w = float(shrink_weight(len(t_rows), self.shrink))
            own = np.flatnonzero(self._expressed(data, t_rows))
            share = self.global_share_.copy()
            if w > 0 and len(own):
                fitted = fit_log_shares(data.genes, data.isoforms,
                                        self._subsample(t_rows, self.max_rows_per_tissue, k + 1),
                                        own, self.gene_of_)
                share[own] = w * fitted + (1 - w) * self.global_share_[own]
            self.shares_[t], self.weights_[t] = share, w
        self.n_fallback_ = int((~self.has_share_).sum())
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        rows = _rows(idx)
        tissue = _tissues(data)[rows]
        known = list(self.shares_)
        code = np.array([known.index(t) if t in self.shares_ else len(known) for t in tissue],
                        np.int64)
        table = np.stack([self.shares_[t] for t in known] + [self.global_share_])   # (T+1, I)
        out = np.repeat(self.mean_[None, :], len(rows), axis=0)
        use = np.flatnonzero(self.has_share_)
        genes = data.genes[rows]
        for block in column_blocks(len(rows), len(use)):
            cols = use[block]
            out[:, cols] = np.log2(table[np.ix_(code, cols)] * tpm(genes[:, self.gene_of_[cols]])
                                   + 1.0)
        self.n_unseen_tissue_rows_ = int((code == len(known)).sum())
        return out
