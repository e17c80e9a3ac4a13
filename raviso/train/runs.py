"""Load a finished pretraining RUN (written by `raviso pretrain`) for encoding and prediction.
Design notes: docs/stages.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.align import column_index, take_columns
from ..core.errors import RavisoError
from ..core.inventory import sha256 as file_sha256, verify
from ..models.vae.model import VAE, VAEConfig

RERUN = "re-run `raviso pretrain` (or copy the RUN again)"


@dataclass
class Run:
    path: Path
    name: str
    genes: list[str]
    model_config: VAEConfig
    train_config: dict
    model: VAE

    @property
    def latent_dim(self) -> int:
        return self.model_config.latent_dim

    def encode(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Posterior means of rows already in `self.genes` order."""
        import torch

        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.genes):
            raise RavisoError(f"expected (n, {len(self.genes)}) gene expression, got {X.shape}",
                              self.path)
        out = np.empty((X.shape[0], self.latent_dim), np.float32)
        with torch.no_grad():
            for i in range(0, X.shape[0], batch_size):
                out[i:i + batch_size] = self.model.encode(torch.from_numpy(X[i:i + batch_size])).numpy()
        return out

    def encode_named(self, X: np.ndarray, gene_names, source=None) -> np.ndarray:
        """Encode rows whose columns are `gene_names` (any order); every model gene must be
        present (a missing gene is an error naming them, via `raviso.io.align`)."""
        idx, _ = column_index(gene_names, self.genes, source=source, what="model genes")
        return self.encode(take_columns(np.asarray(X), idx))


def weights_sha256(path) -> str:
    """The checksum of a finished RUN's weights: recorded in config.json by pretrain, else
    computed. With the RUN's resolved path it is the run's identity (latent caches check it)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    return config.get("weights_sha256") or file_sha256(path / config.get("weights",
                                                                         "model.safetensors"))


def is_finished(path) -> bool:
    return (Path(path) / "config.json").is_file()


def load_run(path) -> Run:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise RavisoError("no such run directory", path)
    if not is_finished(path):
        hint = " (continue it with `raviso pretrain --resume`)" if (path / "run.json").exists() else ""
        raise RavisoError(f"not a finished pretraining run: no config.json{hint}", path)
    try:
        config = json.loads((path / "config.json").read_text())
        names = (config.get("genes", "genes.txt"), config.get("weights", "model.safetensors"))
        verify(path, config.get("files"), "RUN", RERUN, only=names)
        genes = (path / names[0]).read_text().splitlines()
        mc = VAEConfig.from_dict(config["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            UnicodeDecodeError, FileNotFoundError) as e:
        which = getattr(e, "filename", None) or "config.json"
        raise RavisoError(f"{Path(which).name} is damaged ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:160] if str(e) else ''}); {RERUN}",
                          path) from None
    if len(genes) != mc.n_genes:
        raise RavisoError(f"genes.txt lists {len(genes)} genes, the model takes {mc.n_genes}: "
                          f"the RUN is damaged; {RERUN}", path)
    model = VAE(mc)
    weights = path / names[1]
    try:
        model.load_state_dict(load_file(str(weights)))
    except (FileNotFoundError, SafetensorError, RuntimeError) as e:
        raise RavisoError(f"{names[1]} cannot be loaded ({str(e).splitlines()[0][:160]}): the "
                          f"RUN is damaged; {RERUN}", path) from None
    model.eval()
    return Run(path=path, name=config.get("run_name") or path.name, genes=genes,
               model_config=mc, train_config=config.get("train", {}), model=model)
