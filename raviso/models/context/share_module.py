"""The torch math of ``share_net`` (`raviso.models.context.share_net` holds the user-facing model
and its training): the segment softmax, the network, and the starting point it is built at
(``isoform_fraction_fit``'s shares and the residual a ridge start is fitted to).

Kept apart, as scvi-tools keeps a module apart from its model, so the formula can be read and
tested without the fitting machinery."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...data.labelled import Labelled
from ..baselines.standard import FIT_SHARE_ROWS, fit_log_shares, tpm

MIN_SHARE = 1e-4        # fitted shares of 0 (never-seen isoforms) start at this share


def segment_softmax(logits: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of each row of `logits` (B, I) within the groups of columns given by `segment`
    (I,) in [0, n_segments): columns of one segment share one softmax. Computed in float32 with a
    per-segment max (stable for any logit range), without a dense (segments x columns) matrix."""
    x = logits.float()
    idx = segment.unsqueeze(0).expand(x.shape[0], -1)
    top = torch.full((x.shape[0], n_segments), -torch.inf, device=x.device)
    top = top.scatter_reduce(1, idx, x, reduce="amax", include_self=True)
    e = torch.exp(x - top.gather(1, idx))
    total = torch.zeros((x.shape[0], n_segments), device=x.device).index_add_(1, segment, e)
    return e / total.gather(1, idx)


class ShareModule(nn.Module):
    """The network; the formula is in `raviso.models.context.share_net`'s docstring. Parameters
    start at the baseline."""

    def __init__(self, n_context: int, isoform_gene: np.ndarray, n_genes: int, *,
                 share_logit: np.ndarray, log_scale: np.ndarray, free_bias: np.ndarray,
                 gene_mean: np.ndarray):
        super().__init__()
        iso_gene = np.asarray(isoform_gene, np.int64)
        n_iso = len(iso_gene)
        has = iso_gene >= 0
        self.n_genes = int(n_genes)
        # isoforms without a measured gene get their own dummy segment n_genes (never read)
        self.register_buffer("segment", torch.from_numpy(np.where(has, iso_gene, n_genes)))
        self.register_buffer("has_gene", torch.from_numpy(has))
        f32 = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731
        self.share_logit = nn.Parameter(f32(share_logit))
        self.log_scale = nn.Parameter(f32(np.append(log_scale, 0.0)))        # (genes + 1,)
        self.free_bias = nn.Parameter(f32(free_bias))
        self.gene_mean = nn.Parameter(f32(gene_mean))
        self.blend = nn.Parameter(torch.zeros(n_genes))
        self.U = nn.Parameter(torch.zeros(n_context, n_iso))   # context -> share logits
        self.R = nn.Parameter(torch.zeros(n_context, n_iso))   # context -> residual
        self.V = nn.Parameter(torch.zeros(n_context, n_genes))  # context -> gene prediction

    def shares(self, c: torch.Tensor) -> torch.Tensor:
        """(B, isoforms) shares, summing to 1 over each measured gene's isoforms."""
        return segment_softmax(self.share_logit + c @ self.U, self.segment, self.n_genes + 1)

    def forward(self, c: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Context (B, n_context) and observed genes (B, genes) -> isoforms, log2(TPM+1)."""
        share = self.shares(c)
        g = g.float()
        gene = g + self.blend * (self.gene_mean + (c @ self.V).float() - g)
        tpm = torch.clamp(torch.exp2(gene) - 1.0, min=0.0)
        tpm = torch.cat([tpm, torch.zeros_like(tpm[:, :1])], dim=1) * torch.exp(self.log_scale)
        y = torch.log2(share * tpm[:, self.segment] + 1.0)     # 0 where the gene is unmeasured
        return y + self.free_bias + (c @ self.R).float()


def initial_shares(genes: np.ndarray, isoforms: np.ndarray, isoform_gene: np.ndarray,
                   seed: int = 0, max_rows: int = FIT_SHARE_ROWS, device="cpu"):
    """(share_logit, log_scale per gene, expressed) from `isoform_fraction_fit`'s log-space share
    fit on these training rows: softmax(share_logit) * exp(log_scale) = the fitted shares (floored
    at MIN_SHARE). ``expressed``: isoforms whose gene is measured and non-zero in some row."""
    n, n_genes = genes.shape
    iso_gene = np.asarray(isoform_gene, np.int64)
    rows = np.arange(n) if n <= max_rows else np.sort(
        np.random.default_rng(seed).choice(n, max_rows, replace=False))
    g = genes[rows]
    gene_expressed = (g > 0).any(axis=0)
    has = iso_gene >= 0
    expressed = has & gene_expressed[np.maximum(iso_gene, 0)]
    share = np.zeros(len(iso_gene))
    cols = np.flatnonzero(expressed)
    share[cols] = fit_log_shares(genes, isoforms, rows, cols, iso_gene, device)
    share = np.maximum(share, MIN_SHARE)
    total = np.zeros(n_genes)
    np.add.at(total, iso_gene[has], share[has])
    log_scale = np.log(np.maximum(total, MIN_SHARE))
    return np.log(share), log_scale, expressed


class StartResidual:
    """``Y - start`` where start is the share term at its starting point, read per (rows, column
    block) like an array (what `ridge_select_fit` indexes, once per block), so the residual of
    157k isoforms is never materialised whole. Numpy on a CPU; on another `device` (a GPU) the
    elementwise work runs there with torch, the training rows' genes uploaded once
    (``use_torch`` forces the choice: tests run the torch path on a CPU)."""

    def __init__(self, data: Labelled, share: np.ndarray, free: np.ndarray, device="cpu",
                 use_torch: bool | None = None):
        self.data, self.share, self.free = data, share, free
        self.gene_of = np.asarray(data.isoform_gene, np.int64)
        self.shape = data.isoforms.shape
        self.device = torch.device(device)
        self.torch = self.device.type != "cpu" if use_torch is None else bool(use_torch)
        self._genes: tuple | None = None       # (rows, their genes on the device)

    def __getitem__(self, key):
        rows, cols = key
        gene = self.gene_of[cols]
        if self.torch:
            return self._torch_block(np.asarray(rows), cols, gene)
        g = tpm(self.data.genes[np.ix_(np.asarray(rows), np.maximum(gene, 0))])
        start = np.where(gene >= 0, np.log2(self.share[cols] * g + 1.0), 0.0) + self.free[cols]
        return self.data.isoforms[rows, cols].astype(np.float64) - start

    def _torch_block(self, rows: np.ndarray, cols, gene: np.ndarray) -> np.ndarray:
        dev = self.device
        if self._genes is None or not np.array_equal(self._genes[0], rows):
            self._genes = (rows, torch.from_numpy(
                np.ascontiguousarray(self.data.genes[rows], np.float32)).to(dev))
        at = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        tpm = torch.clamp(torch.exp2(self._genes[1][:, at(np.maximum(gene, 0))].double()) - 1.0,
                          min=0.0)
        start = torch.where(at(gene >= 0), torch.log2(at(self.share[cols]) * tpm + 1.0), 0.0)
        y = at(self.data.isoforms[rows, cols]).double()
        return (y - start - at(self.free[cols])).cpu().numpy()
