"""``share_net``: the gene-anchored isoform model (raviso's recommended variant)::

    share = softmax over the isoforms of each gene of (b + c @ U)          (segment softmax)
    gene  = g + blend * (m + c @ V - g)      (observed gene, blended per gene with a prediction)
    y     = log2(share * scale_gene * (2^gene - 1) + 1) + r + c @ R                (log2(TPM+1))

with context c (`raviso.models.context.features`). It starts at ``isoform_fraction_fit`` plus a
ridge correction and is trained by the recipe it shares with ffnn_plus
(`raviso.models.context.recipe`); the reasons for each choice are in docs/models.md."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...core.metrics import column_mean
from ...data.labelled import Labelled
from .recipe import ContextModel
from .share_module import ShareModule, initial_shares


class ShareNet(ContextModel):
    """A `Predictor` (see `raviso.models.variants`): the gene-anchored share model. Options:
    `raviso.models.context.recipe.RecipeOptions`."""

    variant_kind = "share_net"

    def __init__(self, name: str = "share_net", context: str = "pca", device: str = "cpu",
                 **options):
        super().__init__(name, context, device, **options)

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
    def shares(self, data: Labelled, idx) -> np.ndarray:
        """The predicted isoform shares of their gene (rows idx), for inspection and tests."""
        idx = np.asarray(idx, np.int64)
        return self.module.shares(self._context(data, idx)).cpu().numpy()
