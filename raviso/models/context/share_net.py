"""``share_net``: the gene-anchored isoform model (raviso's recommended variant)::

    share = softmax over the isoforms of each gene of (b + c @ U)          (segment softmax)
    gene  = g + shift + c @ A + blend * (m + c @ V - g)   (the observed gene, corrected and blended
                                                          per gene with a context prediction)
    y     = log2(share * scale_gene * (2^gene - 1) + 1) + r + c @ R                (log2(TPM+1))

with context c. Here: the network (`ShareModule`, its segment softmax) and the start it is built
at (``isoform_fraction_fit``'s shares, `initial_shares`; the gene anchor's start:
`raviso.models.context.anchor`); its training, from the context to the
refit, is the recipe it shares with ffnn_plus (`raviso.models.context.recipe`). The reasons for
each choice are in docs/models.md."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...core.errors import RavisoError
from ...core.metrics import column_mean
from ...data.labelled import Labelled
from ..baselines.standard import FIT_SHARE_ROWS, fit_log_shares
from .anchor import fit_anchor, gene_targets
from .recipe import CHUNK_ROWS, ContextModel

MIN_SHARE = 1e-4        # fitted shares of 0 (never-seen isoforms) start at this share
ANCHORS = ("fit", "none")   # the gene anchor's start: fitted (kept if it helps), or the gene


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
        # the measured gene's offset and its context weights: never trained; 0 (share_net before
        # the fitted anchor, exactly) unless the anchor's start is used (`ShareNet.anchor_start`)
        self.shift = nn.Parameter(torch.zeros(n_genes), requires_grad=False)
        self.A = nn.Parameter(torch.zeros(n_context, n_genes), requires_grad=False)

    def load_state_dict(self, state, strict: bool = True, **kw):
        """A model saved before the anchor's offset existed (no shift, A) loads with it at 0."""
        extra = {"shift": self.shift, "A": self.A}
        state = {**{k: torch.zeros_like(v) for k, v in extra.items() if k not in state}, **state}
        return super().load_state_dict(state, strict, **kw)

    def anchored(self, c: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, genes) the gene the shares multiply, log2: corrected and blended (docstring)."""
        g = g.float()
        return g + self.shift + (c @ self.A).float() + self.blend * (
            self.gene_mean + (c @ self.V).float() - g)

    def shares(self, c: torch.Tensor) -> torch.Tensor:
        """(B, isoforms) shares, summing to 1 over each measured gene's isoforms."""
        return segment_softmax(self.share_logit + c @ self.U, self.segment, self.n_genes + 1)

    def forward(self, c: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Context (B, n_context) and observed genes (B, genes) -> isoforms, log2(TPM+1)."""
        share = self.shares(c)
        gene = self.anchored(c, g)
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


class ShareNet(ContextModel):
    """A `Predictor` (see `raviso.models.variants`): the gene-anchored share model. Options:
    ``anchor`` (``fit``: the gene anchor's fitted start, kept if it lowers the inner-validation
    MSE; ``none``: the measured gene as it is) and `raviso.models.context.recipe.RecipeOptions`."""

    variant_kind = "share_net"

    def __init__(self, name: str = "share_net", context: str = "pca", device: str = "cpu",
                 anchor: str = "fit", **options):
        super().__init__(name, context, device, **options)
        if anchor not in ANCHORS:
            raise RavisoError(f"{name}: bad options: anchor={anchor!r} ({' or '.join(ANCHORS)})")
        self.anchor = anchor
        self.fits_anchor = anchor != "none"

    def init_options(self) -> dict:
        return {**super().init_options(), "anchor": self.anchor}

    def empty_module(self, state: dict) -> nn.Module:
        """A network of the shapes in `state` (a saved state dict), to load it into."""
        seg, n_genes = state["segment"].numpy(), int(state["blend"].shape[0])
        zeros = lambda n: np.zeros(n, np.float32)  # noqa: E731
        return ShareModule(int(state["R"].shape[0]), np.where(seg < n_genes, seg, -1), n_genes,
                           share_logit=zeros(len(seg)), log_scale=zeros(n_genes),
                           free_bias=zeros(len(seg)), gene_mean=zeros(n_genes))

    def build(self, data: Labelled, rows: np.ndarray, n_context: int
              ) -> tuple[nn.Module, np.ndarray, np.ndarray]:
        """(module at its starting point, the start's share per isoform, its free output per
        isoform): the start predicts log2(share * gene TPM + 1) + free (`StartResidual`)."""
        genes = data.genes[rows]
        logit, log_scale, expressed = initial_shares(genes, data.isoforms[rows],
                                                     data.isoform_gene, self.opts.seed,
                                                     device=self.device)
        free = np.where(expressed, 0.0, column_mean(data.isoforms, rows))
        module = ShareModule(n_context, data.isoform_gene, data.genes.shape[1],
                             share_logit=logit, log_scale=log_scale, free_bias=free,
                             gene_mean=genes.mean(axis=0))
        return module, np.exp(logit), free

    @torch.no_grad()
    def anchor_start(self, data: Labelled, rows: np.ndarray, C) -> np.ndarray | None:
        """The gene anchor at its fitted start (`raviso.models.context.anchor`) on the fitting
        rows; returns their anchored genes, or None (``anchor="none"``: nothing changed)."""
        if self.anchor == "none":
            return None
        m, Z = self.module, C.cpu().numpy()
        genes = np.ascontiguousarray(data.genes[rows], np.float32)
        share = torch.exp(m.share_logit).cpu().numpy()
        out = gene_targets(data.genes, data.isoforms, rows, data.isoform_gene, share)
        start = fit_anchor(Z, genes, out)
        self._plain_anchor = {k: getattr(m, k).detach().clone() for k in vars(start)}
        for k, v in vars(start).items():
            getattr(m, k).copy_(torch.from_numpy(v))
        self._train_anchor(False)
        at = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        for s in range(0, len(rows), CHUNK_ROWS):      # the targets' memory holds the result
            out[s:s + CHUNK_ROWS] = m.anchored(at(Z[s:s + CHUNK_ROWS]),
                                               at(genes[s:s + CHUNK_ROWS])).cpu().numpy()
        return out

    @torch.no_grad()
    def anchor_reset(self) -> None:
        """Back to the measured gene (the held-out donors say the fitted anchor does not help)."""
        for k, v in self._plain_anchor.items():
            getattr(self.module, k).copy_(v)
        self._train_anchor(True)

    def _train_anchor(self, train: bool) -> None:
        """The fitted anchor stays at its closed-form start (penalties chosen by leave-one-out;
        Adam's per-weight steps on its context x genes weights mostly overfit: docs/models.md);
        the measured gene's blend trains as before. The offset (shift, A) never trains: it is 0
        unless fitted."""
        for p in (self.module.blend, self.module.gene_mean, self.module.V):
            p.requires_grad_(train)

    @torch.no_grad()
    def shares(self, data: Labelled, idx) -> np.ndarray:
        """The predicted isoform shares of their gene (rows idx), for inspection and tests."""
        idx = np.asarray(idx, np.int64)
        return self.module.shares(self.features(data, idx, self.device)).cpu().numpy()
