"""The context share_net and ffnn_plus read: a per-fold PCA of the genes and/or a pretrained
latent, plus the tissue one-hot, fitted on the fitting rows only
(`raviso.models.context.recipe`)."""

from __future__ import annotations

import numpy as np
import torch

from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..baselines.standard import fit_pca, pca_transform
from ..ffnn.regressors import FeaturePipeline

CONTEXT_SCALES = ("variance", "unit")   # how the context columns are scaled
FINETUNE = "finetune"       # the pretrained encoder trained with the head (`context.finetune`)
FINETUNE_LATENT = "vae"     # the latent whose RUN it fine-tunes


def context_name(context: str | None = "pca", latent: str | None = None) -> str:
    """The canonical context: ``pca``, ``none`` (tissue only), a latent key (``vae``, ``ae``)
    or latents and ``pca`` joined by ``+`` (``vae+pca``). ``latent=`` is an alias of a latent
    context; the old form ``latent:<key>`` is accepted."""
    text = str(context or "pca")
    if latent and text == "pca":
        text = str(latent)
    parts = [p.strip().removeprefix("latent:") for p in text.split("+")]
    if not all(parts) or len(set(parts)) != len(parts) or ("none" in parts and len(parts) > 1):
        raise RavisoError(f"bad context {context!r}: pca, none, a latent (vae, ae) or "
                          "latents and pca joined by + (vae+pca)")
    return "+".join(parts)


def context_latents(context: str) -> list[str]:
    """The latent keys a context reads (the fine-tuned context: its RUN's)."""
    return [FINETUNE_LATENT if p == FINETUNE else p for p in context_name(context).split("+")
            if p not in ("pca", "none")]


class ContextFeatures:
    """c = [scaled context columns, tissue one-hot x tissue_scale], fitted on the fitting rows.

    With ``scale="variance"`` each column is divided by (its sd / the mean variance), so a
    decoupled weight decay shrinks the weights of weak components hardest; a tissue not seen in
    training gets an all-zero one-hot."""

    def __init__(self, context: str, n_components: int, tissue: bool, scale: str,
                 tissue_scale: float, seed: int):
        self.context, self.n_components, self.tissue = context_name(context), n_components, tissue
        self.scale, self.tissue_scale, self.seed = scale, tissue_scale, seed
        self.parts = self.context.split("+")
        self.pca_ = None

    def _raw(self, data: Labelled, rows: np.ndarray) -> list[np.ndarray]:
        out = []
        for p in self.parts:
            if p == "pca":
                X = FeaturePipeline("genes").source_matrix(data)[rows]
                if self.pca_ is None:
                    self.pca_ = fit_pca(X, self.n_components, self.seed)
                out.append(pca_transform(X, *self.pca_))
            elif p != "none":
                out.append(FeaturePipeline(f"latent:{p}").source_matrix(data)[rows]
                           .astype(np.float32))
        return out

    def _project(self, data: Labelled, rows: np.ndarray) -> np.ndarray:
        raw = self._raw(data, rows)
        if not raw:
            return np.zeros((len(rows), 0), np.float32)
        return raw[0] if len(raw) == 1 else np.concatenate(raw, axis=1)

    def fit(self, data: Labelled, rows: np.ndarray) -> "ContextFeatures":
        self.pca_ = None
        Z = self._project(data, rows)
        self.z_mean_ = Z.mean(axis=0)
        sd = np.where(Z.std(axis=0) > 1e-8, Z.std(axis=0), 1.0).astype(np.float64)
        if self.scale == "variance" and sd.size:
            sd = np.mean(sd ** 2) / sd
        self.z_std_ = sd.astype(np.float32)
        known = sorted({t for t in np.asarray(data.tissue)[rows].tolist() if t})
        self.tissues_ = known if self.tissue and len(known) > 1 else []
        return self

    def __call__(self, data: Labelled, rows: np.ndarray, device) -> torch.Tensor:
        Z = (self._project(data, rows) - self.z_mean_) / self.z_std_
        T = np.zeros((len(rows), len(self.tissues_)), np.float32)
        if self.tissues_:
            pos = {t: j for j, t in enumerate(self.tissues_)}
            for k, t in enumerate(np.asarray(data.tissue)[rows].tolist()):
                if t in pos:
                    T[k, pos[t]] = self.tissue_scale
        return torch.from_numpy(np.concatenate([Z, T], axis=1)).to(device)
