"""The registry of everything `raviso cv` can train and compare: one `VariantSpec` per variant.

A variant is a `Predictor` (below): ``fit`` looks at the rows in ``train_idx`` only, ``predict``
returns log2(TPM+1) for the isoform columns. Its record says its options (from its factory's
signature), inputs, kind, memory footprint and search space; `describe()` lists them. Options
are shared by all variants (an option a variant does not take is ignored by it) or given for one
variant: ``{"lr": 1e-3, "share_net": {"lr": 3e-3}}`` or the name ``share_net[lr=3e-3]``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..core.errors import RavisoError
from ..data.labelled import Labelled
from .baselines.standard import (IsoformFractionBaseline, MeanBaseline, PCARidgeBaseline,
    TissueMeanBaseline)
from .baselines.tissue import IsoformFractionTissueBaseline, PCATissueRidgeBaseline
from .context.ffnn_plus import FFNNPlus
from .context.finetune import FineTuneShareNet, context_factory
from .context.recipe import RecipeOptions, context_latents, context_name
from .context.share_net import ShareNet
from .ffnn.regressors import FFNNOptions, FFNNRegressor
from .recommended import CANDIDATES, Recommended, RecommendedOptions, Registry
from .spec import FFNN_ISOFORM_BYTES, VariantSpec, parse_spec
from .vae.foldvae import FoldVAEFFNN, FoldVAEOptions


class Predictor(Protocol):
    name: str

    def fit(self, data: Labelled, train_idx: np.ndarray) -> "Predictor": ...

    def predict(self, data: Labelled, idx: np.ndarray) -> np.ndarray: ...


# -- factories -------------------------------------------------------------------------------
def ffnn_options(name: str, options: dict, **defaults) -> FFNNOptions:
    """The FFNN options of variant `name`: its own `defaults`, then `options`."""
    try:
        return FFNNOptions(**{**defaults, **options})
    except (RavisoError, TypeError) as e:
        raise RavisoError(f"{name}: {e}") from None


def _latent_ffnn(name: str, default_latent: str):
    def factory(latent: str = default_latent, **opts) -> FFNNRegressor:
        return FFNNRegressor(name, f"latent:{latent}", ffnn_options(name, opts))
    return factory


def gene_ffnn(**opts) -> FFNNRegressor:
    return FFNNRegressor("gene_ffnn", "genes", ffnn_options("gene_ffnn", opts, hidden=(256, 32)))


def pca_ffnn(**opts) -> FFNNRegressor:
    return FFNNRegressor("pca_ffnn", "genes", ffnn_options("pca_ffnn", opts, n_components=256))


def isoform_fraction():
    return IsoformFractionBaseline("isoform_fraction")


def isoform_fraction_fit(seed: int = 0):
    return IsoformFractionBaseline("isoform_fraction_fit", share="fit", seed=seed)


def recommended(**opts) -> Recommended:
    own, rest = RecommendedOptions.take(opts)
    return Recommended(registry(), own, **rest)


def _recommended_needs(o: dict) -> set:
    return set().union(*(variant_needs(c, **o) for c in CANDIDATES if c in REGISTRY))


# -- inputs ------------------------------------------------------------------------------------
def _latent_needs(default: str):
    return lambda o: {f"latent:{o.get('latent') or default}"}


def _context_needs(o: dict) -> set:   # genes: the share term and the PCA context
    return {"genes", "tissue"} | {f"latent:{k}" for k in
                                  context_latents(context_name(o.get("context") or "pca",
                                                               o.get("latent")))}


GENES = lambda o: {"genes"}   # noqa: E731

# -- default search spaces (`raviso tune`) -------------------------------------------------------
_BATCH = {"choice": [32, 64, 128]}
_REGULARISE = {"dropout": {"uniform": [0.0, 0.5]}, "weight_decay": {"loguniform": [1e-7, 1e-3]}}
LATENT_FFNN_SPACE = {"lr": {"loguniform": [1e-4, 1e-2]},
                     "hidden": {"choice": ["32", "64", "128", "256", "128,32"]},
                     "batch_size": _BATCH, **_REGULARISE}
GENE_FFNN_SPACE = {"lr": {"loguniform": [3e-5, 3e-3]},
                   "hidden": {"choice": ["256,32", "512,64", "128,32", "256", "1024,128"]},
                   "batch_size": _BATCH, **_REGULARISE}
CONTEXT_SPACE = {"n_components": {"choice": [16, 32, 64, 128]},
                 "tissue": {"choice": [True, False]}, "lr": {"loguniform": [1e-3, 1e-2]},
                 "batch_size": _BATCH, "ridge_start": {"choice": [True, False]}}

_FFNN = dict(forwards=(FFNNOptions,), isoform_bytes=FFNN_ISOFORM_BYTES, saves=FFNNRegressor)
_CONTEXT = dict(needs=_context_needs, gene_copies=3.1, inner_split=True, context_model=True)
_NO_PCA = frozenset({"n_components"})

SPECS: tuple[VariantSpec, ...] = (
    VariantSpec("vae_ffnn", _latent_ffnn("vae_ffnn", "vae"), "paper",
                "FFNN 256 -> 32 -> isoforms on the pretrained VAE's latent (the paper's model)",
                _latent_needs("vae"), default=True, drop=_NO_PCA, space=LATENT_FFNN_SPACE,
                **_FFNN),
    VariantSpec("ae_ffnn", _latent_ffnn("ae_ffnn", "ae"), "paper",
                "the same FFNN on the beta=0 autoencoder's latent", _latent_needs("ae"),
                default=True, drop=_NO_PCA, space=LATENT_FFNN_SPACE, **_FFNN),
    VariantSpec("gene_ffnn", gene_ffnn, "paper", "FFNN on the raw genes, genes -> 256 -> 32",
                GENES, default=True, drop=_NO_PCA, space=GENE_FFNN_SPACE, **_FFNN),
    VariantSpec("pca_ffnn", pca_ffnn, "model", "the latent FFNN on a per-fold PCA of the genes",
                GENES, space={**LATENT_FFNN_SPACE,
                              "n_components": {"choice": [32, 64, 128, 256]}}, **_FFNN),
    VariantSpec("mean", MeanBaseline, "baseline", "the training mean of each isoform",
                lambda o: set(), default=True),
    VariantSpec("tissue_mean", TissueMeanBaseline, "baseline", "the training mean per tissue",
                lambda o: {"tissue"}, default=True),
    VariantSpec("isoform_fraction", isoform_fraction, "baseline",
                "gene x its isoforms' mean training share (ratio of sums in TPM)", GENES,
                default=True),
    VariantSpec("isoform_fraction_fit", isoform_fraction_fit, "baseline",
                "gene x a share per isoform fitted in log space", GENES, default=True),
    VariantSpec("pca_ridge", PCARidgeBaseline, "baseline",
                "ridge on a per-fold PCA of the genes (penalty by leave-one-out)", GENES,
                default=True, drop=frozenset({"alphas"})),
    VariantSpec("pca_tissue_ridge", PCATissueRidgeBaseline, "baseline",
                "ridge on [per-fold PCA of the genes, tissue one-hot] (penalty and one-hot "
                "scale by leave-one-out)", lambda o: {"genes", "tissue"}, default=True,
                drop=frozenset({"alphas", "tissue_scales"})),
    VariantSpec("isoform_fraction_tissue", IsoformFractionTissueBaseline, "baseline",
                "gene x a per-tissue share fitted in log space, shrunk towards the global share",
                lambda o: {"genes", "tissue"}, default=True,
                drop=frozenset({"max_rows", "max_rows_per_tissue"})),
    VariantSpec("foldvae_ffnn", FoldVAEFFNN.from_options, "model",
                "the latent FFNN on a small VAE pretrained inside the fold", GENES,
                forwards=(FoldVAEOptions, FFNNOptions), drop=_NO_PCA,
                isoform_bytes=FFNN_ISOFORM_BYTES,
                space={**LATENT_FFNN_SPACE, "latent_dim": {"choice": [16, 32, 64]},
                       "beta": {"uniform": [0.0, 1.0]},
                       "vae_lr": {"loguniform": [3e-4, 3e-3]}}),
    VariantSpec("share_net", context_factory(ShareNet, FineTuneShareNet), "model",
                "gene x a softmax share per isoform on a context (PCA, latent, tissue, "
                "the fine-tuned encoder) + a linear residual", default=True,
                isoform_bytes=8_200, space=CONTEXT_SPACE,
                forwards=(ShareNet, RecipeOptions, FineTuneShareNet), saves=ShareNet,
                **_CONTEXT),
    VariantSpec("ffnn_plus", context_factory(FFNNPlus), "model",
                "wide skip-connected FFNN on share_net's context and recipe", default=True,
                isoform_bytes=10_400, space={**CONTEXT_SPACE,
                                             "hidden": {"choice": [128, 256, 512]}},
                forwards=(FFNNPlus, RecipeOptions), saves=FFNNPlus, **_CONTEXT),
    VariantSpec("recommended", recommended, "model",
                "share_net; below select_below training samples the best convex blend of it and "
                "the strongest baselines by inner donor-grouped CV", needs=_recommended_needs,
                isoform_bytes=8_200,
                forwards=(RecommendedOptions, context_factory(ShareNet), ShareNet, RecipeOptions,
                          FineTuneShareNet),
                gene_copies=3.1, inner_split=True, saves=Recommended),
)
REGISTRY: dict[str, VariantSpec] = {s.name: s for s in SPECS}
VARIANTS = {s.name: s.factory for s in SPECS}


def _of(kind: str, default_only: bool = False) -> tuple[str, ...]:
    return tuple(s.name for s in SPECS if s.kind == kind and (s.default or not default_only))


PAPER_VARIANTS = _of("paper")
RECOMMENDED = _of("model", default_only=True)   # raviso's own models, best first
BASELINES = _of("baseline")
# What `raviso cv STORE` runs unasked: the model `raviso fit` ships (recommended), share_net
# (which it blends; recommended itself from 500 training samples), share_net[tissue=False] (what a
# missing tissue costs: the path predict takes for one) and the baselines. The paper's variants
# and ffnn_plus are asked for (`--variants default,paper,ffnn_plus`): a user's own data does not
# need them and they cost most of a small cv's time (issue 33).
DEFAULT_VARIANTS = ("recommended", "share_net", "share_net[tissue=False]") + _of("baseline", True)
KNOWN_OPTIONS = frozenset().union(*(s.options for s in SPECS))


def base_name(name: str) -> str:
    """``gene_ffnn@tuned`` / ``share_net[context=vae]`` -> the variant: a tag after ``@`` or
    options in brackets name another configuration of it, built and fed like the variant."""
    return parse_spec(name)[1]


def spec(name: str) -> VariantSpec:
    base = base_name(name)
    if base not in REGISTRY:
        raise RavisoError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    return REGISTRY[base]


def variant_options(name: str) -> frozenset:
    """The options `name` takes (what a search space may vary)."""
    return spec(name).options


def resolve_options(name: str, options: dict | None = None) -> dict:
    """The options `name` is built with: the shared ones, then those keyed by its variant, then
    those keyed by its display name, then those in its brackets; unknown ones are an error."""
    options = dict(options or {})
    display, base, own = parse_spec(name)
    spec(base)
    scoped = {k for k in options if _names_variant(k)}
    merged = {k: v for k, v in options.items() if k not in scoped}
    for key in (base, display.split("@", 1)[0], display):
        if isinstance(options.get(key), dict):
            merged.update(options[key])
    takes = spec(base).options
    if set(own) - takes:
        raise RavisoError(f"{display}: {base} takes no option(s) "
                          f"{', '.join(sorted(set(own) - takes))} (it takes: {', '.join(sorted(takes))})")
    merged.update(own)
    unknown = sorted(set(merged) - KNOWN_OPTIONS)
    if unknown:
        raise RavisoError(f"unknown variant option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(KNOWN_OPTIONS))})")
    return {k: v for k, v in merged.items() if k in takes and v is not None}


def _names_variant(key) -> bool:
    try:
        return parse_spec(key)[1] in REGISTRY
    except RavisoError:
        return False


def make_variant(name: str, **options) -> Predictor:
    """A fresh, unfitted predictor of `name` with its resolved options."""
    return spec(name).factory(**resolve_options(name, options))


def is_context_model(name: str) -> bool:
    """Whether `name` (a registered variant) is trained by the context recipe."""
    try:
        return spec(name).context_model
    except RavisoError:
        return False


def registry() -> Registry:
    """The registry as `recommended` (and loading a saved one) uses it."""
    return Registry(make_variant, variant_needs, is_context_model)


def variant_needs(name: str, **options) -> set[str]:
    """The inputs `name` reads besides the isoform targets, given its options."""
    return set(spec(name).needs(resolve_options(name, options)))


def optional_latents(name: str, **options) -> list[str]:
    """Latents `name` reads when a pretrained run provides them and goes without otherwise:
    recommended's share_net context candidate (``latent_context``; "none" turns it off)."""
    if base_name(name) != "recommended":
        return []
    key = str(resolve_options(name, options).get("latent_context",
                                                 RecommendedOptions().latent_context))
    return [] if key.lower() in ("", "none") else [key]


def describe() -> str:
    """One line per variant: name, kind, description and options (generated from the records)."""
    return "\n".join(f"{s.name} ({s.kind}): {s.describe}; options: {', '.join(sorted(s.options))}"
                     for s in SPECS)
