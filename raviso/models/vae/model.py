"""The paper's VAE (and its beta=0 plain-autoencoder variant) in plain PyTorch, no Ray; the
architecture, probabilistic model and loss conventions are in docs/models.md."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .config import PAPER_GENES, PAPER_HIDDEN, VAEConfig  # noqa: F401 (re-exported)

LOG_2PI = math.log(2.0 * math.pi)


class LossRecord(NamedTuple):
    """Batch means of per-sample sums (nats). A tuple, so DDP can traverse it."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def _mlp(sizes) -> nn.Sequential:
    """Linear + ReLU for every consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims: shape (n,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def gaussian_nll(x: torch.Tensor, xhat: torch.Tensor, log_s2: torch.Tensor | None) -> torch.Tensor:
    """Per-sample -log N(x; xhat, s^2) summed over genes, constant included: shape (n,)."""
    sq = (x - xhat).pow(2)
    if log_s2 is None:
        return 0.5 * (sq.sum(dim=1) + x.shape[1] * LOG_2PI)
    return 0.5 * (sq * torch.exp(-log_s2) + log_s2 + LOG_2PI).sum(dim=1)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = _mlp((c.n_genes, *c.hidden))
        self.mu = nn.Linear(c.hidden[-1], c.latent_dim)
        self.logvar = None if c.deterministic else nn.Linear(c.hidden[-1], c.latent_dim)
        self.decoder = nn.Sequential(_mlp((c.latent_dim, *reversed(c.hidden))),
                                     nn.Linear(c.hidden[0], c.n_genes))
        # per-gene observation log-variance; None means fixed unit variance
        self.log_s2 = nn.Parameter(torch.zeros(c.n_genes)) if c.learned_variance else None

    # -- the three pieces, scvi-style ------------------------------------------------------
    def inference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior parameters (mu, logvar); logvar is None for the deterministic AE."""
        h = self.encoder(x)
        return self.mu(h), (None if self.logvar is None else self.logvar(h))

    def generative(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z) on the log2(TPM+1) scale."""
        return self.decoder(z)

    def loss(self, x, xhat, mu, logvar, kl_weight: float = 1.0) -> LossRecord:
        recon = gaussian_nll(x, xhat, self.log_s2)
        kl = torch.zeros_like(recon) if logvar is None else kl_standard_normal(mu, logvar)
        recon, kl = recon.mean(), kl.mean()
        return LossRecord(loss=recon + self.config.beta * kl_weight * kl, elbo=-(recon + kl),
                          recon=recon, kl=kl)

    def forward(self, x: torch.Tensor, kl_weight: float = 1.0,
                generator: torch.Generator | None = None) -> LossRecord:
        """One loss record for a batch; `generator` makes the reparameterisation noise
        reproducible (validation uses a fixed one so epochs are compared on the same noise)."""
        mu, logvar = self.inference(x)
        z = mu if logvar is None else reparameterise(mu, logvar, generator)
        return self.loss(x, self.generative(z), mu, logvar, kl_weight)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean: the deterministic latent features used downstream."""
        return self.inference(x)[0]


def reparameterise(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
