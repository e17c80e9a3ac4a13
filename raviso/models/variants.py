"""The registry of everything `raviso cv` can train and compare: the paper's models and baselines.

Interface (what the cv driver, `raviso fit` and `raviso predict` rely on)::

    class Predictor(Protocol):
        name: str
        def fit(self, data: Labelled, train_idx: np.ndarray) -> Predictor
        def predict(self, data: Labelled, idx: np.ndarray) -> np.ndarray
            # (len(idx), n_isoforms) float32, log2(TPM+1), columns = data.isoform_names

    VARIANTS: dict[str, Callable[..., Predictor]]      # name -> factory(**options)
    PAPER_VARIANTS = ("vae_ffnn", "ae_ffnn", "gene_ffnn")
    BASELINES = ("mean", "tissue_mean", "isoform_fraction", "isoform_fraction_fit", "pca_ridge")
    make_variant(name, **options) -> Predictor
    variant_needs(name, **options) -> set[str]

Contract: ``fit`` looks at the rows in ``train_idx`` ONLY (PCA, scalers, means, shares, the
early-stopping split are all fitted on them), so predictions for validation rows cannot depend on
validation data. ``predict`` may be called for any rows afterwards.

Variants:
- ``vae_ffnn``  FFNN 256 -> 32 -> n_isoforms on ``data.latent["vae"]`` (the paper's model)
- ``ae_ffnn``   the same on ``data.latent["ae"]`` (the beta=0 autoencoder's latent)
- ``gene_ffnn`` FFNN on the raw genes, 18,965 -> 256 -> 32 -> n_isoforms
- ``pca_ffnn``  the latent FFNN on a PCA of the genes (n_components, default 256, fitted per fold)
- ``foldvae_ffnn`` the latent FFNN on a small VAE pretrained INSIDE the fold on the training rows'
  genes only (`raviso.models.foldvae`): for stores without a compendium (users' own small data); options
  ``vae_epochs``, ``vae_hidden``, ``latent_dim``, ``beta``, ``vae_lr``, ``vae_batch_size``
- ``share_net`` (RECOMMENDED, raviso's own model, `raviso.models.share_net`): per gene, a softmax
  over its isoforms (context = per-fold PCA of the genes or ``latent``, + tissue one-hot) times the
  gene's expression, + a linear residual; starts at isoform_fraction_fit + a ridge correction,
  early stopping on an inner donor split. Options ``n_components`` (64), ``tissue`` (True),
  ``epochs`` (30), ``lr`` (3e-3), ``batch_size`` (64), ``patience`` (8), ``val_fraction`` (0.15),
  ``ridge_start`` (True), ``weight_decay`` (1.0, AdamW on the context weights), ``latent``
  (None = PCA), ``seed``, ``device``
- ``ffnn_plus`` (RECOMMENDED, `raviso.models.ffnn_plus`): the FFNN done well: same context and
  recipe as share_net, a wide hidden layer (``hidden``, default 256) and a linear skip
- baselines (`raviso.models.baselines`, all in BASELINES): ``mean``, ``tissue_mean``, ``isoform_fraction``
  (the issue's mean training share in TPM space), ``isoform_fraction_fit`` (the same model with its
  share fitted in log space; much stronger than the ratio of sums on real data, see
  `raviso.models.baselines`), ``pca_ridge``

Options (`make_variant(name, **options)`): ``epochs`` (100), ``seed`` (0), ``hidden`` (sizes, e.g.
"256,32"), ``lr`` (1e-4), ``batch_size`` (64), ``early_stopping`` (False), ``val_fraction`` (0.1),
``patience`` (10), ``scale`` (standardise inputs, True), ``device`` ("cpu"), ``latent`` (which
latent key a latent variant reads), ``n_components`` (PCA size), ``alpha`` (ridge penalty; None =
leave-one-out choice). One set of options can be passed to every variant: an option that some other
variant uses is ignored by a variant that has no use for it (the baselines have no epochs), ``None``
means "the default", and an option no variant knows is an error naming the known ones.

Options for one variant only: ``{"lr": 1e-3, "share_net": {"lr": 3e-3}}`` (a key that is a
variant's name holds a dict applied over the shared options for that variant; the demo uses it).

``variant_needs`` says which inputs a variant reads besides the isoform targets: ``"latent:<key>"``,
``"genes"``, ``"tissue"`` (the cv driver attaches/ships only what is needed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .baselines import IsoformFractionBaseline, MeanBaseline, PCARidgeBaseline, TissueMeanBaseline
from ..core.errors import RavisoError
from .ffnn_plus import FFNNPlus
from .foldvae import FoldVAEFFNN
from ..data.labelled import Labelled
from .regressors import FFNNRegressor
from .share_net import ShareNet


class Predictor(Protocol):
    name: str

    def fit(self, data: Labelled, train_idx: np.ndarray) -> "Predictor": ...

    def predict(self, data: Labelled, idx: np.ndarray) -> np.ndarray: ...


PAPER_VARIANTS = ("vae_ffnn", "ae_ffnn", "gene_ffnn")
RECOMMENDED = ("share_net", "ffnn_plus")   # raviso's own models (issue 10), best first
BASELINES = ("mean", "tissue_mean", "isoform_fraction", "isoform_fraction_fit", "pca_ridge")

_FFNN_OPTIONS = frozenset({"epochs", "seed", "hidden", "lr", "batch_size", "early_stopping",
                           "val_fraction", "patience", "scale", "device"})


def _latent_ffnn(name: str, default_latent: str):
    def factory(latent: str = default_latent, hidden=(32,), **opts) -> FFNNRegressor:
        return FFNNRegressor(name, f"latent:{latent}", hidden=hidden, **opts)
    factory.__doc__ = f"FFNN on data.latent[{default_latent!r}] (hidden default 32)."
    return factory


def gene_ffnn(hidden=(256, 32), **opts) -> FFNNRegressor:
    """FFNN on the raw genes (hidden default 256, 32)."""
    return FFNNRegressor("gene_ffnn", "genes", hidden=hidden, **opts)


def pca_ffnn(n_components: int = 256, hidden=(32,), **opts) -> FFNNRegressor:
    """The latent FFNN on a per-fold PCA of the genes."""
    return FFNNRegressor("pca_ffnn", "genes", hidden=hidden, n_components=n_components, **opts)


def _context_model(cls):
    def factory(latent: str | None = None, **opts):
        return cls(context=f"latent:{latent}" if latent else "pca", **opts)
    factory.__doc__ = f"{cls.__name__} on a per-fold PCA of the genes, or on data.latent[latent]."
    return factory


VARIANTS: dict[str, Callable[..., Predictor]] = {
    "vae_ffnn": _latent_ffnn("vae_ffnn", "vae"),
    "ae_ffnn": _latent_ffnn("ae_ffnn", "ae"),
    "gene_ffnn": gene_ffnn,
    "pca_ffnn": pca_ffnn,
    "mean": MeanBaseline,
    "tissue_mean": TissueMeanBaseline,
    "isoform_fraction": IsoformFractionBaseline,
    "isoform_fraction_fit": lambda seed=0: IsoformFractionBaseline("isoform_fraction_fit",
                                                                   share="fit", seed=seed),
    "pca_ridge": PCARidgeBaseline,
    "foldvae_ffnn": FoldVAEFFNN,   # VAE pretrained per fold on the training genes (raviso.models.foldvae)
    "share_net": _context_model(ShareNet),     # gene-anchored share model (raviso.models.share_net)
    "ffnn_plus": _context_model(FFNNPlus),     # the FFNN done well (raviso.models.ffnn_plus)
}

_CONTEXT_OPTIONS = frozenset({"latent", "n_components", "tissue", "epochs", "lr", "batch_size",
                              "patience", "val_fraction", "ridge_start", "weight_decay", "seed",
                              "device", "refit", "context_scale", "tissue_scale"})
_OPTIONS: dict[str, frozenset] = {
    "vae_ffnn": _FFNN_OPTIONS | {"latent"},
    "ae_ffnn": _FFNN_OPTIONS | {"latent"},
    "gene_ffnn": _FFNN_OPTIONS,
    "pca_ffnn": _FFNN_OPTIONS | {"n_components"},
    "mean": frozenset(),
    "tissue_mean": frozenset(),
    "isoform_fraction": frozenset(),
    "isoform_fraction_fit": frozenset({"seed"}),
    "pca_ridge": frozenset({"n_components", "alpha", "seed"}),
    "foldvae_ffnn": _FFNN_OPTIONS | {"vae_epochs", "vae_hidden", "latent_dim", "beta", "vae_lr",
                                     "vae_batch_size"},
    "share_net": _CONTEXT_OPTIONS,
    "ffnn_plus": _CONTEXT_OPTIONS | {"hidden"},
}
KNOWN_OPTIONS = frozenset().union(*_OPTIONS.values())


def base_name(name: str) -> str:
    """``gene_ffnn@tuned`` -> ``gene_ffnn``: a tag after ``@`` names another configuration of the
    same variant (cv's tuned column), built and fed exactly like the variant itself."""
    return str(name).split("@", 1)[0]


def _check_name(name: str) -> str:
    base = base_name(name)
    if base not in VARIANTS:
        raise RavisoError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    return base


def variant_options(name: str) -> frozenset:
    """The options `name` takes (what a search space may vary)."""
    return _OPTIONS[_check_name(name)]


def make_variant(name: str, **options) -> Predictor:
    """A fresh, unfitted predictor; see the module docstring for the options."""
    name = _check_name(name)
    # {"lr": 1e-3, "share_net": {"lr": 3e-3}}: an option keyed by a variant's name is a dict of
    # options for that variant only, applied over the shared ones
    own = options.get(name) if isinstance(options.get(name), dict) else {}
    options = {**{k: v for k, v in options.items() if k not in VARIANTS}, **own}
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise RavisoError(f"unknown variant option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(KNOWN_OPTIONS))})")
    used = {k: v for k, v in options.items() if k in _OPTIONS[name] and v is not None}
    return VARIANTS[name](**used)


def variant_needs(name: str, **options) -> set[str]:
    """The inputs `name` reads besides the isoform targets (honours a ``latent`` option)."""
    name = _check_name(name)
    if name in ("vae_ffnn", "ae_ffnn"):
        return {f"latent:{options.get('latent') or ('vae' if name == 'vae_ffnn' else 'ae')}"}
    if name in RECOMMENDED:      # genes: the share term (share_net) and the PCA context
        latent = options.get("latent")
        return {"genes", "tissue"} | ({f"latent:{latent}"} if latent else set())
    return {"gene_ffnn": {"genes"}, "pca_ffnn": {"genes"}, "mean": set(),
            "tissue_mean": {"tissue"}, "isoform_fraction": {"genes"},
            "isoform_fraction_fit": {"genes"},
            "pca_ridge": {"genes"}, "foldvae_ffnn": {"genes"}}[name]
