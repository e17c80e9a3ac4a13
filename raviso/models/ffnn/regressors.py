"""Feed-forward isoform regressors (plain PyTorch, no Ray): `FFNNRegressor` is a `FeaturePipeline`
(which matrix, optional PCA, optional standardisation, fitted on the training rows only) followed
by an `FFNN`; the paper's vae_ffnn, ae_ffnn and gene_ffnn and pca_ffnn are all of them. Training
choices and the saved form: docs/models.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.config import option
from ...core.errors import RavisoError
from ...core.metrics import column_mean, column_std
from ...data.labelled import Labelled
from ..baselines.standard import fit_pca, pca_transform
from ..spec import OptionRecord
from ..training import (PREDICT_ROWS, TrainState, chunked_mse, inner_split, make_adam,
                        target_getter, train_epochs)

SAVE_JSON = "regressor.json"
SAVE_TENSORS = "regressor.safetensors"
FORMAT = "raviso-ffnn-regressor"


class FFNN(nn.Module):
    """n_in -> hidden[0] -> ReLU -> ... -> hidden[-1] -> ReLU -> n_out (linear)."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int):
        super().__init__()
        layers: list[nn.Module] = []
        d = n_in
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FeaturePipeline:
    """Which matrix feeds the network ("genes" or "latent:<key>"), then optional PCA (k
    components) and optional per-feature standardisation, each fitted on training rows only."""

    def __init__(self, source: str, n_components: int | None = None, scale: bool = True,
                 seed: int = 0):
        if source != "genes" and not source.startswith("latent:"):
            raise RavisoError(f"unknown feature source {source!r} (genes or latent:<name>)")
        self.source = source
        self.n_components = None if n_components is None else int(n_components)
        self.scale = bool(scale)
        self.seed = int(seed)
        self.arrays: dict[str, np.ndarray] = {}

    def source_matrix(self, data: Labelled) -> np.ndarray:
        if self.source == "genes":
            return data.genes
        key = self.source.split(":", 1)[1]
        if key not in data.latent:
            have = ", ".join(sorted(data.latent)) or "none"
            raise RavisoError(f"the labelled set has no latent {key!r} attached (have: {have}); "
                              f"encode it with the matching pretrained run")
        return data.latent[key]

    def fit(self, data: Labelled, rows: np.ndarray) -> "FeaturePipeline":
        X = self.source_matrix(data)[rows]
        self.arrays = {}
        if self.n_components is not None:
            self.arrays["pca_mean"], self.arrays["pca_components"] = fit_pca(
                X, self.n_components, self.seed)
            X = pca_transform(X, self.arrays["pca_mean"], self.arrays["pca_components"])
        if self.scale:
            mean, std = column_mean(X), column_std(X)
            self.arrays["scale_mean"] = mean.astype(np.float32)
            self.arrays["scale_std"] = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        self.n_out = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Source-matrix rows -> network input, float32."""
        a = self.arrays
        if "pca_components" in a:
            X = pca_transform(X, a["pca_mean"], a["pca_components"])
        if "scale_mean" in a:
            X = (X - a["scale_mean"]) / a["scale_std"]
        return np.ascontiguousarray(X, dtype=np.float32)

    def config(self) -> dict:
        return {"source": self.source, "n_components": self.n_components, "scale": self.scale,
                "seed": self.seed, "n_out": self.n_out}

    @classmethod
    def from_saved(cls, cfg: dict, arrays: dict[str, np.ndarray]) -> "FeaturePipeline":
        fp = cls(cfg["source"], cfg["n_components"], cfg["scale"], cfg["seed"])
        fp.arrays = arrays
        fp.n_out = cfg["n_out"]
        return fp


def hidden_sizes(hidden) -> tuple[int, ...]:
    """(32,), 32, [256, 32] or "256,32" -> a tuple of positive ints."""
    if isinstance(hidden, str):
        parts = [p for p in hidden.replace(" ", "").split(",") if p]
    elif isinstance(hidden, (int, np.integer)):
        parts = [hidden]
    else:
        parts = list(hidden)
    try:
        out = tuple(int(p) for p in parts)
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise RavisoError(f"hidden sizes must be positive integers, got {hidden!r}")
    return out


def read_saved(d: Path, json_name: str, tensors_name: str, what: str) -> tuple[dict, dict]:
    """A saved torch model's (config, tensors) from ``json_name`` + ``tensors_name`` in `d`; a
    missing or unreadable file is one RavisoError naming it (safetensors gives no filename)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return json.loads((d / json_name).read_text()), load_file(str(d / tensors_name))
    except FileNotFoundError as e:
        missing = Path(e.filename or tensors_name).name
        raise RavisoError(f"not a saved {what} (missing {missing})", d) from None
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError) as e:
        raise RavisoError(f"corrupt saved {what}: {e}", d) from None


def _positive(v) -> bool:
    return v >= 1


@dataclass(frozen=True)
class FFNNOptions(OptionRecord):
    """An FFNN regressor's options (the paper's training: Adam, 100 epochs, no early stopping)."""

    hidden: tuple = option((32,), "hidden layer widths: 32, [256, 32] or '256,32'")
    n_components: int | None = option(None, "PCA of the input first (None: the input itself)",
                                      check=lambda v: v is None or v >= 1, problem=">= 1")
    scale: bool = option(True, "standardise each input feature on the training rows")
    epochs: int = option(100, "epochs (all of them, unless early_stopping)",
                         check=lambda v: v >= 0, problem=">= 0")
    batch_size: int = option(64, "rows per step", check=_positive, problem=">= 1")
    lr: float = option(1e-4, "Adam's learning rate", check=lambda v: v > 0, problem="> 0")
    seed: int = option(0, "weights, batch order and the inner split")
    early_stopping: bool = option(False, "stop on an inner split of whole donors")
    val_fraction: float = option(0.1, "the inner split's share of the rows",
                                 check=lambda v: 0 < v < 1, problem="in (0, 1)")
    patience: int = option(10, "epochs without a better inner-validation MSE",
                           check=_positive, problem=">= 1")
    device: str = option("cpu", "torch device")

    def __post_init__(self):
        object.__setattr__(self, "hidden", hidden_sizes(self.hidden))
        super().__post_init__()

    def saved(self) -> dict:
        """The training options regressor.json keeps (the rest is saved beside them)."""
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "lr", "seed",
                                              "early_stopping", "val_fraction", "patience")}


class FFNNRegressor:
    """A `Predictor`: feature pipeline + FFNN trained on the training rows only."""

    def __init__(self, name: str, source: str, opts: FFNNOptions | None = None):
        self.name, self.opts = name, opts if opts is not None else FFNNOptions()
        self.hidden = self.opts.hidden
        self.features = FeaturePipeline(source, self.opts.n_components, self.opts.scale,
                                        self.opts.seed)
        try:
            self.device = torch.device(self.opts.device)
        except RuntimeError as e:
            raise RavisoError(f"bad device {self.opts.device!r}: {e}") from None
        self.model: FFNN | None = None
        self.history_: dict = {}

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        X = self.features.transform(X)
        if not X.flags.writeable:      # a view of an object-store array: torch wants writable
            X = X.copy()
        return torch.from_numpy(X).to(self.device)

    def fit(self, data: Labelled, train_idx, on_batch=None) -> "FFNNRegressor":
        for _ in self.fit_steps(data, train_idx, on_batch=on_batch):
            pass
        return self

    def fit_steps(self, data: Labelled, train_idx, on_batch=None, resume: dict | None = None):
        """`fit` one epoch at a time: yields a `TrainState` per epoch (`raviso tune` scores and
        checkpoints between them; ``resume`` is a `TrainState.state_dict` to continue from)."""
        o = self.opts
        rows = np.asarray(train_idx, np.int64)
        val_rows = None
        if o.early_stopping:
            rows, val_rows = inner_split(rows, data.donor, o.val_fraction, o.seed)
        self.features.fit(data, rows)
        src = self.features.source_matrix(data)
        X = self._tensor(src[rows])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.model = FFNN(X.shape[1], self.hidden, data.isoforms.shape[1])
        with torch.no_grad():
            self.model.net[-1].bias.copy_(torch.from_numpy(
                column_mean(data.isoforms, rows).astype(np.float32)))
        model = self.model.to(self.device)
        targets = target_getter(data.isoforms, rows, self.device)

        def loss_of(pos):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                out = model(X[torch.from_numpy(pos).to(self.device)])
            return nn.functional.mse_loss(out.float(), targets(pos))

        score = None
        if val_rows is not None:
            X_val = self._tensor(src[val_rows])
            val_targets = target_getter(data.isoforms, val_rows, self.device)
            score = lambda: chunked_mse(model, lambda s, e: model(X_val[s:e]),  # noqa: E731
                                        val_targets, len(val_rows), PREDICT_ROWS)
        hist = {"train_loss": [], "val_loss": [], "best_epoch": None, "stopped_early": False,
                "rows_per_epoch": len(rows)}
        st = TrainState(model, make_adam(model.parameters(), o.lr),
                        torch.Generator().manual_seed(o.seed), hist, o.patience)
        if resume is not None:
            st.load_state_dict(resume)
        self.history_ = yield from train_epochs(st, rows, o.batch_size, o.epochs, loss_of, score,
                                                on_batch=on_batch)

    def predict(self, data: Labelled, idx) -> np.ndarray:
        return self.predict_source(self.features.source_matrix(data)[np.asarray(idx, np.int64)])

    @torch.no_grad()
    def predict_source(self, X: np.ndarray) -> np.ndarray:
        """Rows of the source matrix (genes, or the latent this model was trained on) ->
        isoforms, log2(TPM+1), float32 (n, n_isoforms)."""
        if self.model is None:
            raise RuntimeError(f"{self.name}: predict before fit")
        self.model.eval()
        out = np.empty((X.shape[0], self.model.net[-1].out_features), np.float32)
        for s in range(0, X.shape[0], PREDICT_ROWS):
            out[s:s + PREDICT_ROWS] = self.model(self._tensor(X[s:s + PREDICT_ROWS])).cpu().numpy()
        return out

    # -- saving ----------------------------------------------------------------------------
    def save(self, directory) -> None:
        """Write regressor.json + regressor.safetensors into an existing directory (the caller
        makes it atomic, e.g. with `raviso.core.atomic.atomic_dir`)."""
        from safetensors.torch import save_file

        if self.model is None:
            raise RuntimeError(f"{self.name}: save before fit")
        d = Path(directory)
        tensors = {f"model.{k}": v.detach().cpu().contiguous()
                   for k, v in self.model.state_dict().items()}
        tensors.update({f"features.{k}": torch.from_numpy(np.ascontiguousarray(v))
                        for k, v in self.features.arrays.items()})
        save_file(tensors, str(d / SAVE_TENSORS))
        cfg = {"format": FORMAT, "version": 1, "name": self.name, "hidden": list(self.hidden),
               "n_in": self.model.net[0].in_features,
               "n_out": self.model.net[-1].out_features,
               "features": self.features.config(), "options": self.opts.saved(),
               "history": self.history_}
        (d / SAVE_JSON).write_text(json.dumps(cfg, indent=2))

    @classmethod
    def load(cls, directory, device: str = "cpu") -> "FFNNRegressor":
        d = Path(directory)
        cfg, tensors = read_saved(d, SAVE_JSON, SAVE_TENSORS, "regressor")
        if cfg.get("format") != FORMAT:
            raise RavisoError(f"not a saved regressor (format {cfg.get('format')!r})", d)
        fcfg = cfg["features"]
        reg = cls(cfg["name"], fcfg["source"], FFNNOptions(
            hidden=cfg["hidden"], n_components=fcfg["n_components"], scale=fcfg["scale"],
            device=device, **cfg["options"]))
        reg.features = FeaturePipeline.from_saved(
            fcfg, {k[len("features."):]: v.numpy() for k, v in tensors.items()
                   if k.startswith("features.")})
        reg.model = FFNN(cfg["n_in"], reg.hidden, cfg["n_out"])
        reg.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                   if k.startswith("model.")})
        reg.model.to(reg.device).eval()
        reg.history_ = cfg.get("history", {})
        return reg
