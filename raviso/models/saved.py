"""A saved MODEL: one variant trained on ALL labelled samples, in a self-contained directory that
`raviso predict` can apply to new gene expression. Written by `raviso fit` (`raviso.serve.fit`) and
`raviso cv --save-model` (`raviso.evaluate.cv`); it sits in the models layer so that both can use it
without the cv driver importing the serve layer.

MODEL layout::

    MODEL/model.json        format "raviso.model/1", variant, options, features the variant reads
                            ("genes" and/or "latent:<name>"), genes (the input gene names, in the
                            order the regressor was trained on), isoforms (output names, in order),
                            isoform_gene, encoders ({latent name: sub-directory}), trained_on
                            (store, n_samples, n_tissues), created, raviso_version
    MODEL/encoder-<name>/   a copy of the pretraining run that makes latent <name>
                            (`raviso.train.runs.load_run`)
    MODEL/regressor/        the fitted predictor (`save_predictor` below)

The encoder is copied (not referenced) so a MODEL keeps working after the run directory is moved
or deleted, and predict needs nothing but MODEL and the input file.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..core import inventory
from ..core.atomic import atomic_dir
from ..core.errors import RavisoError
from .recommended import SELECTION_FILE, Recommended

FORMAT = "raviso.model/1"
MODEL_JSON = "model.json"
REGRESSOR_DIR = "regressor"
TISSUE_FREE_DIR = "regressor-tissue-free"   # the same variant fitted without tissue
RELIABILITY_FILE = "reliability.npz"       # per-isoform out-of-fold arrays of the CV behind it
TISSUE_FREE_RELIABILITY_FILE = "reliability-tissue-free.npz"   # the same, of the tissue-free path
DOMAIN_FILE = "domain.npz"                 # applicability domain + its held-out calibration
# read only when asked for (intervals, reliability columns, the domain check): checked then
OPTIONAL_FILES = (RELIABILITY_FILE, TISSUE_FREE_RELIABILITY_FILE, DOMAIN_FILE)
REFIT = "refit it (raviso fit, or raviso cv --save-model)"


def encoder_dir(name: str) -> str:
    return f"encoder-{name}"


def savable() -> list[str]:
    """The variants whose fitted predictor is saved (their VariantSpec's ``saves``); baselines are
    cheap to refit and are not."""
    from .variants import SPECS

    return [s.name for s in SPECS if s.saves is not None]


def is_savable(variant: str) -> bool:
    from .variants import spec

    return spec(variant).saves is not None


def require_savable(variant: str) -> None:
    if not is_savable(variant):
        raise RavisoError(f"variant {variant} cannot be saved as a model (savable: "
                          f"{', '.join(savable())})")


def save_predictor(model, directory: Path) -> None:
    if not hasattr(model, "save"):
        raise RavisoError(f"variant {model.name} cannot be saved (savable: "
                          f"{', '.join(savable())})")
    directory.mkdir()
    model.save(directory)


def load_predictor(directory: Path):
    """A saved predictor, by the class its VariantSpec ``saves``: recommended (its parts inside),
    a context model (share.json, by its variant kind) or an FFNN regressor."""
    from .context.finetune import FineTuneShareNet, is_finetune_model
    from .context.share_io import is_share_model, load_share_model
    from .ffnn.regressors import FFNNRegressor
    from .variants import SPECS, registry

    if (directory / SELECTION_FILE).exists():         # `recommended`: its parts inside
        return Recommended.load(directory, registry(), load_predictor)
    if is_finetune_model(directory):
        return FineTuneShareNet.load(directory)
    if is_share_model(directory):
        return load_share_model(directory, {s.saves.variant_kind: s.saves for s in SPECS
                                            if s.context_model and s.saves is not None})
    return FFNNRegressor.load(directory)


@dataclass(frozen=True)
class ModelExtras:
    """What MODEL keeps beside the predictor from the CV behind it
    (`raviso.trust.reliability.model_reliability` makes them): out-of-fold arrays of the variant
    and of its tissue-free twin, and the applicability domain (`raviso.trust.domain`)."""

    reliability: dict | None = None
    tissue_free_reliability: dict | None = None
    domain: dict | None = None


def fit_model(data, variant: str, out, runs: dict[str, str] | None = None,
              options: dict | None = None, store_uri: str | None = None,
              overwrite: bool = False, extras: ModelExtras | None = None):
    """Fit `variant` on every row of `data` (a `Labelled` with the latents it needs) and write
    MODEL atomically. `runs` maps latent name -> pretraining run directory (copied in). A variant
    that reads tissue is fitted a second time without it (the path `raviso predict` takes for a
    sample of no or an unknown tissue); `extras` are stored beside it.
    Returns the fitted predictor (what MODEL holds)."""
    import numpy as np

    from .variants import make_variant, variant_needs

    x = extras if extras is not None else ModelExtras()
    reliability, tissue_free_reliability, domain = (x.reliability, x.tissue_free_reliability,
                                                    x.domain)
    needs = sorted(variant_needs(variant, **(options or {})))
    latents = [n.split(":", 1)[1] for n in needs if n.startswith("latent:")]
    missing = [n for n in latents if n not in (runs or {})]
    if missing:
        raise RavisoError(f"variant {variant} needs the pretrained run of latent "
                          f"{', '.join(missing)}")
    require_savable(variant)
    model = make_variant(variant, **(options or {}))
    model.fit(data, np.arange(data.n))
    tissues = trained_tissues(model, variant, options, data)
    free = tissue_free_fit(variant, options, data) if tissues else None
    with atomic_dir(out, overwrite=overwrite) as tmp:
        needs, latents = copy_encoders(Path(tmp), runs, needs, latents, model, free)
        save_predictor(model, Path(tmp) / REGRESSOR_DIR)
        if free is not None:
            save_predictor(free, Path(tmp) / TISSUE_FREE_DIR)
        for name, arrays in ((RELIABILITY_FILE, reliability), (DOMAIN_FILE, domain),
                             (TISSUE_FREE_RELIABILITY_FILE, tissue_free_reliability)):
            if arrays is not None and (name != TISSUE_FREE_RELIABILITY_FILE or free is not None):
                np.savez_compressed(Path(tmp) / name, **arrays)
        meta = {"format": FORMAT, "variant": variant, "options": options or {},
                "features": needs, "genes": list(data.gene_names),
                "gene_means": np.asarray(data.genes).mean(axis=0, dtype=np.float64).tolist(),
                "isoforms": list(data.isoform_names),
                "isoform_gene": [data.gene_names[j] if j >= 0 else None
                                 for j in data.isoform_gene.tolist()],
                "encoders": {name: encoder_dir(name) for name in latents},
                "encoder_runs": {name: str(runs[name]) for name in latents},
                "tissues": tissues,
                "tissue_free": TISSUE_FREE_DIR if free is not None else None,
                "selection": getattr(model, "selection_", None),
                "reliability": RELIABILITY_FILE if reliability is not None else None,
                "domain": DOMAIN_FILE if domain is not None else None,
                "tissue_free_reliability": (TISSUE_FREE_RELIABILITY_FILE if free is not None
                                            and tissue_free_reliability is not None else None),
                "trained_on": {"store": store_uri, "n_samples": int(data.n),
                               "n_tissues": int(len(set(data.tissue.tolist())))},
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "raviso_version": __version__,
                "files": inventory.inventory(tmp)}    # every file's size and checksum: `read_model`
        (Path(tmp) / MODEL_JSON).write_text(json.dumps(meta, indent=1))
    return model


def copy_encoders(tmp: Path, runs: dict | None, needs: list, latents: list, *models):
    """Copy into MODEL the run of every latent the variant needs and of those the fitted models
    chose to read (``latents_``: recommended's share_net context given a pretrained run);
    returns (needs, latents) with the chosen ones added."""
    extra = list(dict.fromkeys(k for m in models for k in (getattr(m, "latents_", None) or [])
                               if k not in latents and k in (runs or {})))
    for name in latents + extra:
        shutil.copytree(runs[name], tmp / encoder_dir(name))
    return sorted(set(needs) | {f"latent:{k}" for k in extra}), latents + extra


def trained_tissues(model, variant: str, options: dict | None, data) -> list[str]:
    """The tissues a fitted `model` tells apart ([]: it reads no tissue, or saw one): its one-hot's
    (``tissues_``), else the training rows' when the variant reads tissue."""
    import numpy as np

    from .variants import resolve_options, variant_needs

    try:
        opts = resolve_options(variant, options)
    except RavisoError:
        opts = dict(options or {})
    if opts.get("tissue") is False or "tissue" not in variant_needs(variant, **opts):
        return []
    known = list(getattr(model, "tissues_", None) or sorted(
        {str(t) for t in np.asarray(data.tissue).tolist() if t}))
    return known if len(known) > 1 else []


def tissue_free_fit(variant: str, options: dict | None, data):
    """`variant` fitted on every row with ``tissue=False``: the path `raviso predict` takes for a
    sample of no or an unknown tissue."""
    import numpy as np

    from .variants import make_variant

    free = make_variant(variant, **{**(options or {}), "tissue": False})
    return free.fit(data, np.arange(data.n)) or free


def read_model(model_dir) -> dict:
    """model.json of a MODEL directory, checked, and every file it lists but the optional ones
    as written (`raviso.core.inventory`)."""
    path = Path(model_dir) / MODEL_JSON
    if not Path(model_dir).is_dir():
        raise RavisoError("no such model directory (raviso fit / raviso cv --save-model)",
                          model_dir)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise RavisoError(f"not a raviso model: {MODEL_JSON} is missing (if it was one, it is "
                          f"damaged; {REFIT})", model_dir) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RavisoError(f"{MODEL_JSON} is damaged ({e}); {REFIT}", model_dir) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise RavisoError(f"{MODEL_JSON}: unsupported model format {got!r} (expected {FORMAT}; "
                          f"a damaged one: {REFIT})", model_dir)
    inventory.verify(model_dir, meta.get("files"), "MODEL", REFIT, skip=OPTIONAL_FILES)
    return meta


def load_optional(model_dir, meta: dict, key: str, load, needed: bool, warn=None):
    """`load(path)` of the optional file that `meta[key]` names (reliability, domain). Missing
    or damaged: an error naming it when `needed`, else a warning and None (predict without
    --interval needs none of them)."""
    import zipfile

    name = meta.get(key)
    if not name:
        return None
    why = inventory.problem(model_dir, name, meta["files"][name]) \
        if name in (meta.get("files") or {}) else None
    if why is None:
        try:
            return load(Path(model_dir) / name)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            why = f"cannot be read ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
    err = inventory.damaged(model_dir, name, "MODEL", REFIT, why)
    if needed:
        raise err
    (warn or _warn)(f"raviso: warning: {err}; going on without it")
    return None


def _warn(line: str) -> None:
    import sys

    print(line, file=sys.stderr)
