"""Cross-validation folds for SMALL labelled sets (users' own data: tens of samples, few donors).

`raviso.data.make_folds` assumes GTEx-sized data: 5 folds, every tissue with >= 5 donors. A user's
store may have 12 samples from 4 donors, or a condition with 3 samples; 5-fold CV there either
fails (fewer donors than folds) or silently pools small classes. `small_data_folds` makes the
choice explicit and reports it (`SmallFolds.scheme` / `.reason`, in `to_dict()` for the report):

- leave-one-group-out (LOGO) when there are no more groups (donors, or samples when no donors are
  known) than requested folds, or when asked (``scheme="logo"``);
- otherwise k-fold with k = min(requested k, groups in the smallest class), so every class can
  appear in every fold; classes with a single group cannot be stratified and are named in
  `rare_tissues` (pooled by `make_folds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Folds, make_folds
from .errors import RavisoError

SCHEMES = ("auto", "kfold", "logo")


@dataclass
class SmallFolds(Folds):
    scheme: str = "kfold"      # "kfold" or "logo"
    requested_k: int = 5
    reason: str = ""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "scheme": self.scheme, "requested_k": self.requested_k,
                "reason": self.reason}


def _missing(v) -> bool:
    """None, or the NaN that pandas (>= 3, string dtype) returns for a null string."""
    return v is None or (isinstance(v, float) and v != v)


def _groups(n, donor, group_by):
    use = group_by == "donor" and donor is not None and not all(_missing(d) for d in donor)
    if not use:
        return np.array([f"#{i}" for i in range(n)]), False
    return np.asarray(["" if _missing(d) else str(d) for d in donor]), True


def small_data_folds(tissue, donor=None, k: int = 5, seed: int = 0, group_by: str = "donor",
                     scheme: str = "auto", source: str = "store") -> SmallFolds:
    """Folds for a small labelled set, with the scheme and k chosen explicitly and reported."""
    if scheme not in SCHEMES:
        raise RavisoError(f"fold scheme must be one of {', '.join(SCHEMES)} (got {scheme!r})")
    if k < 2:
        raise RavisoError(f"--folds must be at least 2 (got {k})")
    tissue = np.asarray(["" if _missing(t) else str(t) for t in tissue])
    n = len(tissue)
    groups, grouped = _groups(n, donor, group_by)
    what = "donors" if grouped else "samples"
    uniq, gidx = np.unique(groups, return_inverse=True)
    if len(uniq) < 2:
        raise RavisoError(f"{n} labelled samples from {len(uniq)} {what[:-1]} cannot be "
                          "cross-validated (need at least 2 groups)", source)
    if scheme == "logo" or (scheme == "auto" and len(uniq) <= k):
        why = ("asked for" if scheme == "logo" else
               f"only {len(uniq)} {what} for {k} requested folds")
        # fold ids in random group order, so fold 0 is not always the alphabetically first donor
        order = np.random.default_rng(seed).permutation(len(uniq))
        return SmallFolds(fold=order[gidx].astype(np.int64), k=len(uniq),
                          grouped_by="donor" if grouped else "none", rare_tissues=[], seed=seed,
                          scheme="logo", requested_k=k,
                          reason=f"leave-one-{what[:-1]}-out: {why}")
    # groups per class: a class split over fewer groups than folds cannot be in every fold
    per_class = {str(t): len(np.unique(gidx[tissue == t])) for t in np.unique(tissue)}
    stratifiable = {t: c for t, c in per_class.items() if c >= 2}
    if not stratifiable:
        raise RavisoError(f"no class has samples from 2 or more {what}; use --fold-scheme logo",
                          source)
    smallest = min(stratifiable.values())
    k_eff = max(2, min(k, smallest, len(uniq)))
    single = sorted(t for t, c in per_class.items() if c < 2)
    if k_eff < k:
        t_small = min(stratifiable, key=stratifiable.get)
        reason = (f"k reduced from {k} to {k_eff}: the smallest class {t_small!r} has "
                  f"{smallest} {what}")
    else:
        reason = f"{k}-fold as requested"
    if single:
        reason += f"; classes with a single {what[:-1]} are pooled: {', '.join(single[:10])}"
    folds = make_folds(tissue, None if not grouped else groups, k_eff, seed,
                       "donor" if grouped else "none", source)
    return SmallFolds(fold=folds.fold, k=folds.k, grouped_by=folds.grouped_by,
                      rare_tissues=folds.rare_tissues, seed=seed, scheme="kfold", requested_k=k,
                      reason=reason)
