"""`raviso fit --cv-folds K`: the MODEL together with the donor-grouped CV that measures it.

The CV (`raviso.evaluate.cv.run_cv` of the one variant, ``--save-model``) is written beside the
MODEL as ``<MODEL>.cv`` (results.json, report.md); its out-of-fold residuals give the MODEL its
per-isoform reliability and conformal intervals (`raviso.trust.reliability`), which a plain
`raviso fit` cannot have. The model CV saved is then moved into place as MODEL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core.atomic import atomic_dir, check_writable_target
from ..core.errors import RavisoError


def cv_dir_of(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".cv")


def fit_by_cv(store, variant: str, out, cv_folds: int, *, pretrained=None, pretrained_ae=None,
              options: dict | None = None, epochs: int | None = None, seed: int = 0,
              overwrite: bool = False, target_dtype: str = "auto", progress=print) -> Path:
    """Cross-validate `variant` with `cv_folds` donor-grouped folds, fit it on every sample, and
    write MODEL (with out-of-fold reliability) at `out` and the CV at ``<out>.cv``."""
    from ..evaluate.cv import run_cv

    if int(cv_folds) < 2:
        raise RavisoError(f"--cv-folds must be at least 2 (got {cv_folds})")
    out, cv = Path(out), cv_dir_of(out)
    check_writable_target(out, overwrite)
    check_writable_target(cv, overwrite)
    run_cv(store, pretrained=pretrained, pretrained_ae=pretrained_ae, variants=variant,
           folds=int(cv_folds), epochs=epochs, seed=seed, out=cv, save_model=True,
           overwrite=overwrite, variant_options={variant: dict(options)} if options else None,
           target_dtype=target_dtype, progress=progress)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        shutil.copytree(cv / "model", tmp, dirs_exist_ok=True)
    shutil.rmtree(cv / "model")
    return out
