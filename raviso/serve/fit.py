"""`raviso fit STORE --variant V --out MODEL`: load the labelled set (+ the latents the variant
needs), fit on every sample and save MODEL. The MODEL format itself lives in `raviso.models.saved`
(shared with `raviso cv --save-model`)."""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import check_writable_target
from ..core.errors import RavisoError
from ..evaluate.inputs import latent_runs, load_labelled, parse_variants
from ..models.saved import fit_model, require_savable
from .config import FitConfig


def fit_store(store, variant: str | None = None, out=None, pretrained=None, pretrained_ae=None,
              epochs: int | None = None, seed: int = 0, overwrite: bool = False,
              target_dtype: str = "auto", config=None, cv_folds: int = 0,
              cfg: FitConfig | None = None) -> Path:
    """`raviso fit STORE --variant V --out MODEL`: load the labelled set (+ latents), fit, save.
    ``config``: a best.json from `raviso tune` (its variant and options; --epochs still wins).
    ``cv_folds``: also run that donor-grouped CV first (`raviso.serve.fit_cv`), so MODEL carries
    per-isoform reliability and prediction intervals."""
    if cfg is not None:     # the CLI's way in: one FitConfig instead of its fields as keywords
        return fit_store(store, out=out, **cfg.kwargs())
    if out is None:
        raise TypeError("fit_store() needs out (the MODEL directory)")
    check_writable_target(out, overwrite)
    tuned = {}
    if config is not None:               # a best.json from `raviso tune`: variant + options
        from ..evaluate.tune_space import read_best

        chosen, tuned = read_best(config)
        if variant not in (None, chosen):
            raise RavisoError(f"--variant {variant} differs from the tuned config's {chosen}",
                              config)
        variant = chosen
    (variant,) = parse_variants(variant or "share_net")   # the recommended model
    require_savable(variant)                     # before minutes of loading
    if cv_folds:
        from .fit_cv import fit_by_cv

        return fit_by_cv(store, variant, out, cv_folds, pretrained=pretrained,
                         pretrained_ae=pretrained_ae, options=tuned, epochs=epochs, seed=seed,
                         overwrite=overwrite, target_dtype=target_dtype)
    runs = latent_runs([variant], pretrained, pretrained_ae, tuned)
    st, data = load_labelled(store, runs, target_dtype)
    options = {**tuned, "seed": seed, **({"epochs": int(epochs)} if epochs is not None else {})}
    fit_model(data, variant, out, runs=runs, options=options, store_uri=st.uri,
              overwrite=overwrite)
    return Path(out)
