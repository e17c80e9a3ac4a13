"""The one training recipe of share_net and ffnn_plus (siblings that differ only in their network):
an inner donor split for early stopping, the context features, a ridge start of the residual
path, AdamW with a cosine schedule, early stopping that keeps the start unless it is beaten, an
optional refit on all rows, chunked prediction and the save hooks. Why each: docs/models.md."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..baselines.standard import ridge_select_fit
from .features import CONTEXT_SCALES, ContextFeatures, context_name
from ..ffnn.fit import VAL_SPLITS, inner_split, target_getter
from ..ffnn.optim import make_adam
from .share_module import StartResidual
from ..ffnn.state import EarlyStopping, seeded_epoch

CHUNK_ROWS = 256        # rows per evaluation chunk: a few (256, n_isoforms) float32 temporaries


@dataclass(frozen=True)
class RecipeOptions:
    """The recipe's options (share_net's defaults; ffnn_plus overrides epochs and weight_decay)."""

    n_components: int = 64          # PCA size of the context
    tissue: bool = True             # tissue one-hot in the context
    epochs: int = 60                # most epochs (early stopping picks fewer)
    lr: float = 3e-3
    batch_size: int = 64
    patience: int = 8               # epochs without a better inner-validation MSE
    val_fraction: float = 0.15      # inner early-stopping split (whole donors)
    val_split: str = "rows"         # val_fraction of the rows, or of the donors by tissue
    ridge_start: bool = True        # start the residual path at a ridge fit, if it helps
    weight_decay: float = 1.0       # AdamW decay on the context weight matrices
    refit: bool = False             # refit on all training rows for the chosen epochs
    context_scale: str = "variance"  # context columns scaled by variance or to unit sd
    tissue_scale: float = 4.0       # value of the tissue one-hot
    seed: int = 0

    def __post_init__(self):
        for f, cast in (("n_components", int), ("tissue", bool), ("epochs", int), ("lr", float),
                        ("batch_size", int), ("patience", int), ("val_fraction", float),
                        ("ridge_start", bool), ("weight_decay", float), ("refit", bool),
                        ("tissue_scale", float), ("seed", int)):
            object.__setattr__(self, f, cast(getattr(self, f)))
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0 or self.patience < 1 \
                or self.n_components < 1 or self.weight_decay < 0:
            raise RavisoError(f"bad options: epochs={self.epochs} (>= 0), batch_size="
                              f"{self.batch_size} (>= 1), lr={self.lr} (> 0), patience="
                              f"{self.patience} (>= 1), n_components={self.n_components} "
                              f"(>= 1), weight_decay={self.weight_decay} (>= 0)")
        if self.val_split not in VAL_SPLITS:
            raise RavisoError(f"bad options: val_split={self.val_split!r} (one of "
                              f"{', '.join(VAL_SPLITS)})")
        if self.context_scale not in CONTEXT_SCALES or not self.tissue_scale > 0:
            raise RavisoError(f"bad options: context_scale={self.context_scale!r} (one of "
                              f"{', '.join(CONTEXT_SCALES)}), tissue_scale={self.tissue_scale} "
                              "(> 0)")


class ContextModel:
    """A `Predictor` trained by the recipe; a subclass gives its network (`build`,
    `empty_module`) and `variant_kind`. ``module(c, g)`` maps context c (and, when the
    network's ``reads_genes``, the genes g) to log2(TPM+1)."""

    variant_kind = ""

    def __init__(self, name: str, context: str = "pca", device: str = "cpu", **options):
        self.name = name
        self.context = context_name(context)
        try:
            self.opts = RecipeOptions(**options)
        except RavisoError as e:
            raise RavisoError(f"{name}: {e}") from None
        except TypeError as e:          # an option the recipe does not have
            raise RavisoError(f"{name}: {e}") from None
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise RavisoError(f"bad device {device!r}: {e}") from None
        o = self.opts
        self.features = ContextFeatures(self.context, o.n_components, o.tissue, o.context_scale,
                                        o.tissue_scale, o.seed)
        self.module: nn.Module | None = None
        self.history_: dict = {}

    # -- the network (subclasses) --------------------------------------------------------------
    def build(self, data: Labelled, rows: np.ndarray, n_context: int):
        """(module at its start, the start's share per isoform, its free output per isoform)."""
        raise NotImplementedError

    def empty_module(self, state: dict) -> nn.Module:
        raise NotImplementedError

    # -- saving (`raviso.models.context.share_io`) ----------------------------------------------
    def init_options(self) -> dict:
        """The constructor options that rebuild this model (with name, context and device)."""
        return asdict(self.opts)

    def save(self, directory) -> None:
        from .share_io import save_share_model

        save_share_model(self, directory)

    @classmethod
    def load(cls, directory, device: str = "cpu"):
        from .share_io import load_share_model

        return load_share_model(directory, {cls.variant_kind: cls}, device)

    @property
    def tissues_(self) -> list:
        """The tissues of the one-hot (those seen in training)."""
        return self.features.tissues_

    def _context(self, data: Labelled, rows: np.ndarray) -> torch.Tensor:
        return self.features(data, rows, self.device)

    def _genes(self, data: Labelled, rows: np.ndarray) -> torch.Tensor | None:
        if not getattr(self.module, "reads_genes", True):
            return None
        return torch.from_numpy(np.ascontiguousarray(data.genes[rows], np.float32)).to(self.device)

    # -- fit / predict ---------------------------------------------------------------------------
    def fit(self, data: Labelled, train_idx, on_batch=None) -> "ContextModel":
        """Early stopping on an inner donor split picks the epoch count; with ``refit`` the model
        is fitted again on ALL the training rows for that many epochs."""
        o = self.opts
        everything = np.asarray(train_idx, np.int64)
        if len(everything) < 2:
            raise RavisoError(f"{self.name}: needs at least 2 training samples")
        rows, val_rows = inner_split(everything, data.donor, o.val_fraction, o.seed,
                                     data.tissue, o.val_split)
        hist = self._fit_rows(data, rows, val_rows, o.epochs, None, on_batch)
        best = hist["best_epoch"]
        if o.refit and best > 0:
            refit = self._fit_rows(data, everything, None, best, hist["ridge_start"]["used"],
                                   on_batch)
            hist = {**hist, "refit": {"rows": len(everything), "epochs": best,
                                      "train_loss": refit["train_loss"]}}
        self.history_ = hist
        return self

    def _fit_rows(self, data: Labelled, rows: np.ndarray, val_rows: np.ndarray | None,
                  epochs: int, use_ridge: bool | None, on_batch) -> dict:
        """Build the model from `rows` and train it for up to `epochs`. With `val_rows`: decide the
        ridge start and stop early on them; without: train exactly `epochs` (the refit)."""
        o = self.opts
        self.features.fit(data, rows)
        C = self._context(data, rows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.module, share, free = self.build(data, rows, C.shape[1])
        self.module.to(self.device)
        self.n_out_ = data.isoforms.shape[1]
        val = None if val_rows is None else (val_rows, self._context(data, val_rows),
                                             target_getter(data.isoforms, val_rows, self.device))
        ridge = {"used": bool(use_ridge)}
        if o.ridge_start and use_ridge is None:
            ridge["val_without"] = self._val_mse(data, *val)
            self._ridge_start(data, rows, C, share, free)
            ridge["val_with"] = self._val_mse(data, *val)
            ridge["used"] = ridge["val_with"] < ridge["val_without"]
            if not ridge["used"]:          # the held-out donors say the correction overfits
                with torch.no_grad():
                    self.module.R.zero_()
                    self.module.free_bias.copy_(torch.from_numpy(free.astype(np.float32)))
        elif o.ridge_start and use_ridge:
            self._ridge_start(data, rows, C, share, free)
        return {"ridge_start": ridge, **self._train(data, rows, C, val, epochs, on_batch)}

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW: decoupled weight decay on the weight matrices only, none on the per-isoform and
        per-gene starting values (biases, shares, scales, blend)."""
        decay, rest = [], []
        for p in self.module.parameters():
            (decay if p.ndim == 2 else rest).append(p)
        groups = [{"params": decay, "weight_decay": self.opts.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        return make_adam(groups, self.opts.lr, decoupled=True)

    @torch.no_grad()
    def _ridge_start(self, data: Labelled, rows: np.ndarray, C: torch.Tensor, share: np.ndarray,
                     free: np.ndarray) -> None:
        """Start the residual path at the ridge regression of the start's residual on the
        context (penalty by exact leave-one-out over the fitting rows, as ``pca_ridge``)."""
        target = StartResidual(data, share, free, self.device)
        alpha, _, c_mean, coef, y_mean = ridge_select_fit(C.cpu().numpy(), target, rows=rows)
        self.ridge_alpha_ = alpha
        self.module.R.copy_(torch.from_numpy(coef))
        self.module.free_bias.add_(torch.from_numpy(
            (y_mean - c_mean @ coef.astype(np.float64)).astype(np.float32)).to(self.device))

    @torch.no_grad()
    def _val_mse(self, data: Labelled, rows: np.ndarray, C: torch.Tensor, targets) -> float:
        self.module.eval()
        total = 0.0
        for s in range(0, len(rows), CHUNK_ROWS):
            r = rows[s:s + CHUNK_ROWS]
            d = self.module(C[s:s + len(r)], self._genes(data, r)) - targets(
                np.arange(s, s + len(r)))
            total += float(torch.sum(d.double() ** 2))
        self.module.train()
        return total / (len(rows) * data.isoforms.shape[1])

    def _epoch(self, data, rows, C, targets, opt, gen, epoch, on_batch) -> float:
        """One pass over `rows` in a seeded order; the mean training loss."""
        def loss_of(pos):
            pred = self.module(C[torch.from_numpy(pos).to(self.device)],
                               self._genes(data, rows[pos]))
            return torch.mean((pred - targets(pos)) ** 2)

        total = 0.0
        for loss, k in seeded_epoch(rows, self.opts.batch_size, gen, epoch, opt, loss_of,
                                    on_batch):
            total += float(loss) * k
        return total / len(rows)

    def _train(self, data: Labelled, rows: np.ndarray, C: torch.Tensor, val, epochs: int,
               on_batch) -> dict:
        """AdamW with a cosine schedule over the configured epochs (a refit follows the same
        rates). With `val` (rows, context, targets): early stopping, the start scored first and
        kept unless beaten. Without: exactly `epochs` epochs (the refit on all rows)."""
        opt = self._optimizer()
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.opts.epochs))
        gen = torch.Generator().manual_seed(self.opts.seed)
        targets = target_getter(data.isoforms, rows, self.device)
        stop = EarlyStopping(self.opts.patience) if val is not None else None
        hist = {"train_loss": [], "val_loss": [], "best_epoch": 0, "stopped_early": False,
                "rows_per_epoch": len(rows), "val_rows": len(val[0]) if stop else 0}
        if stop:
            hist["val_loss"].append(self._val_mse(data, *val))
            stop.update(hist["val_loss"][0], self.module)
        self.module.train()
        for epoch in range(epochs):
            hist["train_loss"].append(self._epoch(data, rows, C, targets, opt, gen, epoch,
                                                  on_batch))
            sched.step()
            if not stop:
                continue
            hist["val_loss"].append(self._val_mse(data, *val))
            if stop.update(hist["val_loss"][-1], self.module):
                hist["best_epoch"] = epoch + 1
            elif stop.done:
                hist["stopped_early"] = True
                break
        if stop:
            stop.restore(self.module)
        self.module.eval()
        hist["epochs_run"] = len(hist["train_loss"])
        last = stop.best if stop else (hist["train_loss"] or [0.0])[-1]
        if not math.isfinite(last):
            raise RavisoError(f"{self.name}: training diverged (MSE {last})")
        return hist

    @torch.no_grad()
    def predict(self, data: Labelled, idx) -> np.ndarray:
        if self.module is None:
            raise RuntimeError(f"{self.name}: predict before fit")
        idx = np.asarray(idx, np.int64)
        out = np.empty((len(idx), self.n_out_), np.float32)
        for s in range(0, len(idx), CHUNK_ROWS):
            r = idx[s:s + CHUNK_ROWS]
            out[s:s + len(r)] = self.module(self._context(data, r), self._genes(data, r)).cpu()
        return out
