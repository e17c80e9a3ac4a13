"""Comparing two variants honestly: paired tests per fold (per sample and donor-averaged), the
Nadeau-Bengio / Bouckaert-Frank corrected tests across folds, Holm's correction and the corrected
MSE interval. The reasoning and formulas: docs/statistics.md. Differences are A - B in error
(negative: A predicts better); everything returned is JSON-able (NaN -> None).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
from scipy import stats as sps


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _diff(a, b) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired errors must be 1-d arrays of equal length, got {a.shape} and "
                         f"{b.shape}")
    return a - b


def mean_ci(d: np.ndarray, scale: float | None = None, df: int | None = None
            ) -> tuple[float, float]:
    """95% t interval of mean(d) with standard error sqrt(scale * var(d, ddof=1)); the default
    scale 1/n is the ordinary one, the corrected test passes its variance factor."""
    df = len(d) - 1 if df is None else df
    if len(d) < 2:
        return (math.nan, math.nan)
    scale = 1.0 / len(d) if scale is None else scale
    half = sps.t.ppf(0.975, df) * math.sqrt(scale * np.var(d, ddof=1))
    return (float(d.mean() - half), float(d.mean() + half))


def cohens_dz(d: np.ndarray) -> float:
    """Mean of paired differences over their standard deviation (ddof=1); NaN if undefined."""
    d = np.asarray(d, np.float64)
    sd = np.std(d, ddof=1) if len(d) > 1 else 0.0
    return float(d.mean() / sd) if sd > 0 else math.nan


def paired_t(a, b) -> dict:
    """Paired t-test of per-sample errors a vs b (same samples, same order)."""
    d = _diff(a, b)
    if len(d) < 2 or np.all(d == d[0]):
        t, p = math.nan, (1.0 if len(d) and np.all(d == 0) else math.nan)
    else:
        res = sps.ttest_rel(a, b)
        t, p = float(res.statistic), float(res.pvalue)
    lo, hi = mean_ci(d)
    return {"n": int(len(d)), "mean_diff": _num(d.mean()) if len(d) else None,
            "ci95": [_num(lo), _num(hi)], "t": _num(t), "df": int(len(d) - 1), "p": _num(p),
            "cohens_dz": _num(cohens_dz(d))}


def wilcoxon(a, b) -> dict:
    """Wilcoxon signed-rank test of the paired differences (two-sided; zero differences dropped
    by scipy's default 'wilcox' rule). All-zero differences give p = 1."""
    d = _diff(a, b)
    if len(d) == 0 or np.all(d == 0):
        return {"n": int(len(d)), "statistic": None, "p": 1.0 if len(d) else None}
    res = sps.wilcoxon(a, b)
    return {"n": int(len(d)), "statistic": _num(res.statistic), "p": _num(res.pvalue)}


def corrected_t(d_folds, n_train, n_test) -> dict:
    """Nadeau-Bengio corrected resampled t-test on per-fold mean differences ``d_folds``.

    ``n_train``/``n_test``: numbers of training/validation samples, scalars or one per fold.
    """
    d = np.asarray(d_folds, np.float64)
    k = len(d)
    ratio = float(np.mean(np.asarray(n_test, np.float64) / np.asarray(n_train, np.float64)))
    factor = 1.0 / k + ratio
    var = np.var(d, ddof=1) if k > 1 else math.nan
    if k < 2 or not var > 0:
        t = math.nan
        p = 1.0 if k >= 2 and np.all(d == 0) else math.nan
    else:
        t = float(d.mean() / math.sqrt(factor * var))
        p = float(2 * sps.t.sf(abs(t), k - 1))
    lo, hi = mean_ci(d, scale=factor)
    return {"k": k, "mean_diff": _num(d.mean()), "ci95": [_num(lo), _num(hi)],
            "test_train_ratio": ratio, "var_factor": factor, "t": _num(t), "df": k - 1,
            "p": _num(p)}


def corrected_repeated_t(d_folds, n_train, n_test, repeats: int) -> dict:
    """Bouckaert & Frank's corrected repeated k-fold t-test on the R*k per-fold mean differences
    (any order): t = mean(d) / sqrt((1/(k r) + n_test/n_train) var(d, ddof=1)), df = k r - 1. The
    formula is Nadeau-Bengio's with every repeat's folds as the resamples."""
    return {**corrected_t(d_folds, n_train, n_test), "repeats": int(repeats)}


def mse_ci(fold_mse, n_train, n_test) -> list[float | None]:
    """95% interval of a variant's cross-validated MSE from its per-fold MSEs, with the corrected
    variance factor 1/J + n_test/n_train (J folds over all repeats) and df = J - 1."""
    x = np.asarray(fold_mse, np.float64)
    ratio = float(np.mean(np.asarray(n_test, np.float64) / np.asarray(n_train, np.float64)))
    lo, hi = mean_ci(x, scale=1.0 / len(x) + ratio) if len(x) > 1 else (math.nan, math.nan)
    return [_num(lo), _num(hi)]


def group_means(x, groups) -> tuple[np.ndarray, np.ndarray]:
    """(group names sorted, mean of x per group)."""
    names, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(x, np.float64), minlength=len(names))
    return names, sums / np.bincount(inverse, minlength=len(names))


def donor_tests(a, b, donors) -> dict:
    """The paired t and Wilcoxon tests on DONOR-averaged errors (a donor's samples averaged under
    A and under B, then paired by donor), and for how many donors A's mean error is lower."""
    _diff(a, b)
    _, ma = group_means(a, donors)
    _, mb = group_means(b, donors)
    return {"n_donors": int(len(ma)), "a_better": int(np.sum(ma < mb)),
            "b_better": int(np.sum(mb < ma)), "paired_t": paired_t(ma, mb),
            "wilcoxon": wilcoxon(ma, mb)}


def pooled_donor_tests(errors_a: Mapping, errors_b: Mapping, donors: Mapping) -> dict | None:
    """`donor_tests` over every fold at once: each donor's held-out errors (all its samples, every
    repeat) averaged under A and under B, paired over all donors. With few donors a fold holds one
    donor and the per-fold donor test has nothing to pair; pooled, it has one pair per donor. The
    folds' training sets overlap, so this is not corrected as the across-fold test is (see
    docs/statistics.md). None unless every fold has its donors."""
    folds = list(errors_a)
    if not folds or any(donors.get(f) is None for f in folds):
        return None
    who = np.concatenate([np.asarray(donors[f]).astype(str) for f in folds])
    return donor_tests(np.concatenate([np.asarray(errors_a[f], np.float64) for f in folds]),
                       np.concatenate([np.asarray(errors_b[f], np.float64) for f in folds]), who)


def holm(pvalues) -> list[float | None]:
    """Holm step-down adjusted p-values (None stays None)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _per_fold(values, folds) -> list:
    if isinstance(values, Mapping):
        return [values[f] for f in folds]
    return [values] * len(folds)


def compare_pair(errors_a: Mapping, errors_b: Mapping, n_train, n_test,
                 name_a: str = "A", name_b: str = "B", donors: Mapping | None = None,
                 repeat_of: Mapping | None = None) -> dict:
    """Every test for one pair. ``errors_*``: fold -> per-sample errors of that fold's validation
    samples; ``n_train``/``n_test``: scalars or fold -> sample counts of that fold; ``donors``:
    fold -> donor of each validation sample (adds the donor-averaged tests, per fold and pooled
    over folds as ``donor_pooled``); ``repeat_of``: fold ->
    repeat (R x k-fold; ``corrected`` then uses repeat 0, ``corrected_repeated`` every fold)."""
    folds = sorted(errors_a, key=lambda f: (len(str(f)), str(f)))
    if set(errors_a) != set(errors_b):
        raise ValueError(f"{name_a} and {name_b} cover different folds: "
                         f"{sorted(map(str, errors_a))} vs {sorted(map(str, errors_b))}")
    per_fold, d_means, pooled = [], [], []
    for f in folds:
        d = _diff(errors_a[f], errors_b[f])
        d_means.append(d.mean())
        pooled.append(d)
        row = {"fold": str(f),
               "mean_a": _num(np.mean(errors_a[f])), "mean_b": _num(np.mean(errors_b[f])),
               "paired_t": paired_t(errors_a[f], errors_b[f]),
               "wilcoxon": wilcoxon(errors_a[f], errors_b[f])}
        if donors is not None and donors.get(f) is not None:
            row["donor"] = donor_tests(errors_a[f], errors_b[f], donors[f])
        per_fold.append(row)
    pooled_d = np.concatenate(pooled) if pooled else np.zeros(0)
    n_tr, n_te = _per_fold(n_train, folds), _per_fold(n_test, folds)
    rep = [0 if repeat_of is None else int(repeat_of[f]) for f in folds]
    first = [i for i, r in enumerate(rep) if r == rep[0]] if folds else []
    out = {"a": name_a, "b": name_b, "per_fold": per_fold,
           "corrected": corrected_t([d_means[i] for i in first], [n_tr[i] for i in first],
                                    [n_te[i] for i in first]),
           "corrected_repeated": corrected_repeated_t(d_means, n_tr, n_te, len(set(rep))),
           "cohens_dz_pooled": _num(cohens_dz(pooled_d)),
           "n_samples": int(len(pooled_d))}
    if donors is not None:
        out["donor_pooled"] = pooled_donor_tests(errors_a, errors_b, donors)
    return out


def compare_all(per_sample_errors: Mapping[str, Mapping], n_train, n_test,
                holm_correction: bool = True, donors: Mapping | None = None,
                repeat_of: Mapping | None = None, outside=()) -> list[dict]:
    """`compare_pair` for every pair of variants (in the mapping's order, A before B), plus
    ``corrected.p_holm`` and ``corrected_repeated.p_holm`` adjusted across all pairs when
    ``holm_correction``; pairs with a variant in `outside` are left out of that family (their
    p_holm is None)."""
    names = list(per_sample_errors)
    pairs = [compare_pair(per_sample_errors[a], per_sample_errors[b], n_train, n_test, a, b,
                          donors=donors, repeat_of=repeat_of)
             for a, b in itertools.combinations(names, 2)]
    if holm_correction:
        family = [pr for pr in pairs if pr["a"] not in outside and pr["b"] not in outside]
        for key in ("corrected", "corrected_repeated"):
            for pr in pairs:
                pr[key]["p_holm"] = None
            for pair, p in zip(family, holm([pr[key]["p"] for pr in family])):
                pair[key]["p_holm"] = p
    return pairs
