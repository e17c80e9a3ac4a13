"""``ffnn_plus``: the paper's FFNN done well, beside the paper's three variants (kept as they are,
being the experiment reproduced): the context and tissue one-hot as input, a wide hidden layer
and a linear skip, started at the ridge fit; trained by the recipe it shares with share_net
(`raviso.models.context.recipe`). Why each change: docs/models.md."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...core.metrics import column_mean
from ...data.labelled import Labelled
from .recipe import ContextModel
from ..ffnn.regressors import FFNN, hidden_sizes


class SkipFFNN(nn.Module):
    """y = free_bias + c @ R (the linear skip) + MLP(c) (ReLU hidden layers, last layer zero)."""

    def __init__(self, n_context: int, hidden, n_out: int, bias: np.ndarray):
        super().__init__()
        self.mlp = FFNN(n_context, hidden, n_out)
        nn.init.zeros_(self.mlp.net[-1].weight)      # starts at the skip (the ridge) alone
        self.mlp.net[-1].bias.requires_grad_(False)   # free_bias is the output bias
        nn.init.zeros_(self.mlp.net[-1].bias)
        self.free_bias = nn.Parameter(torch.from_numpy(np.asarray(bias, np.float32)))
        self.R = nn.Parameter(torch.zeros(n_context, n_out))

    reads_genes = False

    def forward(self, c: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        return self.free_bias + c @ self.R + self.mlp(c)


class FFNNPlus(ContextModel):
    """A `Predictor`: tissue-aware, wide, skip-connected FFNN on the shared training recipe.
    Options: `hidden` and `raviso.models.context.recipe.RecipeOptions` (fewer epochs, no decay
    here)."""

    variant_kind = "ffnn_plus"

    def __init__(self, name: str = "ffnn_plus", hidden=(256,), context: str = "pca",
                 device: str = "cpu", weight_decay: float = 0.0, epochs: int = 30, **options):
        super().__init__(name, context, device, weight_decay=weight_decay, epochs=epochs,
                         **options)
        self.hidden = hidden_sizes(hidden)

    def init_options(self) -> dict:
        return {**super().init_options(), "hidden": list(self.hidden)}

    def empty_module(self, state: dict) -> nn.Module:
        n_out = int(state["free_bias"].shape[0])
        return SkipFFNN(int(state["R"].shape[0]), self.hidden, n_out, np.zeros(n_out, np.float32))

    def build(self, data: Labelled, rows: np.ndarray, n_context: int):
        mean = column_mean(data.isoforms, rows)
        share = np.zeros(data.isoforms.shape[1])           # no share term: the start is the mean
        return SkipFFNN(n_context, self.hidden, data.isoforms.shape[1], mean), share, mean
