"""The training recipe of share_net and ffnn_plus (siblings that differ only in their network),
top to bottom; why each step: docs/models.md.

1. An inner split of whole donors holds `val_fraction` of the training rows out to stop on.
2. The context c: a per-fold PCA of the genes and/or a pretrained latent, each column scaled,
   plus the tissue one-hot, fitted on the fitting rows only (`ContextFeatures`).
3. The network starts at its baseline (`build`: for share_net isoform_fraction_fit's shares),
   share_net's gene anchor at its closed-form fit (`anchor_start`, `raviso.models.context.anchor`),
   then its residual path at the ridge regression of the start's residual on c (the ridge start);
   each start kept only if it lowers the inner-validation MSE.
4. AdamW (decay on the weight matrices only) with a cosine schedule over `epochs`.
5. The epoch loop every torch model shares (`raviso.models.training.train_epochs`), scored on
   the held-out donors after every epoch, the start scored first.
6. Early stopping after `patience` epochs without a new best; the best weights (the start unless
   beaten) come back.
7. With `refit`, all of it again on every training row for the chosen number of epochs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ...core.config import option
from ...core.errors import RavisoError
from ...data.labelled import Labelled
from ..baselines.standard import fit_pca, pca_transform, ridge_select_fit
from ..ffnn.regressors import FeaturePipeline
from ..spec import OptionRecord
from ..training import (VAL_SPLITS, TrainState, chunked_mse, inner_split, make_adam,
                        target_getter, train_epochs)
from .residual import StartResidual

CHUNK_ROWS = 256        # rows per evaluation chunk: a few (256, n_isoforms) float32 temporaries
CONTEXT_SCALES = ("variance", "unit")   # how the context columns are scaled
FINETUNE = "finetune"       # the pretrained encoder trained with the head (`context.finetune`)
FINETUNE_LATENT = "vae"     # the latent whose RUN it fine-tunes


def _at_least(n):
    return lambda v: v >= n


@dataclass(frozen=True)
class RecipeOptions(OptionRecord):
    """The recipe's options (share_net's defaults; ffnn_plus overrides epochs and weight_decay)."""

    n_components: int = option(64, "PCA size of the context", check=_at_least(1), problem=">= 1")
    tissue: bool = option(True, "tissue one-hot in the context")
    epochs: int = option(60, "most epochs (early stopping picks fewer)", check=_at_least(0),
                         problem=">= 0")
    lr: float = option(3e-3, "AdamW's learning rate", check=lambda v: v > 0, problem="> 0")
    batch_size: int = option(64, "rows per step", check=_at_least(1), problem=">= 1")
    patience: int = option(8, "epochs without a better inner-validation MSE",
                           check=_at_least(1), problem=">= 1")
    val_fraction: float = option(0.15, "inner early-stopping split (whole donors)")
    val_split: str = option("rows", "val_fraction of the rows, or of the donors by tissue",
                            check=lambda v: v in VAL_SPLITS, problem=" or ".join(VAL_SPLITS))
    ridge_start: bool = option(True, "start the residual path at a ridge fit, if it helps")
    weight_decay: float = option(1.0, "AdamW decay on the context weight matrices",
                                 check=_at_least(0), problem=">= 0")
    refit: bool = option(False, "refit on all training rows for the chosen epochs")
    context_scale: str = option("variance", "context columns scaled by variance or to unit sd",
                                check=lambda v: v in CONTEXT_SCALES,
                                problem=" or ".join(CONTEXT_SCALES))
    tissue_scale: float = option(4.0, "value of the tissue one-hot", check=lambda v: v > 0,
                                 problem="> 0")
    seed: int = option(0, "weights, batch order, PCA and the inner split")


# -- 2. the context ---------------------------------------------------------------------------------
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

    def __init__(self, context: str, opts: RecipeOptions):
        self.context, self.n_components, self.tissue = context_name(context), \
            opts.n_components, opts.tissue
        self.scale, self.tissue_scale, self.seed = opts.context_scale, opts.tissue_scale, \
            opts.seed
        self.parts = self.context.split("+")
        self.pca_ = None

    def _project(self, data: Labelled, rows: np.ndarray) -> np.ndarray:
        raw = []
        for p in self.parts:
            if p == "pca":
                X = FeaturePipeline("genes").source_matrix(data)[rows]
                if self.pca_ is None:
                    self.pca_ = fit_pca(X, self.n_components, self.seed)
                raw.append(pca_transform(X, *self.pca_))
            elif p != "none":
                raw.append(FeaturePipeline(f"latent:{p}").source_matrix(data)[rows]
                           .astype(np.float32))
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


# -- the model the recipe trains ------------------------------------------------------------------
class ContextModel:
    """A `Predictor` trained by the recipe; a subclass gives its network (`build`,
    `empty_module`). ``module(c, g)`` maps context c (and, when the network's ``reads_genes``,
    the genes g) to log2(TPM+1)."""

    variant_kind = ""

    def __init__(self, name: str, context: str = "pca", device: str = "cpu", **options):
        self.name = name
        self.context = context_name(context)
        try:
            self.opts = RecipeOptions(**options)
        except (RavisoError, TypeError) as e:     # TypeError: an option the recipe does not have
            raise RavisoError(f"{name}: {e}") from None
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise RavisoError(f"bad device {device!r}: {e}") from None
        self.features = ContextFeatures(self.context, self.opts)
        self.module: nn.Module | None = None
        self.history_: dict = {}

    def build(self, data: Labelled, rows: np.ndarray, n_context: int):
        """(module at its start, the start's share per isoform, its free output per isoform)."""
        raise NotImplementedError

    def empty_module(self, state: dict) -> nn.Module:
        raise NotImplementedError

    def fit(self, data: Labelled, train_idx, on_batch=None) -> "ContextModel":
        """Steps 1-7 of the module's docstring."""
        o = self.opts
        everything = np.asarray(train_idx, np.int64)
        if len(everything) < 2:
            raise RavisoError(f"{self.name}: needs at least 2 training samples")
        rows, val_rows = inner_split(everything, data.donor, o.val_fraction, o.seed,  # 1.
                                     data.tissue, o.val_split)
        hist = self._fit_rows(data, rows, val_rows, o.epochs, None, on_batch)         # 2.-6.
        best = hist["best_epoch"]
        if o.refit and best > 0:                                                      # 7.
            used = {k: hist[k]["used"] for k in ("anchor_start", "ridge_start") if k in hist}
            refit = self._fit_rows(data, everything, None, best, used, on_batch)
            hist = {**hist, "refit": {"rows": len(everything), "epochs": best,
                                      "train_loss": refit["train_loss"]}}
        self.history_ = hist
        return self

    def _fit_rows(self, data: Labelled, rows: np.ndarray, val_rows: np.ndarray | None,
                  epochs: int, used: dict | None, on_batch) -> dict:
        """Steps 2-6 on `rows`. With `val_rows`: decide the starts (anchor, ridge) and stop early
        on them; without: train exactly `epochs` (the refit), with the starts `used` says."""
        o = self.opts
        self.features.fit(data, rows)                                                 # 2.
        C = self.features(data, rows, self.device)
        with torch.random.fork_rng(devices=[]):                                       # 3.
            torch.manual_seed(o.seed)
            self.module, share, free = self.build(data, rows, C.shape[1])
        self.module.to(self.device)
        self.n_out_ = data.isoforms.shape[1]
        score = None if val_rows is None else self._scorer(data, val_rows)
        starts = self._starts(data, rows, C, share, free, score, used)
        hist = self._train(data, rows, C, score, epochs, on_batch)
        hist["val_rows"] = 0 if val_rows is None else len(val_rows)
        return {**starts, **hist}

    def _starts(self, data: Labelled, rows: np.ndarray, C, share: np.ndarray, free: np.ndarray,
                score, used: dict | None) -> dict:
        """Step 3's decisions. The ridge start on the measured gene, kept if it lowers the
        inner-validation MSE; then (share_net) the fitted gene anchor with the ridge start redone
        on the anchored gene, kept only if that whole start beats the first. Without `score` (the
        refit): the starts `used` names."""
        o, m = self.opts, self.module
        ridge = lambda genes: self._ridge_start(data, rows, C, share, free, genes)  # noqa: E731
        if score is None:
            genes = self.anchor_start(data, rows, C) if used.get("anchor_start") else None
            if used.get("ridge_start"):
                ridge(genes)
            return {k: {"used": bool(v)} for k, v in used.items()}
        starts = {"ridge_start": {"used": False}}
        if o.ridge_start:
            starts["ridge_start"] = self._gated(score, lambda: ridge(None),
                                                lambda: self._ridge_reset(free))
        if not self.fits_anchor:
            return starts
        plain = {k: v.detach().clone() for k, v in m.named_parameters() if k in ("R", "free_bias")}
        rec = {"val_without": score()}
        genes = self.anchor_start(data, rows, C)
        if o.ridge_start:
            self._ridge_reset(free)
            ridge(genes)
        rec["val_with"] = score()
        rec["used"] = bool(rec["val_with"] < rec["val_without"])
        if not rec["used"]:         # the held-out donors prefer the measured gene
            self.anchor_reset()
            with torch.no_grad():
                for k, v in plain.items():
                    getattr(m, k).copy_(v)
        return {**starts, "anchor_start": rec,
                "ridge_start": starts["ridge_start"] if not rec["used"]
                else {**starts["ridge_start"], "used": o.ridge_start}}

    @staticmethod
    def _gated(score, apply, undo) -> dict:
        """A start applied and kept only if it lowers the inner-validation MSE (`undo`
        otherwise)."""
        out = {"val_without": score()}
        apply()
        out["val_with"] = score()
        out["used"] = bool(out["val_with"] < out["val_without"])
        if not out["used"]:         # the held-out donors say the start overfits
            undo()
        return out
    # -- 3. the starts: the network's own (share_net: the gene anchor) and the ridge ---------------
    fits_anchor = False

    def anchor_start(self, data: Labelled, rows: np.ndarray, C):
        """Fit the network's gene anchor; return the fitting rows' anchored genes (share_net)."""
        return None

    def anchor_reset(self) -> None:
        """Undo `anchor_start`."""

    @torch.no_grad()
    def _ridge_reset(self, free: np.ndarray) -> None:
        self.module.R.zero_()
        self.module.free_bias.copy_(torch.from_numpy(free.astype(np.float32)))

    @torch.no_grad()
    def _ridge_start(self, data: Labelled, rows: np.ndarray, C: torch.Tensor, share: np.ndarray,
                     free: np.ndarray, genes: np.ndarray | None = None) -> None:
        """The residual path at the ridge regression of the start's residual on the context
        (penalty by exact leave-one-out over the fitting rows, as ``pca_ridge``); `genes`: the
        fitting rows' anchored genes, when the anchor's start is used."""
        target = StartResidual(data, share, free, self.device, genes=genes, rows=rows)
        alpha, _, c_mean, coef, y_mean = ridge_select_fit(C.cpu().numpy(), target, rows=rows)
        self.ridge_alpha_ = alpha
        self.module.R.copy_(torch.from_numpy(coef))
        self.module.free_bias.add_(torch.from_numpy(
            (y_mean - c_mean @ coef.astype(np.float64)).astype(np.float32)).to(self.device))

    def _scorer(self, data: Labelled, rows: np.ndarray):
        """() -> the MSE of the current module on `rows` (the inner-validation donors)."""
        C, targets = self.features(data, rows, self.device), target_getter(data.isoforms, rows,
                                                                            self.device)
        forward = lambda s, e: self.module(C[s:e], self._genes(data, rows[s:e]))  # noqa: E731
        return lambda: chunked_mse(self.module, forward, targets, len(rows), CHUNK_ROWS)

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW: decoupled weight decay on the weight matrices only, none on the per-isoform and
        per-gene starting values (biases, shares, scales, blend)."""
        decay, rest = [], []
        for p in self.module.parameters():
            (decay if p.ndim == 2 else rest).append(p)
        groups = [{"params": decay, "weight_decay": self.opts.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        return make_adam(groups, self.opts.lr, decoupled=True)

    def _train(self, data: Labelled, rows: np.ndarray, C: torch.Tensor, score, epochs: int,
               on_batch) -> dict:
        """Steps 4-6: AdamW with a cosine schedule over the configured epochs (a refit follows the
        same rates), the shared epoch loop; with `score` early stopping, the start scored first
        and kept unless beaten. Without: exactly `epochs` epochs (the refit)."""
        o, module = self.opts, self.module
        opt = self._optimizer()                                                       # 4.
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, o.epochs))
        targets = target_getter(data.isoforms, rows, self.device)

        def loss_of(pos):
            pred = module(C[torch.from_numpy(pos).to(self.device)], self._genes(data, rows[pos]))
            return torch.mean((pred - targets(pos)) ** 2)

        hist = {"train_loss": [], "val_loss": [], "best_epoch": 0, "stopped_early": False,
                "rows_per_epoch": len(rows), "val_rows": 0}
        st = TrainState(module, opt, torch.Generator().manual_seed(o.seed), hist, o.patience)
        if score is not None:                     # the start is the epoch-0 candidate
            hist["val_loss"].append(score())
            st.stop.update(hist["val_loss"][0], module)
        for _ in train_epochs(st, rows, o.batch_size, epochs, loss_of, score, sched,  # 5.-6.
                              on_batch):
            pass
        last = st.stop.best if score is not None else (hist["train_loss"] or [0.0])[-1]
        if not math.isfinite(last):
            raise RavisoError(f"{self.name}: training diverged (MSE {last})")
        return hist

    def _genes(self, data: Labelled, rows: np.ndarray) -> torch.Tensor | None:
        if not getattr(self.module, "reads_genes", True):
            return None
        return torch.from_numpy(np.ascontiguousarray(data.genes[rows], np.float32)).to(self.device)

    @torch.no_grad()
    def predict(self, data: Labelled, idx) -> np.ndarray:
        if self.module is None:
            raise RuntimeError(f"{self.name}: predict before fit")
        idx = np.asarray(idx, np.int64)
        out = np.empty((len(idx), self.n_out_), np.float32)
        for s in range(0, len(idx), CHUNK_ROWS):
            r = idx[s:s + CHUNK_ROWS]
            out[s:s + len(r)] = self.module(self.features(data, r, self.device),
                                            self._genes(data, r)).cpu()
        return out

    @property
    def tissues_(self) -> list:
        """The tissues of the one-hot (those seen in training)."""
        return self.features.tissues_

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
