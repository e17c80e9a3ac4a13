"""``foldvae_ffnn``: for stores without a compendium, a small VAE pretrained inside every CV fit on
the training rows' genes only, then the latent FFNN on its posterior means (why each choice:
docs/models.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..ffnn.regressors import FFNNRegressor, hidden_sizes
from ..ffnn.fit import PREDICT_ROWS
from .loop import kl_weight, make_optimizer, tensor_batches, train_epoch
from .model import VAE, VAEConfig

LATENT_KEY = "foldvae"


class FoldVAEFFNN:
    """A `Predictor`: per-fold VAE pretrained on the training rows' genes + latent FFNN."""

    def __init__(self, name: str = "foldvae_ffnn", vae_epochs: int = 30,
                 vae_hidden="256,128", latent_dim: int = 32, beta: float = 1.0,
                 vae_lr: float = 1e-3, vae_batch_size: int = 64, hidden=(32,), seed: int = 0,
                 device: str = "cpu", **ffnn_opts):
        if int(vae_epochs) < 0 or int(latent_dim) < 1 or float(beta) < 0 \
                or not float(vae_lr) > 0 or int(vae_batch_size) < 1:
            raise RavisoError(f"bad fold-VAE options: vae_epochs={vae_epochs} (>= 0), latent_dim="
                              f"{latent_dim} (>= 1), beta={beta} (>= 0), vae_lr={vae_lr} (> 0), "
                              f"vae_batch_size={vae_batch_size} (>= 1)")
        self.name = name
        self.vae_opts = {"epochs": int(vae_epochs), "hidden": hidden_sizes(vae_hidden),
                         "latent_dim": int(latent_dim), "beta": float(beta),
                         "lr": float(vae_lr), "batch_size": int(vae_batch_size)}
        self.seed = int(seed)
        self.ffnn = FFNNRegressor(name, f"latent:{LATENT_KEY}", hidden=hidden, seed=seed,
                                  device=device, **ffnn_opts)
        self.device = self.ffnn.device
        self.vae: VAE | None = None
        self.vae_history_: list[dict] = []

    @property
    def history_(self) -> dict:
        return {"vae": self.vae_history_, **self.ffnn.history_}

    def _pretrain(self, genes: np.ndarray) -> None:
        """Train the fold VAE on `genes` (the training rows only)."""
        o = self.vae_opts
        X = torch.from_numpy(np.array(genes, dtype=np.float32))      # CPU; batches are moved
        cfg = VAEConfig(n_genes=X.shape[1], hidden=o["hidden"], latent_dim=o["latent_dim"],
                        beta=o["beta"])
        warmup = o["epochs"] // 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.vae = VAE(cfg).to(self.device)
            opt = make_optimizer(self.vae, o["lr"])
            gen = torch.Generator().manual_seed(self.seed)
            self.vae_history_ = []
            for epoch in range(o["epochs"]):
                batches = tensor_batches(X, o["batch_size"], generator=gen)
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
        out = np.empty((genes.shape[0], self.vae_opts["latent_dim"]), np.float32)
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
        Z = np.zeros((data.n, self.vae_opts["latent_dim"]), np.float32)
        Z[rows] = self.encode(data.genes[rows])
        view = dataclasses.replace(data, latent={LATENT_KEY: Z})
        self.ffnn.fit(view, rows, on_batch=on_batch)
        return self

    def predict(self, data: Labelled, idx) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        return self.ffnn.predict_source(self.encode(data.genes[idx]))
