"""``share_net[context=finetune]``: share_net whose context is the pretrained VAE's encoder, started
from the RUN's weights and trained end to end with the isoform head on the fit's rows.

The context is the encoder's deterministic mean (mu), centred and scaled by the pretrained
encoder's statistics on the fitting rows exactly as the frozen ``vae`` context is, so the model
starts as ``share_net[context=vae]`` and the recipe's inner donor split decides how far training
moves it (early stopping keeps the start unless it is beaten). The encoder learns at its own,
smaller rate (``encoder_lr``). The RUN's genes are matched by name to the labelled set's columns,
never by position. Why and when it pays: docs/models.md, docs/pretraining.md."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..training import make_adam
from .recipe import FINETUNE, FINETUNE_LATENT, ContextFeatures, RecipeOptions, context_name
from .share_io import load_share_model
from .share_net import ShareNet

FINETUNE_JSON = "finetune.json"     # beside share.json: the RUN's gene order and identity
FINETUNE_OPTIONS = ("encoder_lr",)  # options only the fine-tuned context takes
CHUNK_ROWS = 256
NEEDS_RUN = ("share_net[context=finetune] needs the pretrained VAE run whose encoder it "
             "fine-tunes: pass --pretrained RUN")


def context_factory(cls, finetune=None):
    """The variant factory of a context model: ``context=finetune`` builds `finetune` (share_net
    only), any other context `cls`, without the options only the fine-tuned context takes."""
    def factory(context: str = "pca", latent: str | None = None, **opts):
        context = context_name(context, latent)
        tuned = {k: opts.pop(k) for k in FINETUNE_OPTIONS if k in opts}
        if FINETUNE not in context.split("+"):
            return cls(context=context, **opts)
        if finetune is None or context != FINETUNE:
            raise RavisoError(f"context {context!r}: the fine-tuned encoder is share_net's "
                              "context alone (share_net[context=finetune])")
        return finetune(**opts, **tuned)
    return factory


def encoder_of(vae: nn.Module) -> nn.Sequential:
    """A copy of a VAE's encoder up to its mean: its hidden layers, then the mu layer."""
    return copy.deepcopy(nn.Sequential(*vae.encoder, vae.mu)).float()


def empty_encoder(state: dict) -> nn.Sequential:
    """An encoder of the shapes of the ``encoder.<i>.weight`` tensors in `state` (a saved state
    dict): Linear layers with a ReLU between consecutive ones, as `encoder_of` makes."""
    at = sorted(int(k.split(".")[1]) for k in state
                if k.startswith("encoder.") and k.endswith(".weight"))
    layers: list[nn.Module] = []
    for i, j in enumerate(at):
        n_out, n_in = state[f"encoder.{j}.weight"].shape
        layers += [nn.Linear(int(n_in), int(n_out))] + ([nn.ReLU()] if i < len(at) - 1 else [])
    return nn.Sequential(*layers)


class EncoderContext:
    """The context of `rows` computed on demand by the encoder as it is now: what the recipe
    indexes like a fixed context tensor (``C[positions]``, ``C[a:b]``, ``C.shape``, ``C.cpu()``),
    so the loss's gradient reaches the encoder and validation sees its current weights."""

    def __init__(self, features: "EncoderFeatures", data: Labelled, rows: np.ndarray, device):
        self.features, self.data, self.rows, self.device = features, data, rows, device
        self.shape = (len(rows), features.width)

    def __getitem__(self, pos) -> torch.Tensor:
        if isinstance(pos, torch.Tensor):
            pos = pos.cpu().numpy()
        return self.features.tensor(self.data, self.rows[pos], self.device)

    @torch.no_grad()
    def cpu(self) -> torch.Tensor:
        return torch.cat([self[s:s + CHUNK_ROWS].cpu()
                          for s in range(0, len(self.rows), CHUNK_ROWS)])


class EncoderFeatures(ContextFeatures):
    """c = [(mu - centre) / scale, tissue one-hot x tissue_scale], mu from ``encoder`` (the
    module's own, shared with it), centre and scale fitted on the fitting rows at the start."""

    def __init__(self, opts: RecipeOptions, device):
        super().__init__("none", opts)
        self.context, self.device = FINETUNE, device
        self.encoder: nn.Module | None = None
        self.genes: list[str] = []          # the RUN's gene order (what the encoder reads)
        self.run_: dict = {}
        self._columns: tuple = (None, None)

    def start(self, data: Labelled) -> None:
        """The pretrained encoder, fresh from the RUN (every fit starts from it)."""
        loaders = getattr(data, "encoders", None) or {}
        if FINETUNE_LATENT not in loaders:
            raise RavisoError(NEEDS_RUN)
        run = loaders[FINETUNE_LATENT]()
        self.encoder = encoder_of(run.model).to(self.device)
        self.genes, self.run_ = list(run.genes), {"name": run.name, "path": str(run.path)}
        self._columns = (None, None)

    def columns(self, data: Labelled) -> np.ndarray:
        """The column of each RUN gene in `data`, matched by name."""
        if self._columns[0] is not data.gene_names:
            pos = {g: j for j, g in enumerate(data.gene_names)}
            missing = [g for g in self.genes if g not in pos]
            if missing:
                raise RavisoError(f"{len(missing)} of the {len(self.genes)} genes of the "
                                  f"fine-tuned encoder are not in the data (e.g. {missing[0]}); "
                                  "genes are matched by name")
            self._columns = (data.gene_names, np.array([pos[g] for g in self.genes], np.int64))
        return self._columns[1]

    def mu(self, data: Labelled, rows: np.ndarray, device) -> torch.Tensor:
        X = np.asarray(data.genes[np.asarray(rows, np.int64)])[:, self.columns(data)]
        return self.encoder(torch.from_numpy(np.ascontiguousarray(X, np.float32)).to(device))

    @torch.no_grad()
    def _project(self, data: Labelled, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([self.mu(data, rows[s:s + CHUNK_ROWS], self.device).cpu().numpy()
                               for s in range(0, len(rows), CHUNK_ROWS)])

    def fit(self, data: Labelled, rows: np.ndarray) -> "EncoderFeatures":
        self.start(data)
        return super().fit(data, np.asarray(rows, np.int64))

    @property
    def width(self) -> int:
        return len(self.z_mean_) + len(self.tissues_)

    def tensor(self, data: Labelled, rows: np.ndarray, device) -> torch.Tensor:
        at = lambda a: torch.from_numpy(np.asarray(a, np.float32)).to(device)  # noqa: E731
        Z = (self.mu(data, rows, device) - at(self.z_mean_)) / at(self.z_std_)
        T = np.zeros((len(rows), len(self.tissues_)), np.float32)
        pos = {t: j for j, t in enumerate(self.tissues_)}
        for k, t in enumerate(np.asarray(data.tissue)[rows].tolist()):
            if t in pos:
                T[k, pos[t]] = self.tissue_scale
        return torch.cat([Z, at(T)], dim=1)

    def __call__(self, data: Labelled, rows: np.ndarray, device):
        """While training (autograd on): an `EncoderContext`; else the context tensor."""
        lazy = EncoderContext(self, data, np.asarray(rows, np.int64), device)
        return lazy if torch.is_grad_enabled() else lazy[:]


class FineTuneShareNet(ShareNet):
    """A `Predictor`: share_net with the pretrained encoder fine-tuned as its context. Options:
    ``encoder_lr`` (the encoder's learning rate; the head's is ``lr``) and
    `raviso.models.context.recipe.RecipeOptions` (``n_components`` is not read)."""

    variant_kind = "share_net_finetune"

    def __init__(self, name: str = "share_net", context: str = FINETUNE, device: str = "cpu",
                 encoder_lr: float = 3e-4, **options):
        if context_name(context) != FINETUNE:
            raise RavisoError(f"{name}: the fine-tuned model's context is {FINETUNE}, not "
                              f"{context!r}")
        super().__init__(name, FINETUNE, device, **options)
        if not float(encoder_lr) > 0:
            raise RavisoError(f"{name}: bad options: encoder_lr={encoder_lr} (> 0)")
        self.encoder_lr = float(encoder_lr)
        self.features = EncoderFeatures(self.opts, self.device)

    def init_options(self) -> dict:
        return {**super().init_options(), "encoder_lr": self.encoder_lr}

    def build(self, data: Labelled, rows: np.ndarray, n_context: int):
        module, share, free = super().build(data, rows, n_context)
        module.encoder = self.features.encoder       # trained, saved and restored with the head
        return module, share, free

    def empty_module(self, state: dict) -> nn.Module:
        module = super().empty_module({k: v for k, v in state.items()
                                       if not k.startswith("encoder.")})
        module.encoder = self.features.encoder = empty_encoder(state)
        return module

    def _optimizer(self) -> torch.optim.Optimizer:
        """The recipe's AdamW groups for the head; the encoder at ``encoder_lr``, no decay."""
        enc = list(self.module.encoder.parameters())
        mine = {id(p) for p in enc}
        head = [p for p in self.module.parameters() if id(p) not in mine]
        groups = [{"params": [p for p in head if p.ndim == 2],
                   "weight_decay": self.opts.weight_decay},
                  {"params": [p for p in head if p.ndim != 2], "weight_decay": 0.0},
                  {"params": enc, "weight_decay": 0.0, "lr": self.encoder_lr}]
        return make_adam(groups, self.opts.lr, decoupled=True)

    def fit(self, data: Labelled, train_idx, on_batch=None) -> "FineTuneShareNet":
        super().fit(data, train_idx, on_batch)
        self.history_["encoder"] = {**self.features.run_, "encoder_lr": self.encoder_lr}
        return self

    # -- saving: share_net's files + the RUN's gene order ----------------------------------------
    def save(self, directory) -> None:
        super().save(directory)
        (Path(directory) / FINETUNE_JSON).write_text(json.dumps(
            {"run": self.features.run_, "genes": self.features.genes}))

    @classmethod
    def load(cls, directory, device: str = "cpu") -> "FineTuneShareNet":
        model = load_share_model(directory, {cls.variant_kind: cls}, device)
        try:
            meta = json.loads((Path(directory) / FINETUNE_JSON).read_text())
            model.features.genes, model.features.run_ = list(meta["genes"]), dict(meta["run"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RavisoError(f"{FINETUNE_JSON} is damaged or missing ({type(e).__name__}); "
                              "refit the model", directory) from None
        return model


def is_finetune_model(directory) -> bool:
    return (Path(directory) / FINETUNE_JSON).is_file()
