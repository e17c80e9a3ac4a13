"""``foldvae_ffnn``: for stores without a compendium, a small VAE pretrained inside every CV fit on
the training rows' genes only, then the latent FFNN on its posterior means (why each choice:
docs/models.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ...core.config import option
from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..ffnn.regressors import FFNNOptions, FFNNRegressor, hidden_sizes
from ..spec import OptionRecord
from ..training import PREDICT_ROWS
from .loop import kl_weight, make_optimizer, tensor_batches, train_epoch
from .model import VAE, VAEConfig

LATENT_KEY = "foldvae"


@dataclass(frozen=True)
class FoldVAEOptions(OptionRecord):
    """The fold VAE's options (the FFNN on its latent takes `FFNNOptions`)."""

    vae_epochs: int = option(30, "epochs of the fold VAE", check=lambda v: v >= 0,
                             problem=">= 0")
    vae_hidden: tuple = option("256,128", "the fold VAE's encoder widths")
    latent_dim: int = option(32, "latent size", check=lambda v: v >= 1, problem=">= 1")
    beta: float = option(1.0, "KL weight", check=lambda v: v >= 0, problem=">= 0")
    vae_lr: float = option(1e-3, "the fold VAE's learning rate", check=lambda v: v > 0,
                           problem="> 0")
    vae_batch_size: int = option(64, "the fold VAE's rows per step", check=lambda v: v >= 1,
                                 problem=">= 1")

    def __post_init__(self):
        object.__setattr__(self, "vae_hidden", hidden_sizes(self.vae_hidden))
        super().__post_init__()


class FoldVAEFFNN:
    """A `Predictor`: per-fold VAE pretrained on the training rows' genes + latent FFNN."""

    def __init__(self, name: str = "foldvae_ffnn", vae: FoldVAEOptions | None = None,
                 ffnn: FFNNOptions | None = None):
        self.name = name
        self.vae_opts = vae if vae is not None else FoldVAEOptions()
        ffnn = ffnn if ffnn is not None else FFNNOptions()
        self.seed = ffnn.seed
        self.ffnn = FFNNRegressor(name, f"latent:{LATENT_KEY}", ffnn)
        self.device = self.ffnn.device
        self.vae: VAE | None = None
        self.vae_history_: list[dict] = []

    @classmethod
    def from_options(cls, **options) -> "FoldVAEFFNN":
        """The variant's factory: the fold VAE's options and the FFNN's, one flat set."""
        try:
            vae, rest = FoldVAEOptions.take(options)
            return cls("foldvae_ffnn", vae, FFNNOptions(**rest))
        except (RavisoError, TypeError) as e:
            raise RavisoError(f"foldvae_ffnn: {e}") from None

    @property
    def history_(self) -> dict:
        return {"vae": self.vae_history_, **self.ffnn.history_}

    def _pretrain(self, genes: np.ndarray) -> None:
        """Train the fold VAE on `genes` (the training rows only)."""
        o = self.vae_opts
        X = torch.from_numpy(np.array(genes, dtype=np.float32))      # CPU; batches are moved
        cfg = VAEConfig(n_genes=X.shape[1], hidden=o.vae_hidden, latent_dim=o.latent_dim,
                        beta=o.beta)
        warmup = o.vae_epochs // 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.vae = VAE(cfg).to(self.device)
            opt = make_optimizer(self.vae, o.vae_lr)
            gen = torch.Generator().manual_seed(self.seed)
            self.vae_history_ = []
            for epoch in range(o.vae_epochs):
                batches = tensor_batches(X, o.vae_batch_size, generator=gen)
                stats = train_epoch(self.vae, opt, batches, kl_weight(epoch, warmup),
                                    device=self.device)
                self.vae_history_.append({"epoch": epoch, "loss": stats.loss,
                                          "recon": stats.recon, "kl": stats.kl,
                                          "samples": stats.samples})
        self.vae.eval()

    @torch.no_grad()
    def encode(self, genes: np.ndarray) -> np.ndarray:
        """Gene rows -> posterior means (n, latent_dim) float32, in chunks."""
        if self.vae is None:
            raise RuntimeError(f"{self.name}: encode before fit")
        out = np.empty((genes.shape[0], self.vae_opts.latent_dim), np.float32)
        for s in range(0, genes.shape[0], PREDICT_ROWS):
            x = torch.from_numpy(np.array(genes[s:s + PREDICT_ROWS], dtype=np.float32))
            out[s:s + PREDICT_ROWS] = self.vae.encode(x.to(self.device)).cpu().numpy()
        return out

    def fit(self, data: Labelled, train_idx, on_batch=None) -> "FoldVAEFFNN":
        rows = np.asarray(train_idx, np.int64)
        if len(rows) < 1:
            raise RavisoError(f"{self.name}: no training rows")
        self._pretrain(data.genes[rows])
        # Codes only for the training rows; the others stay zero and are never read by the FFNN
        # (it reads rows of its training set only), so nothing is computed from validation genes.
        Z = np.zeros((data.n, self.vae_opts.latent_dim), np.float32)
        Z[rows] = self.encode(data.genes[rows])
        view = dataclasses.replace(data, latent={LATENT_KEY: Z})
        self.ffnn.fit(view, rows, on_batch=on_batch)
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        return self.ffnn.predict_source(self.encode(data.genes[idx]))
