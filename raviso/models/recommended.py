"""``recommended``: the one model `raviso fit` trains without the user choosing, at any size.

share_net is the best model on a full labelled set, but with a few dozen samples (a user's own
data) its inner early-stopping split holds one or two donors and it can end up worse than a ridge
regression or a per-tissue isoform fraction. So below ``select_below`` training samples (where
fits take seconds) this model cross-validates its candidates on the training rows themselves
(donor-grouped inner folds), and fits the convex blend of them with the lowest inner out-of-fold
MSE: one candidate when it wins outright, a weighted mix when mixing helps (a blend towards the
simple candidates is the shrinkage small data needs). Above it, it is share_net unchanged, so the
full-size margin is kept at no extra cost. What it chose and the inner-CV figures that chose it
are in ``selection_`` (saved in MODEL's model.json and printed by `raviso fit`).

Given a pretrained run (`fit`/`cv --pretrained`: the labelled set then carries its latent),
share_net with that latent as its context (``share_net[context=vae]``) and, for the VAE run, with
its encoder fine-tuned (``share_net[context=finetune]``) are more candidates: below
``select_below`` they join the blend; from ``select_below`` up the same inner CV chooses ONE
context for share_net (PCA, the latent or the fine-tuned encoder), since pretraining pays on some
data and not on other (docs/pretraining.md). Without a latent nothing changes.

The registry (`raviso.models.variants`) hands it a `Registry`: ``make(name, **options)``,
``needs(name, **options)`` and ``context_model(name)`` (the VariantSpec fact: trained by the
context recipe, so it goes without tissue by ``tissue=False``); candidates that are not
registered are skipped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.config import option
from ..core.errors import RavisoError
from ..data.labelled import Labelled
from .spec import OptionRecord

CANDIDATES = ("share_net", "pca_tissue_ridge", "isoform_fraction_tissue", "pca_ridge",
              "isoform_fraction_fit")
SELECTION_FILE = "recommended.json"
CHUNK_ROWS = 64
SELECT_BELOW = 500     # training samples from which it is share_net alone


@dataclass(frozen=True)
class RecommendedOptions(OptionRecord):
    """recommended's own options; every other option goes to its candidates."""

    candidates: str | tuple = option("+".join(CANDIDATES), "candidates joined by +")
    select_below: int = option(SELECT_BELOW, "training samples from which it is share_net alone",
                               check=lambda v: v >= 0, problem=">= 0")
    inner_k: int = option(3, "inner donor-grouped folds", check=lambda v: v >= 2, problem=">= 2")
    min_weight: float = option(0.02, "blend weights below it are dropped",
                               check=lambda v: 0 <= v < 0.5, problem="0 to 0.5")
    seed: int = option(0, "the inner folds (and the candidates' seed)")
    latent_context: str | None = option("vae", "the latent whose share_net context is a "
                                        "candidate when attached (none: off)")


class Registry(NamedTuple):
    """What recommended needs of the variant registry (`raviso.models.variants`)."""

    make: Callable            # (name, **options) -> a fresh predictor
    needs: Callable           # (name, **options) -> its inputs
    context_model: Callable   # name -> trained by the context recipe (takes tissue=False)


def donor_groups(data: Labelled, rows: np.ndarray) -> np.ndarray:
    """The donor of each row (a row without a donor is its own group)."""
    donor = getattr(data, "donor", None)
    if donor is None:
        return np.array([f"#{i}" for i in rows])
    return np.array([f"#{i}" if d is None or d != d or d == "" else str(d)
                     for i, d in zip(rows, np.asarray(donor, object)[rows])])


def inner_folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per row: donors in a seeded order, dealt round-robin into min(k, donors) folds."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    return (order % max(2, min(k, len(uniq))))[inverse]


def simplex_weights(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin over w >= 0, sum(w) = 1 of w'Gw - 2b'w (the blend's summed squared error up to a
    constant), exactly: every support set's equality-constrained optimum, the best feasible one."""
    m = len(b)
    best, best_w = np.inf, np.eye(m)[int(np.argmin(np.diag(G) - 2 * b))]
    for size in range(1, m + 1):
        for S in itertools.combinations(range(m), size):
            S = list(S)
            K = np.zeros((size + 1, size + 1))
            K[:size, :size], K[:size, size], K[size, :size] = G[np.ix_(S, S)], 1.0, 1.0
            sol = np.linalg.lstsq(K, np.r_[b[S], 1.0], rcond=None)[0][:size]
            if (sol < -1e-12).any():
                continue
            w = np.zeros(m)
            w[S] = np.clip(sol, 0, None) / max(np.clip(sol, 0, None).sum(), 1e-300)
            obj = w @ G @ w - 2 * b @ w
            if obj < best - 1e-12:
                best, best_w = obj, w
    return best_w


class Recommended:
    """A `Predictor`: inner-CV selection/blend of candidates on small sets, share_net otherwise."""

    variant_kind = "recommended"

    def __init__(self, registry: Registry, opts: RecommendedOptions, name: str = "recommended",
                 **options):
        self.name, self.registry = name, registry
        self.make, self.needs = registry.make, registry.needs
        self.options = {**options, "seed": opts.seed}
        cands = opts.candidates
        names = [c for n in ([cands] if isinstance(cands, str) else cands)
                 for c in str(n).split("+") if c]
        self.candidates = [c for c in names if self._usable(c)]
        if not self.candidates:
            raise RavisoError(f"recommended: none of the candidates {', '.join(names)} is usable")
        self.select_below, self.inner_k = opts.select_below, opts.inner_k
        self.min_weight, self.seed = opts.min_weight, opts.seed
        self.latent_context = (None if str(opts.latent_context or "").lower() in ("", "none")
                               else str(opts.latent_context))
        self.models_: dict = {}
        self.weights_: dict = {}
        self.selection_: dict = {}

    def _usable(self, name: str) -> bool:
        """Registered, and not reading tissue when asked to go without it (``tissue=False``)."""
        try:
            needs = self.needs(name, **self.options)
        except RavisoError:
            return False
        return (self.options.get("tissue", True) or "tissue" not in needs
                or self.registry.context_model(name))

    def _new(self, name: str):
        return self.make(name, **self.options)

    @property
    def tissues_(self) -> list:
        """Tissues of the one-hot of the fitted components that read tissue."""
        out = []
        for m in self.models_.values():
            out += [t for t in (getattr(m, "tissues_", None) or []) if t not in out]
        return out

    # -- fit / predict --------------------------------------------------------------------------
    def latent_candidates(self, data: Labelled) -> list[str]:
        """``share_net[context=<latent>]`` when that latent is attached to `data`, and
        ``share_net[context=finetune]`` when the VAE run's encoder is too."""
        key = self.latent_context
        if not (key and key in (getattr(data, "latent", None) or {})
                and "share_net" in self.candidates):
            return []
        tune = key == "vae" and key in (getattr(data, "encoders", None) or {})
        return [f"share_net[context={key}]"] + (["share_net[context=finetune]"] if tune else [])

    def fit(self, data: Labelled, train_idx) -> "Recommended":
        rows = np.asarray(train_idx, np.int64)
        groups = donor_groups(data, rows)
        n_groups = len(np.unique(groups))
        extra = self.latent_candidates(data)
        cands = list(self.candidates)
        if extra:
            at = cands.index("share_net") + 1
            cands[at:at] = extra
        base = {"n_train": int(len(rows)), "n_donors": int(n_groups),
                "select_below": self.select_below, "candidates": cands}
        if extra and len(rows) >= self.select_below and n_groups >= 2:
            self.selection_ = {**base, **self._select(data, rows, groups, ["share_net", *extra],
                                                      blend=False)}
        elif len(cands) == 1 or len(rows) >= self.select_below or n_groups < 2:
            chosen = cands[0]
            why = (f"{len(rows)} training samples >= select_below" if len(rows) >=
                   self.select_below else "one candidate or one donor: nothing to select by")
            self.selection_ = {**base, "mode": "fixed", "reason": why, "weights": {chosen: 1.0},
                               "chosen": chosen}
        else:
            self.selection_ = {**base, **self._select(data, rows, groups, cands)}
        self.weights_ = self.selection_["weights"]
        self.models_ = {c: self._new(c).fit(data, rows) for c in self.weights_}
        return self

    @property
    def latents_(self) -> list[str]:
        """The latents the fitted parts read (what a saved MODEL must encode at predict time)."""
        keys = set()
        for c in self.weights_:
            keys |= {n.split(":", 1)[1] for n in self.needs(c, **self.options)
                     if n.startswith("latent:")}
        return sorted(keys)

    def _select(self, data: Labelled, rows: np.ndarray, groups: np.ndarray, candidates: list,
                blend: bool = True) -> dict:
        """Inner donor-grouped CV of every candidate; the best convex blend of their predictions
        (``blend=False``: the single best candidate, share_net's context at full size)."""
        fold = inner_folds(groups, self.inner_k, self.seed)
        fewest = min(len(np.unique(groups[fold != f])) for f in range(int(fold.max()) + 1))
        # an inner fit on one donor leaves the context models no donor to stop early on
        cands = [c for c in candidates if fewest >= 2 or not self.registry.context_model(c)]
        if not cands:
            return {"mode": "fixed", "reason": "too few donors for an inner CV",
                    "weights": {candidates[0]: 1.0}, "chosen": candidates[0]}
        G, b, yy, count, per_fold = self._inner_gram(data, rows, fold, cands)
        if blend:
            w = simplex_weights(G / count, b / count)
        else:
            w = np.eye(len(cands))[int(np.argmin(np.diag(G) - 2 * b))]
        w[w < self.min_weight] = 0.0
        w /= w.sum()
        mse = {c: float((G[i, i] - 2 * b[i] + yy) / count) for i, c in enumerate(cands)}
        weights = {c: round(float(x), 4) for c, x in zip(cands, w) if x > 0}
        used = np.array([weights.get(c, 0.0) for c in cands])
        used /= used.sum()
        blend_mse = float((used @ G @ used - 2 * b @ used + yy) / count)
        chosen = next(iter(weights)) if len(weights) == 1 else " + ".join(
            f"{x:.2f} {c}" for c, x in weights.items())
        return {"mode": "inner-cv" if blend else "inner-cv-context",
                "inner_folds": int(fold.max()) + 1,
                "inner_mse": {k: round(v, 6) for k, v in mse.items()},
                "inner_mse_per_fold": {c: [round(f[i], 6) for f in per_fold]
                                       for i, c in enumerate(cands)},
                "blend_mse": round(blend_mse, 6), "weights": weights, "chosen": chosen}

    def _inner_gram(self, data: Labelled, rows: np.ndarray, fold: np.ndarray, cands: list):
        """Sums over the inner out-of-fold predictions P of each candidate and targets Y:
        (P P', P Y, Y Y, count, per-fold MSE per candidate): every blend's MSE follows from them."""
        m = len(cands)
        G, b, yy, count = np.zeros((m, m)), np.zeros(m), 0.0, 0
        per_fold = []
        for f in range(int(fold.max()) + 1):
            fit_rows, val_rows = rows[fold != f], rows[fold == f]
            fitted = [self._new(c).fit(data, fit_rows) for c in cands]
            sse = np.zeros(m)
            for s in range(0, len(val_rows), CHUNK_ROWS):
                r = val_rows[s:s + CHUNK_ROWS]
                Y = np.asarray(data.isoforms[r], np.float64)
                P = np.stack([np.asarray(model.predict(data, r), np.float64) for model in fitted])
                flat = P.reshape(m, -1)
                G += flat @ flat.T
                b += flat @ Y.ravel()
                yy += float(np.sum(Y * Y))
                count += Y.size
                sse += ((P - Y[None]) ** 2).reshape(m, -1).sum(axis=1)
            per_fold.append((sse / max(1, len(val_rows) * data.isoforms.shape[1])).tolist())
        return G, b, yy, count, per_fold

    def predict(self, data: Labelled, idx) -> np.ndarray:
        if not self.models_:
            raise RuntimeError(f"{self.name}: predict before fit")
        out = None
        for c, w in self.weights_.items():
            p = np.asarray(self.models_[c].predict(data, idx), np.float32) * np.float32(w)
            out = p if out is None else out + p
        return out

    # -- saving ---------------------------------------------------------------------------------
    def init_options(self) -> dict:
        return {**self.options, "candidates": "+".join(self.candidates),
                "select_below": self.select_below, "inner_k": self.inner_k,
                "min_weight": self.min_weight, "latent_context": self.latent_context}

    def save(self, directory) -> None:
        directory = Path(directory)
        for i, (c, model) in enumerate(self.models_.items()):
            sub = directory / f"part{i}"
            sub.mkdir()
            if hasattr(model, "save"):
                model.save(sub)
            else:
                save_state(model, sub)
        (directory / SELECTION_FILE).write_text(json.dumps(
            {"options": self.init_options(), "parts": list(self.models_),
             "weights": self.weights_, "selection": self.selection_}, indent=1))

    @classmethod
    def load(cls, directory, registry: Registry, load_part) -> "Recommended":
        """`load_part(sub_directory)` loads a saved savable component (`models.saved`)."""
        directory = Path(directory)
        meta = json.loads((directory / SELECTION_FILE).read_text())
        own, rest = RecommendedOptions.take(dict(meta["options"]))
        model = cls(registry, own, **rest)
        for i, c in enumerate(meta["parts"]):
            sub = directory / f"part{i}"
            model.models_[c] = (load_state(model._new(c), sub) if (sub / STATE_JSON).exists()
                                else load_part(sub))
        model.weights_, model.selection_ = dict(meta["weights"]), dict(meta["selection"])
        return model


def describe_selection(sel: dict | None) -> str:
    """One line: what `recommended` chose and the inner-CV figures that chose it."""
    if not sel:
        return ""
    if sel.get("mode") not in ("inner-cv", "inner-cv-context"):
        return f"recommended: {sel['chosen']} ({sel['reason']})"
    scores = ", ".join(f"{c} {m:.4f}" for c, m in sel["inner_mse"].items())
    what = ("share_net's context chosen" if sel["mode"] == "inner-cv-context"
            else f"blend {sel['blend_mse']:.4f}")
    return (f"recommended: {sel['chosen']} (inner {sel['inner_folds']}-fold donor-grouped CV on "
            f"{sel['n_train']} samples: {what}; {scores})")


STATE_JSON, STATE_NPZ = "state.json", "state.npz"


def save_state(model, directory: Path) -> None:
    """A fitted baseline's attributes: numpy arrays in state.npz, the rest in state.json."""
    arrays = {k: v for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in vars(model).items() if k not in arrays}
    np.savez_compressed(directory / STATE_NPZ, **arrays)
    (directory / STATE_JSON).write_text(json.dumps(rest, default=_jsonable))


def _jsonable(v):
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, np.ndarray):            # inside a tuple or list (a top-level one is in npz)
        return v.tolist()
    if isinstance(v, (tuple, set)):
        return list(v)
    raise TypeError(f"cannot save attribute of type {type(v).__name__}")


def load_state(model, directory: Path):
    with np.load(directory / STATE_NPZ) as z:
        model.__dict__.update({k: z[k] for k in z.files})
    model.__dict__.update(json.loads((directory / STATE_JSON).read_text()))
    return model
