"""share_net's gene anchor fitted on the training rows (issue 32): the measured gene is not always a
scaled sum of its isoforms (GTEx: gene TPM from RNA-SeQC, isoforms from RSEM; the generators'
``gene_extra``), so the anchor the share term multiplies is learned, per gene::

    anchor = g + (1 - blend) * (a + c @ A) + blend * (m + c @ V - g)

with t the gene value that best explains the gene's isoforms under the start's shares
(`gene_targets`): ``a + c @ A`` is a ridge of t - g on the context (the gene's offset
from its isoforms, e.g. per tissue), ``m + c @ V`` a ridge of t on the context (the total the
other genes and the tissue predict), and ``blend`` per gene the least-squares weight of that
prediction against the corrected gene, from leave-one-out predictions (so a gene measured without
extra noise keeps blend ~0). A closed-form fit, held fixed while the head trains; the recipe keeps
it only if it lowers the inner-validation MSE (docs/models.md, "Gene anchoring")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...core.metrics import column_blocks
from ..baselines.standard import ridge_select_fit

ROW_CHUNK = 256         # rows per chunk when summing isoforms into genes
DAMPING = 0.1           # the measured gene's weight in `gene_targets` (a fully used isoform: 1)


@dataclass
class AnchorStart:
    """The anchor's starting parameters (per gene, or context x genes)."""

    blend: np.ndarray       # (G,)
    gene_mean: np.ndarray   # (G,)   m
    V: np.ndarray           # (k, G)
    shift: np.ndarray       # (G,)   (1 - blend) * a
    A: np.ndarray           # (k, G) (1 - blend) * A


def gene_targets(genes: np.ndarray, isoforms: np.ndarray, rows: np.ndarray,
                 isoform_gene: np.ndarray, share: np.ndarray) -> np.ndarray:
    """(rows, genes) log2: the gene value that best explains its isoforms under the start's shares,
    one damped Gauss-Newton step from the measured gene g in the model's own loss (squared error
    of log2(share * (2^g - 1) + 1) against each isoform): g + sum(w r) / (sum(w^2) + DAMPING),
    r the isoform's residual, w its slope in g. (Not log2 of the isoforms' TPM total: the shares
    are fitted in log space, so that total sits above what the per-isoform loss wants.)"""
    iso_gene = np.asarray(isoform_gene, np.int64)
    has = np.flatnonzero(iso_gene >= 0)
    n_genes = genes.shape[1]
    index, s = torch.from_numpy(iso_gene[has]), torch.from_numpy(share[has].astype(np.float64))
    out = np.empty((len(rows), n_genes), np.float32)
    for at in range(0, len(rows), ROW_CHUNK):
        r = rows[at:at + ROW_CHUNK]
        g = torch.from_numpy(genes[r].astype(np.float64))
        lin = torch.exp2(g[:, index])                           # 2^g per isoform
        inner = s * torch.clamp(lin - 1.0, min=0.0) + 1.0
        w = s * lin / inner                                     # d log2(inner) / dg
        res = torch.from_numpy(isoforms[r][:, has].astype(np.float64)) - torch.log2(inner)
        zero = torch.zeros_like(g)
        num = zero.index_add(1, index, w * res)
        den = zero.clone().index_add_(1, index, w * w)
        out[at:at + len(r)] = (g + num / (den + DAMPING)).numpy()
    return out


class LooRidge:
    """Ridge from Z to every column of Y, one penalty by exact leave-one-out (as ``pca_ridge``,
    `ridge_select_fit`); `loo` gives a block of columns' leave-one-out predictions, so Y's
    (n, genes) float64 copies are never made whole (GTEx width)."""

    def __init__(self, Z: np.ndarray, Y: np.ndarray):
        alpha, _, self.z_mean, coef, y_mean = ridge_select_fit(Z, Y)
        self.coef = coef.astype(np.float64)
        self.intercept = y_mean - self.z_mean @ self.coef
        U, s, _ = np.linalg.svd(Z.astype(np.float64) - self.z_mean, full_matrices=False)
        self.h = 1.0 / len(Z) + (U ** 2) @ (s ** 2 / (s ** 2 + alpha))     # hat diagonal

    def loo(self, Z: np.ndarray, Y: np.ndarray, cols: slice) -> np.ndarray:
        """(n, cols) leave-one-out predictions of Y[:, cols] (given as Y, float64)."""
        fitted = self.intercept[cols] + Z.astype(np.float64) @ self.coef[:, cols]
        return Y - (Y - fitted) / (1.0 - self.h)[:, None]


class _Difference:
    """``targets - genes`` read per (rows, column block), as `ridge_select_fit` reads its targets:
    no third (rows, genes) matrix (GTEx width: ~1 GB each)."""

    def __init__(self, targets: np.ndarray, genes: np.ndarray):
        self.targets, self.genes, self.shape = targets, genes, genes.shape

    def __getitem__(self, key):
        return self.targets[key] - self.genes[key]


def fit_anchor(C: np.ndarray, genes: np.ndarray, targets: np.ndarray) -> AnchorStart:
    """The anchor's start from the fitting rows' context C (n, k), measured genes and their
    targets (n, G), both log2 (`gene_targets`)."""
    offset, total = LooRidge(C, _Difference(targets, genes)), LooRidge(C, targets)
    blend = np.zeros(genes.shape[1])
    for cols in column_blocks(*genes.shape):
        g, t = genes[:, cols].astype(np.float64), targets[:, cols].astype(np.float64)
        corrected = g + offset.loo(C, t - g, cols)
        gap = total.loo(C, t, cols) - corrected
        den = np.einsum("ij,ij->j", gap, gap)
        num = np.einsum("ij,ij->j", t - corrected, gap)
        blend[cols] = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12)
    blend = np.clip(blend, 0.0, 1.0)
    keep = 1.0 - blend
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return AnchorStart(blend=f32(blend), gene_mean=f32(total.intercept), V=f32(total.coef),
                       shift=f32(keep * offset.intercept), A=f32(keep * offset.coef))
