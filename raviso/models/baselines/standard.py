"""Baselines the regressors must beat, each fitted on the TRAINING fold only.

A learned model is only interesting if it beats the cheap explanations of isoform expression:
- `MeanBaseline` ("mean"): each isoform's mean over the WHOLE training fold (the paper's baseline;
  the seed project used one batch's mean, which is noisier and not what the paper describes).
- `TissueMeanBaseline` ("tissue_mean"): each isoform's mean over the training samples of the same
  tissue. Isoform usage is strongly tissue dependent, so this is a strong baseline. A validation
  sample whose tissue has no training samples (possible with donor-grouped folds and rare tissues)
  falls back to the overall training mean (`n_unseen_tissue_rows_` counts such rows at predict).
- `IsoformFractionBaseline` ("isoform_fraction"): each isoform predicted from its own gene's
  expression and its training share of that gene, in TPM space. The share is a RATIO OF SUMS,
  ``share_j = sum_train TPM_iso_j / sum_train TPM_gene(j)``, i.e. the TPM-weighted mean of the
  per-sample shares: it is defined whenever the gene is expressed in any training sample (a mean of
  per-sample ratios is undefined for samples where the gene is 0, and dominated by noisy low-count
  samples). Shares are fitted, not forced to sum to 1 per gene, because GTEx's gene TPM (RNA-SeQC)
  is not the sum of its RSEM transcript TPMs. Prediction: ``log2(share_j * (2^gene - 1) + 1)``.
  Isoforms whose gene is absent from the gene columns, or never expressed in the training fold,
  fall back to the training mean (`n_fallback_` counts them).
  ``isoform_fraction_fit`` is the same model with the share chosen to minimise the TRAINING error
  in log2(TPM+1) (grid + golden-section search per isoform, on at most 2,000 training rows drawn
  with the seed). Why: the ratio of sums is a share of
  mean TPM, and for noisy, zero-inflated isoforms log2(share * gene + 1) then sits far above the
  typical log value (Jensen), so on real GEUVADIS chr19 (5-fold, 91 samples) the ratio-of-sums
  baseline has MSE 2.80 against the mean baseline's 2.14, while the fitted share gets 1.90.
- `PCARidgeBaseline` ("pca_ridge"): PCA of the genes (fitted on the training rows) then a ridge
  regression to all isoforms. The penalty is picked by exact leave-one-out (generalised) cross
  validation over a grid, like scikit-learn's RidgeCV with one alpha for all targets, but computed
  through the SVD in blocks of isoform columns so 156,958 targets never need a float64 copy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...data.labelled import Labelled
from ...core.metrics import column_blocks, column_mean

DEFAULT_ALPHAS = tuple(np.logspace(-3, 6, 19))


def _rows(idx) -> np.ndarray:
    return np.asarray(idx, dtype=np.int64)


class MeanBaseline:
    """Training-fold mean of each isoform, predicted for every sample."""

    def __init__(self, name: str = "mean"):
        self.name = name

    def fit(self, data: Labelled, train_idx) -> "MeanBaseline":
        self.mean_ = column_mean(data.isoforms, _rows(train_idx)).astype(np.float32)
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        return np.repeat(self.mean_[None, :], len(idx), axis=0)


class TissueMeanBaseline:
    """Training-fold mean of each isoform within the sample's tissue (overall mean if unseen)."""

    def __init__(self, name: str = "tissue_mean"):
        self.name = name

    def fit(self, data: Labelled, train_idx) -> "TissueMeanBaseline":
        rows = _rows(train_idx)
        self.overall_ = column_mean(data.isoforms, rows).astype(np.float32)
        tissue = np.asarray(data.tissue)[rows]
        self.means_ = {t: column_mean(data.isoforms, rows[tissue == t]).astype(np.float32)
                       for t in np.unique(tissue)}
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        tissue = np.asarray(data.tissue)[_rows(idx)]
        out = np.empty((len(tissue), len(self.overall_)), np.float32)
        unseen = 0
        for k, t in enumerate(tissue):
            m = self.means_.get(t)
            if m is None:
                unseen += 1
                m = self.overall_
            out[k] = m
        self.n_unseen_tissue_rows_ = unseen
        return out


def tpm(log_values: np.ndarray) -> np.ndarray:
    """log2(TPM+1) -> TPM in float64 (negative inputs, which are not valid TPM, clamp to 0)."""
    return np.maximum(np.exp2(log_values.astype(np.float64)) - 1.0, 0.0)


SHARE_GRID = np.concatenate([[0.0], np.logspace(-4, np.log10(4.0), 16)])
GOLDEN_STEPS = 12
FIT_SHARE_ROWS = 2000        # one number per isoform: 2,000 training rows pin it down
FIT_BLOCK_BYTES = 4 << 20    # ~31 passes over each block: keep it in cache (CPU)
DEVICE_FIT_BLOCK_BYTES = 256 << 20   # on a GPU: blocks large enough to fill it


def _log_share_loss(share, gene_tpm, y):
    """Per column: sum over rows of (log2(share * gene_TPM + 1) - y)^2 (numpy or torch)."""
    if isinstance(gene_tpm, torch.Tensor):
        d = torch.log2(share * gene_tpm + 1.0) - y
        return (d * d).sum(0)
    d = np.log2(share * gene_tpm + 1.0) - y
    return np.einsum("ij,ij->j", d, d)           # no (rows, cols) temporary, unlike (d * d)


def fit_log_share(gene_tpm, y) -> np.ndarray:
    """Per column, the share s minimising sum_i (log2(s * gene_tpm_i + 1) - y_i)^2: a grid over
    [0, 4] (log-spaced) then golden-section search between the best point's neighbours. Never
    worse than the best grid point. Float64 numpy arrays are computed with numpy (single-threaded
    but the faster of the two on a CPU: bench/README.md, gpu); float64 torch tensors with torch
    where they live (a GPU: `fit_log_shares` on ``device="cuda"``)."""
    xp = torch if isinstance(gene_tpm, torch.Tensor) else np
    grid = SHARE_GRID if xp is np else torch.as_tensor(SHARE_GRID, device=gene_tpm.device)
    loss = lambda share: _log_share_loss(share, gene_tpm, y)  # noqa: E731
    losses = xp.stack([loss(g) for g in grid])
    best = losses.argmin(0)                               # the first minimum on ties
    grid_share, grid_loss = grid[best], xp.amin(losses, 0)
    lo, hi = grid[xp.clip(best - 1, 0, None)], grid[xp.clip(best + 1, None, len(grid) - 1)]
    inv = (math.sqrt(5.0) - 1) / 2
    c, d = hi - inv * (hi - lo), lo + inv * (hi - lo)
    fc, fd = loss(c), loss(d)
    for _ in range(GOLDEN_STEPS):
        left = fc < fd            # the minimum lies in [lo, d]: old c becomes the new d
        lo, hi = xp.where(left, lo, c), xp.where(left, d, hi)
        new_c, new_d = hi - inv * (hi - lo), lo + inv * (hi - lo)
        fp = loss(xp.where(left, new_c, new_d))
        c, d, fc, fd = (xp.where(left, new_c, d), xp.where(left, c, new_d),
                        xp.where(left, fp, fd), xp.where(left, fc, fp))
    refined, refined_loss = xp.where(fc < fd, c, d), xp.minimum(fc, fd)
    out = xp.where(refined_loss < grid_loss, refined, grid_share)
    return out if xp is np else out.cpu().numpy()


def fit_log_shares(genes: np.ndarray, isoforms: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   gene_of: np.ndarray, device="cpu", use_torch: bool | None = None
                   ) -> np.ndarray:
    """`fit_log_share` for the isoform columns `cols` (each with a measured gene, ``gene_of``) on
    the rows `rows`, in column blocks: numpy on a CPU, torch on any other `device` (the genes'
    rows go there once; why: bench/README.md, gpu).
    ``use_torch`` forces the choice (tests run the torch path on a CPU)."""
    dev = torch.device(device)
    out = np.zeros(len(cols))
    if not (dev.type != "cpu" if use_torch is None else use_torch):
        g = genes[rows]
        for b in column_blocks(len(rows), len(cols), FIT_BLOCK_BYTES):
            c = cols[b]
            out[b] = fit_log_share(tpm(g[:, gene_of[c]]),
                                   isoforms[np.ix_(rows, c)].astype(np.float64))
        return out
    G = torch.from_numpy(np.ascontiguousarray(genes[rows], np.float32)).to(dev)
    for b in column_blocks(len(rows), len(cols), DEVICE_FIT_BLOCK_BYTES):
        c = cols[b]
        gene_tpm = torch.clamp(torch.exp2(G[:, torch.from_numpy(gene_of[c]).to(dev)].double())
                               - 1.0, min=0.0)                      # = tpm, on the device
        y = torch.from_numpy(np.ascontiguousarray(isoforms[np.ix_(rows, c)])).to(dev).double()
        out[b] = fit_log_share(gene_tpm, y)
    return out


class IsoformFractionBaseline:
    """Each isoform = its training share of its own gene, in TPM space, back to log2(TPM+1).

    ``share="ratio_of_sums"`` (variant "isoform_fraction", the issue's definition) or
    ``share="fit"`` (variant "isoform_fraction_fit": the share that minimises the training error
    in log2(TPM+1), where the metrics are computed; see the module docstring for why)."""

    SHARES = ("ratio_of_sums", "fit")

    def __init__(self, name: str = "isoform_fraction", share: str = "ratio_of_sums",
                 seed: int = 0, max_rows: int = FIT_SHARE_ROWS):
        if share not in self.SHARES:
            raise ValueError(f"share must be one of {self.SHARES}, got {share!r}")
        self.name = name
        self.share = share
        self.seed = int(seed)
        self.max_rows = int(max_rows)

    def fit(self, data: Labelled, train_idx) -> "IsoformFractionBaseline":
        rows = _rows(train_idx)
        gene_of = np.asarray(data.isoform_gene, np.int64)
        gene_sum = np.zeros(data.genes.shape[1], np.float64)
        for cols in column_blocks(len(rows), data.genes.shape[1]):
            gene_sum[cols] = tpm(data.genes[rows, cols]).sum(axis=0)
        denom = np.where(gene_of >= 0, gene_sum[np.maximum(gene_of, 0)], 0.0)
        self.has_share_ = denom > 0
        self.share_ = np.zeros(len(gene_of), np.float64)
        use = np.flatnonzero(self.has_share_)
        if self.share == "fit":
            # a seeded subsample of the TRAINING rows bounds the cost at full scale
            fit_rows = rows if len(rows) <= self.max_rows else np.sort(
                np.random.default_rng(self.seed).choice(rows, self.max_rows, replace=False))
            self.share_[use] = fit_log_shares(data.genes, data.isoforms, fit_rows, use, gene_of)
        else:
            for block in column_blocks(len(rows), len(use)):
                cols = use[block]
                self.share_[cols] = (tpm(data.isoforms[np.ix_(rows, cols)]).sum(axis=0)
                                     / denom[cols])
        self.gene_of_ = gene_of
        self.mean_ = column_mean(data.isoforms, rows).astype(np.float32)
        self.n_fallback_ = int((~self.has_share_).sum())
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        rows = _rows(idx)
        out = np.repeat(self.mean_[None, :], len(rows), axis=0)
        use = np.flatnonzero(self.has_share_)
        genes = data.genes[rows]
        for block in column_blocks(len(rows), len(use)):
            cols = use[block]
            gene_tpm = tpm(genes[:, self.gene_of_[cols]])
            out[:, cols] = np.log2(self.share_[cols] * gene_tpm + 1.0)
        return out


def fit_pca(X: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean (g,), components (k, g)) of a PCA of the rows of X, k capped at min(n-1, g).

    Randomised SVD (seeded) so 18,965 genes x ~14,000 training rows stays fast and reproducible.
    """
    from sklearn.decomposition import PCA

    k = int(max(1, min(n_components, X.shape[0] - 1, X.shape[1])))
    solver = "randomized" if k < min(X.shape) // 2 else "full"
    pca = PCA(n_components=k, svd_solver=solver, random_state=seed).fit(X)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def pca_transform(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return ((X - mean) @ components.T).astype(np.float32)


def _target_rows(Y: np.ndarray, rows, n: int) -> np.ndarray:
    rows = np.arange(Y.shape[0]) if rows is None else np.asarray(rows, np.int64)
    if len(rows) != n:
        raise ValueError(f"{n} feature rows but {len(rows)} target rows")
    return rows


def ridge_select_fit(Z: np.ndarray, Y, alphas=DEFAULT_ALPHAS, rows=None
                     ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge with an unpenalised intercept from features Z to every column of ``Y[rows]`` (all
    rows when None), ONE penalty for all targets chosen by exact leave-one-out error, in ONE pass
    over the targets. Returns (alpha, LOO mean squared error per alpha, z_mean, coef (k, m)
    float32, y_mean).

    Y is read in column blocks (all rows of a few columns at a time), so the training targets are
    never copied whole, and only once: each block yields its own column means, and with centred
    Z = U S V^T every quantity below is a sum over blocks or a per-column result. With
    f = s^2/(s^2+alpha) the hat matrix is 11^T/n + U diag(f) U^T, and the residual of row i is
    R_i = P_i + (U_i * (1-f)) Q with Q = U^T Yc and P = Yc - U Q, so
    ||R_i||^2 = a_i + 2 (U_i*(1-f)).M_i + (U_i*(1-f)) G (U_i*(1-f))^T using a_i = ||P_i||^2,
    M = P Q^T and G = Q Q^T; each alpha then costs O(n k^2), and the coefficients at the chosen
    alpha are V diag(s/(s^2+alpha)) Q. (Before, choosing alpha and fitting read the targets five
    times: at course width the share_net start recomputes its residual targets on every read.)
    """
    n = Z.shape[0]
    rows = _target_rows(Y, rows, n)
    z_mean = Z.mean(axis=0, dtype=np.float64)
    U, s, Vt = np.linalg.svd(Z.astype(np.float64) - z_mean, full_matrices=False)
    k, m = len(s), Y.shape[1]
    y_mean, Q = np.empty(m), np.empty((k, m))
    a, M, G = np.zeros(n), np.zeros((n, k)), np.zeros((k, k))
    for cols in column_blocks(n, m):
        Yc = Y[rows, cols].astype(np.float64)
        y_mean[cols] = Yc.mean(axis=0)
        Yc -= y_mean[cols]
        Q[:, cols] = U.T @ Yc
        P = Yc - U @ Q[:, cols]
        a += np.einsum("ij,ij->i", P, P)
        M += P @ Q[:, cols].T
        G += Q[:, cols] @ Q[:, cols].T
    loo = np.empty(len(alphas))
    for j, alpha in enumerate(alphas):
        f = s**2 / (s**2 + alpha)
        h = 1.0 / n + (U**2) @ f
        W = U * (1.0 - f)
        r2 = a + 2 * np.einsum("ij,ij->i", W, M) + np.einsum("ij,jk,ik->i", W, G, W)
        loo[j] = np.sum(r2 / (1.0 - h) ** 2) / (n * m)
    alpha = float(alphas[int(np.argmin(loo))])
    coef = np.empty((Z.shape[1], m), np.float32)
    scale = (s / (s**2 + alpha))[:, None]
    for cols in column_blocks(k, m):
        coef[:, cols] = Vt.T @ (scale * Q[:, cols])
    return alpha, loo, z_mean, coef, y_mean


class PCARidgeBaseline:
    """PCA of the genes (training rows) -> ridge to all isoforms, alpha by LOO unless given."""

    def __init__(self, name: str = "pca_ridge", n_components: int = 256, alpha=None,
                 alphas=DEFAULT_ALPHAS, seed: int = 0):
        self.name = name
        self.n_components = int(n_components)
        self.alpha = alpha
        self.alphas = tuple(alphas)
        self.seed = int(seed)

    def fit(self, data: Labelled, train_idx) -> "PCARidgeBaseline":
        rows = _rows(train_idx)
        X = data.genes[rows]
        self.pca_mean_, self.components_ = fit_pca(X, self.n_components, self.seed)
        Z = pca_transform(X, self.pca_mean_, self.components_)
        del X
        alphas = self.alphas if self.alpha is None else (float(self.alpha),)
        self.alpha_, self.loo_, z_mean, self.coef_, y_mean = ridge_select_fit(
            Z, data.isoforms, alphas, rows)
        # fold the centring into one intercept: pred = Z @ coef + intercept
        self.intercept_ = (y_mean - z_mean.astype(np.float32) @ self.coef_).astype(np.float32)
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        Z = pca_transform(data.genes[_rows(idx)], self.pca_mean_, self.components_)
        return Z @ self.coef_ + self.intercept_
