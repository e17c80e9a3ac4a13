"""`raviso fit` (``--cv-folds K``, default 5): the MODEL together with the donor-grouped CV that
measures it.

The CV (`raviso.evaluate.cv.run_cv`) scores the variant fit ships, its ``tissue=False`` twin when
it reads tissue (predict's path for a sample of unknown tissue: its own interval widths) and every
baseline, so fit can say how good the MODEL is against the best of them. It is written beside the
MODEL as ``<MODEL>.cv`` (results.json, report.md); its out-of-fold residuals give the MODEL its
per-isoform reliability and conformal intervals (`raviso.trust.reliability`), which a fit with
``--cv-folds 0`` cannot have. The model the CV saved (the shipped variant, whatever its rank) is
then moved into place as MODEL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core.atomic import atomic_dir, check_writable_target
from ..core.errors import RavisoError
from .config import FitConfig


def cv_dir_of(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".cv")


def fold_plan(groups: int, cv_folds: int) -> tuple[str, int]:
    """(fold scheme, folds) for `groups` donors: leave-one-donor-out below 2 x `cv_folds` donors
    (k folds of fewer donors hold a single donor in some fold, which has no donor-level test and
    trains on fewer donors than it could), else `cv_folds` donor-grouped folds."""
    return ("logo", int(cv_folds)) if groups < 2 * int(cv_folds) else ("kfold", int(cv_folds))


def store_groups(store) -> tuple[int, int]:
    """(donors, or samples when no donor is known; tissues) of the store's labelled set."""
    from ..data.reader import Store

    meta = Store(store).meta("gtex_gene")
    donors = [d for d in meta.donor.tolist() if d not in (None, "") and d == d]
    tissues = {t for t in meta.tissue.tolist() if t not in (None, "") and t == t}
    return (len(set(donors)) if len(donors) == len(meta) else len(meta)), len(tissues)


def cv_variants(variant: str, options: dict | None, n_tissues: int) -> list[str]:
    """What fit's CV scores: `variant`, its ``tissue=False`` twin when it reads tissue and the
    store has tissues to tell apart, and every baseline (the best of them is the bar)."""
    from ..models.spec import parse_spec
    from ..models.variants import BASELINES, resolve_options, variant_needs

    out = [variant]
    _, base, own = parse_spec(variant)
    opts = {**(options or {}), **resolve_options(variant, options)}
    if n_tissues > 1 and opts.get("tissue") is not False and "tissue" in variant_needs(variant,
                                                                                        **opts):
        inside = ",".join(f"{k}={v}" for k, v in {**own, "tissue": False}.items())
        out.append(parse_spec(f"{base}[{inside}]")[0])
    return out + [b for b in BASELINES if b not in out]


def fit_by_cv(store, out, cfg: FitConfig, *, options: dict | None = None,
              progress=print) -> Path:
    """Cross-validate ``cfg.variant`` (+ its twin and the baselines) with ``cfg.cv_folds``
    donor-grouped folds (`fold_plan`), fit it on every sample, write MODEL (with out-of-fold
    reliability) at `out` and the CV at ``<out>.cv``, and print the MODEL's measured MSE against
    the best baseline. `options`: the variant's (tuned) options."""
    from ..evaluate.cv import run_cv
    from ..evaluate.results import read_results

    variant, cv_folds, overwrite = cfg.variant, cfg.cv_folds, cfg.overwrite
    if int(cv_folds) < 2:
        raise RavisoError(f"--cv-folds must be at least 2, or 0 for no CV (got {cv_folds})")
    out, cv = Path(out), cv_dir_of(out)
    check_writable_target(out, overwrite)
    check_writable_target(cv, overwrite)
    groups, n_tissues = store_groups(store)
    if groups < 2:
        raise RavisoError("the labelled set has one donor (or one sample): fit's donor-grouped "
                          "CV needs two; --cv-folds 0 fits without it (no reliability or "
                          "intervals)", store)
    scheme, k = fold_plan(groups, cv_folds)
    run_cv(store, pretrained=cfg.pretrained, pretrained_ae=cfg.pretrained_ae,
           variants=cv_variants(variant, options, n_tissues), folds=k, fold_scheme=scheme,
           epochs=cfg.epochs, seed=cfg.seed, out=cv, save_model=True, ship=variant,
           overwrite=overwrite, variant_options={variant: dict(options)} if options else None,
           target_dtype=cfg.target_dtype, progress=progress)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        shutil.copytree(cv / "model", tmp, dirs_exist_ok=True)
    shutil.rmtree(cv / "model")
    progress(measured_line(read_results(cv), variant))
    return out


def _fmt(x) -> str:
    return "–" if x is None else (f"{x:.2g}" if x < 1e-3 else f"{x:.3g}")


def _mse(row: dict) -> str:
    lo, hi = row.get("mse_ci95") or (None, None)
    ci = "" if lo is None else f" (95% CI {lo:.4g} to {hi:.4g})"
    return f"MSE {row['mse_mean']:.4g}{ci}"


def measured_line(doc: dict, variant: str) -> str:
    """One line: the MODEL's held-out-donor MSE and CI, the best baseline's, and the verdict of
    the corrected test between them (results.json ``leaderboard``)."""
    rows = {r["variant"]: r for r in doc["leaderboard"]}
    row, folds = rows[variant], doc.get("folds") or []
    scheme = (doc.get("grouping") or {}).get("scheme")
    how = (f"{len(folds)} folds, leave-one-donor-out" if scheme == "logo"
           else f"{len(folds)} donor-grouped folds")
    head = f"measured by CV ({how}; {variant} trained on other donors): {_mse(row)}"
    test = row.get("vs_best_baseline")
    if not test:
        return head + "; no baseline scored"
    base = rows[test["baseline"]]
    p, diff = test.get("p_holm"), test["mean_diff"] or 0.0
    verdict = ("better than" if p is not None and p < 0.05 and diff < 0 else
               "WORSE than" if p is not None and p < 0.05 else "not told apart from")
    return (f"{head}; best baseline {base['variant']} {_mse(base)}: {variant} is {verdict} it "
            f"(difference {diff:+.4g}, corrected p {_fmt(test.get('p'))}, Holm {_fmt(p)})")
