"""Reproducible cross-validation folds: stratified by tissue, grouped by donor (`make_folds`), and
the explicit schemes for SMALL labelled sets (users' own data: tens of samples, few donors).

`make_folds` assumes GTEx-sized data: 5 folds, every tissue with >= 5 donors. A user's
store may have 12 samples from 4 donors, or a condition with 3 samples; 5-fold CV there either
fails (fewer donors than folds) or silently pools small classes. `small_data_folds` makes the
choice explicit and reports it (`SmallFolds.scheme` / `.reason`, in `to_dict()` for the report):

- leave-one-group-out (LOGO) when there are no more groups (donors, or samples when no donors are
  known) than requested folds, or when asked (``scheme="logo"``);
- otherwise k-fold with k = min(requested k, groups in the smallest class), so every class can
  appear in every fold; classes with a single group cannot be stratified and are named in
  `rare_tissues` (pooled by `make_folds`).

Two generalisation schemes ask what donor-grouped CV cannot: `tissue_folds` holds out whole
tissues (``scheme="tissue"``: a fold's validation tissues never appear in its training rows), and
`training_subset` trains on a fraction of a fold's training DONORS (the labelled-size learning
curve), nested across fractions and deterministic by seed, scored on the same validation rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import RavisoError


# -- cross-validation folds ---------------------------------------------------------------------
@dataclass
class Folds:
    """Fold id per sample plus what was done to make the split possible (for the report)."""

    fold: np.ndarray          # (n,) int, values 0..k-1
    k: int
    grouped_by: str           # "donor" or "none"
    rare_tissues: list[str]   # tissues with fewer samples than folds: pooled into one stratum
    seed: int

    def split(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.flatnonzero(self.fold != i), np.flatnonzero(self.fold == i)

    def to_dict(self) -> dict:
        return {"k": self.k, "grouped_by": self.grouped_by, "rare_tissues": self.rare_tissues,
                "seed": self.seed}


def donor_of(sample_id: str) -> str | None:
    """GTEx ids are GTEX-<donor>-...: the donor is the first two dash-separated fields."""
    parts = str(sample_id).split("-")
    return "-".join(parts[:2]) if len(parts) >= 3 and parts[0] == "GTEX" else None


def _missing(v) -> bool:
    """None, or the NaN that pandas (>= 3, string dtype) returns for a null string."""
    return v is None or (isinstance(v, float) and v != v)


def make_folds(tissue, donor=None, k: int = 5, seed: int = 0, group_by: str = "donor",
               source: str = "store", scheme: str = "kfold") -> Folds:
    """Reproducible k folds stratified by tissue, keeping a donor's samples together.

    Stratification needs at least k samples per class; tissues with fewer are pooled into a single
    "rare" stratum (reported in `Folds.rare_tissues`) instead of letting sklearn warn and place them
    arbitrarily. With donors (and ``group_by="donor"``) sklearn's StratifiedGroupKFold keeps every
    donor in one fold; without them StratifiedKFold is used. ``scheme="auto"|"logo"`` hands small
    labelled sets to `small_data_folds` (below) (leave-one-group-out, or k adapted to the
    smallest class), which records its choice for the report.
    """
    if scheme == "tissue":
        return tissue_folds(tissue, donor, k=k, seed=seed, source=source)
    if scheme != "kfold":
        return small_data_folds(tissue, donor, k=k, seed=seed, group_by=group_by, scheme=scheme,
                                source=source)
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    tissue = np.asarray(["" if _missing(t) else str(t) for t in tissue])
    n = len(tissue)
    if k < 2:
        raise RavisoError(f"--folds must be at least 2 (got {k})")
    if n < k:
        raise RavisoError(f"{n} labelled samples cannot make {k} folds", source)
    names, counts = np.unique(tissue, return_counts=True)
    rare = sorted(names[counts < k].tolist())
    strata = tissue.copy()
    if rare:
        strata[np.isin(tissue, rare)] = "__rare__"
        if (strata == "__rare__").sum() < k and len(rare) < len(names):
            # too few even pooled: fold them into the largest tissue's stratum for stratification
            strata[strata == "__rare__"] = names[np.argmax(counts)]
    use_groups = group_by == "donor" and donor is not None and not all(_missing(d) for d in donor)
    fold = np.empty(n, dtype=np.int64)
    if use_groups:
        groups = np.asarray(["" if _missing(d) else str(d) for d in donor])
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise RavisoError(f"{n_groups} donors cannot make {k} donor-grouped folds "
                              "(use --fold-scheme logo: one fold per donor, or fewer --folds)",
                              source)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), strata, groups)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), strata)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for i, (_, val) in enumerate(splits):
            fold[val] = i
    return Folds(fold=fold, k=k, grouped_by="donor" if use_groups else "none",
                 rare_tissues=rare, seed=seed)


# -- small labelled sets ----------------------------------------------------------------------
SCHEMES = ("auto", "kfold", "logo")       # `small_data_folds`; make_folds also takes "tissue"


@dataclass
class SmallFolds(Folds):
    scheme: str = "kfold"      # "kfold" or "logo"
    requested_k: int = 5
    reason: str = ""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "scheme": self.scheme, "requested_k": self.requested_k,
                "reason": self.reason}


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


# -- generalisation schemes ----------------------------------------------------------------------
@dataclass
class TissueFolds(Folds):
    """Folds of whole tissues: fold i validates on the tissues in ``heldout[i]``."""

    heldout: list = None            # per fold, the tissues it holds out
    scheme: str = "tissue"
    donor_overlap: float = 0.0      # share of validation samples whose donor has training rows

    def to_dict(self) -> dict:
        return {**super().to_dict(), "scheme": self.scheme, "heldout_tissues": self.heldout,
                "donor_overlap": self.donor_overlap,
                "reason": "held-out tissues: each fold's tissues never appear in its training "
                          "rows; a donor's samples of other tissues stay in training"}


def tissue_folds(tissue, donor=None, k: int = 5, seed: int = 0,
                 source: str = "store") -> TissueFolds:
    """k folds of whole tissues, balanced by samples: tissues in a seeded random order, each put
    in the fold with the fewest samples so far (different seeds hold out different groupings).

    Donors are NOT kept disjoint: in GTEx-like data a donor gives most tissues, so dropping the
    training rows of every validation donor would drop almost all of them. The share of validation
    samples whose donor has training rows is reported (``donor_overlap``)."""
    if k < 2:
        raise RavisoError(f"--folds must be at least 2 (got {k})")
    tissue = np.asarray(["" if _missing(t) else str(t) for t in tissue])
    names, inverse, counts = np.unique(tissue, return_inverse=True, return_counts=True)
    if len(names) < 2 or (len(names) == 1 and names[0] == ""):
        raise RavisoError("--fold-scheme tissue needs samples of at least 2 tissues", source)
    k = min(k, len(names))
    load = np.zeros(k, np.int64)
    of_tissue = np.empty(len(names), np.int64)
    for t in np.random.default_rng(seed).permutation(len(names)):
        of_tissue[t] = int(np.argmin(load))
        load[of_tissue[t]] += counts[t]
    fold = of_tissue[inverse]
    overlap = 0.0
    if donor is not None and not all(_missing(d) for d in donor):
        groups = np.asarray(["" if _missing(d) else str(d) for d in donor])
        shared = [np.isin(groups[fold == i], groups[fold != i]) for i in range(k)]
        overlap = float(np.concatenate(shared).mean())
    return TissueFolds(fold=fold, k=k, grouped_by="tissue", rare_tissues=[], seed=seed,
                       heldout=[sorted(names[of_tissue == i].tolist()) for i in range(k)],
                       donor_overlap=round(overlap, 4))


@dataclass(frozen=True)
class TrainSubset:
    """Fit on this fraction of each fold's training donors, drawn with this seed
    (`training_subset`; cv --train-fraction)."""

    fraction: float
    seed: int


def training_subset(train_idx, donor, fraction: float, seed: int = 0, fold: int = 0
                    ) -> np.ndarray:
    """The training rows of `fold` kept at labelled size `fraction`: every row of a random
    ``max(2, round(fraction * donors))`` of the fold's training donors (samples without a donor
    count as their own donor). The donor order depends on (seed, fold) only, so for one seed the
    subsets are nested (a smaller fraction keeps a prefix of the same donors) and repeat folds get
    different donors. ``fraction >= 1`` returns `train_idx` unchanged."""
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise RavisoError(f"--train-fraction must be in (0, 1] (got {fraction})")
    train_idx = np.asarray(train_idx, np.int64)
    if fraction >= 1:
        return train_idx
    if donor is None or all(_missing(d) for d in donor):
        groups = np.array([f"#{i}" for i in train_idx])
    else:
        groups = np.asarray(["#%d" % i if _missing(donor[i]) else str(donor[i])
                             for i in train_idx])
    uniq = np.unique(groups)
    n_keep = min(len(uniq), max(2, int(round(fraction * len(uniq)))))
    keep = uniq[np.random.default_rng([int(seed), int(fold)]).permutation(len(uniq))[:n_keep]]
    return train_idx[np.isin(groups, keep)]
