"""`raviso fit STORE [--variant V] --out MODEL`: load the labelled set (+ the latents the variant
needs), cross-validate it by donor (`raviso.serve.fit_cv`; off with ``--cv-folds 0``), fit on
every sample and save MODEL. The MODEL format itself lives in `raviso.models.saved`
(shared with `raviso cv --save-model`)."""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import check_writable_target
from ..core.errors import RavisoError
from ..evaluate.engine.inputs import latent_runs, load_labelled, parse_variants
from ..models.recommended import describe_selection
from ..models.saved import fit_model, require_savable
from .config import FitConfig


def fit_store(store, cfg: FitConfig | None = None, *, out=None, progress=print,
              **options) -> Path:
    """`raviso fit STORE --out MODEL`: load the labelled set (+ latents), cross-validate (unless
    ``cv_folds`` is 0: `raviso.serve.fit_cv`), fit, save. `options`: FitConfig fields replacing
    `cfg`'s (``config=``, its older name, still means ``tuned_config``). ``cfg.tuned_config``: a
    best.json from `raviso tune` (its variant and options; --epochs still wins). `progress`: where
    the one-line messages go."""
    if "config" in options:
        options["tuned_config"] = options.pop("config")
    cfg = FitConfig.build(cfg, **options)
    if out is None:
        raise TypeError("fit_store() needs out (the MODEL directory)")
    variant, config, epochs, overwrite = cfg.variant, cfg.tuned_config, cfg.epochs, cfg.overwrite
    check_writable_target(out, overwrite)
    tuned = {}
    if config is not None:               # a best.json from `raviso tune`: variant + options
        from ..evaluate.tune.space import read_best

        chosen, tuned = read_best(config)
        if variant not in (None, chosen):
            raise RavisoError(f"--variant {variant} differs from the tuned config's {chosen}",
                              config)
        variant = chosen
    (variant,) = parse_variants(variant or "recommended")   # the one recommended model
    require_savable(variant)                     # before minutes of loading
    if cfg.cv_folds:
        from .fit_cv import fit_by_cv

        return fit_by_cv(store, out, FitConfig.build(cfg, variant=variant), options=tuned,
                         progress=progress)
    runs = latent_runs([variant], cfg.pretrained, cfg.pretrained_ae, tuned)
    st, data = load_labelled(store, runs, cfg.target_dtype)
    fit_options = {**tuned, "seed": cfg.seed,
                   **({"epochs": int(epochs)} if epochs is not None else {})}
    model = fit_model(data, variant, out, runs=runs, options=fit_options, store_uri=st.uri,
                      overwrite=overwrite)
    if getattr(model, "selection_", None):       # `recommended`: what it chose, and why
        progress(describe_selection(model.selection_))
    progress(f"--cv-folds 0: {variant} was not cross-validated, so MODEL has no measured error, "
             "per-isoform reliability or prediction intervals")
    return Path(out)
