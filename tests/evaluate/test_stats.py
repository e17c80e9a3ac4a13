"""Statistics: against scipy on known inputs, and the corrected test against a hand computation."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from raviso.evaluate.stats import paired as stats

A = np.array([0.52, 0.61, 0.47, 0.55, 0.70, 0.49, 0.58, 0.66, 0.51, 0.60])
B = np.array([0.50, 0.57, 0.48, 0.50, 0.64, 0.47, 0.55, 0.60, 0.50, 0.55])


def test_paired_t_matches_scipy_and_hand_ci():
    res = stats.paired_t(A, B)
    ref = sps.ttest_rel(A, B)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    d = A - B
    half = sps.t.ppf(0.975, 9) * d.std(ddof=1) / math.sqrt(10)
    assert res["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], rel=1e-12)
    assert res["mean_diff"] == pytest.approx(0.033, abs=1e-12)     # hand: sum(d) = 0.33
    assert res["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    assert (res["n"], res["df"]) == (10, 9)


def test_wilcoxon_matches_scipy():
    res = stats.wilcoxon(A, B)
    ref = sps.wilcoxon(A, B)
    assert res["statistic"] == ref.statistic and res["p"] == pytest.approx(ref.pvalue)
    assert stats.wilcoxon(A, A) == {"n": 10, "statistic": None, "p": 1.0}


def test_corrected_t_variance_factor_by_hand():
    d = np.array([0.010, 0.030, -0.005, 0.020, 0.015])
    res = stats.corrected_t(d, n_train=80, n_test=20)
    factor = 1 / 5 + 20 / 80                      # 0.45
    assert res["var_factor"] == pytest.approx(0.45)
    # hand: mean 0.014, var(ddof=1) = 0.0001675 -> t = 0.014 / sqrt(0.45 * 0.0001675)
    assert d.mean() == pytest.approx(0.014) and d.var(ddof=1) == pytest.approx(0.0001675)
    t = 0.014 / math.sqrt(0.45 * 0.0001675)
    assert res["t"] == pytest.approx(t, rel=1e-9)
    assert res["p"] == pytest.approx(2 * sps.t.sf(t, 4), rel=1e-9)
    assert res["df"] == 4
    half = sps.t.ppf(0.975, 4) * math.sqrt(factor * 0.0001675)
    assert res["ci95"] == pytest.approx([0.014 - half, 0.014 + half], rel=1e-9)
    naive = sps.ttest_1samp(d, 0.0).pvalue      # variance factor 1/k
    assert res["p"] > naive
    # per-fold sizes: the ratio is the mean of the per-fold ratios
    res2 = stats.corrected_t(d, n_train=[80, 80, 90, 70, 80], n_test=[20, 20, 10, 30, 20])
    assert res2["test_train_ratio"] == pytest.approx(np.mean([.25, .25, 1 / 9, 30 / 70, .25]))


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, None, 0.2]) == [pytest.approx(0.5), None, pytest.approx(0.4)]


def _errors(seed, shift):
    rng = np.random.default_rng(seed)
    return {f: 0.5 + shift + rng.normal(0, 0.05, 12 + f) for f in range(3)}


def test_compare_all_pairs_every_variant_and_is_json():
    errs = {"vae_ffnn": _errors(0, 0.0), "mean": _errors(1, 0.05), "gene_ffnn": _errors(2, 0.01)}
    pairs = stats.compare_all(errs, n_train={0: 27, 1: 26, 2: 25}, n_test={0: 12, 1: 13, 2: 14})
    assert [(p["a"], p["b"]) for p in pairs] == [("vae_ffnn", "mean"), ("vae_ffnn", "gene_ffnn"),
                                               ("mean", "gene_ffnn")]
    json.dumps(pairs, allow_nan=False)
    first = pairs[0]
    for f, pf in enumerate(first["per_fold"]):
        ref = sps.ttest_rel(errs["vae_ffnn"][f], errs["mean"][f])
        assert pf["fold"] == str(f) and pf["paired_t"]["p"] == pytest.approx(ref.pvalue)
        assert pf["wilcoxon"]["p"] == pytest.approx(
            sps.wilcoxon(errs["vae_ffnn"][f], errs["mean"][f]).pvalue)
    d = [np.mean(errs["vae_ffnn"][f] - errs["mean"][f]) for f in range(3)]
    ref = stats.corrected_t(d, [27, 26, 25], [12, 13, 14])
    assert first["corrected"]["t"] == pytest.approx(ref["t"])
    assert first["corrected"]["mean_diff"] < 0          # A (vae_ffnn) has the lower error
    assert first["n_samples"] == 12 + 13 + 14
    for p in pairs:
        assert p["corrected"]["p_holm"] >= p["corrected"]["p"]


def test_unpaired_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_t(A, B[:-1])
    with pytest.raises(ValueError, match="different folds"):
        stats.compare_pair({0: A, 1: A}, {0: B}, 10, 5)


def test_corrected_repeated_t_by_hand():
    """Bouckaert & Frank: 2 repeats x 3 folds, variance factor 1/(k r) + n_test/n_train."""
    d = np.array([0.02, 0.01, 0.03, 0.015, 0.025, 0.005])
    res = stats.corrected_repeated_t(d, n_train=60, n_test=30, repeats=2)
    factor = 1 / 6 + 30 / 60
    # hand: mean 0.0175, var(ddof=1) = 0.0000875
    assert d.mean() == pytest.approx(0.0175) and d.var(ddof=1) == pytest.approx(8.75e-5)
    t = 0.0175 / math.sqrt(factor * 8.75e-5)
    assert res["var_factor"] == pytest.approx(factor)
    assert res["t"] == pytest.approx(t, rel=1e-9) and res["df"] == 5 and res["repeats"] == 2
    assert res["p"] == pytest.approx(2 * sps.t.sf(t, 5), rel=1e-9)


def test_mse_ci_by_hand():
    x = np.array([0.40, 0.42, 0.38, 0.41, 0.39])
    lo, hi = stats.mse_ci(x, n_train=80, n_test=20)
    half = sps.t.ppf(0.975, 4) * math.sqrt((1 / 5 + 0.25) * x.var(ddof=1))
    assert (lo, hi) == pytest.approx((0.40 - half, 0.40 + half), rel=1e-12)
    assert stats.mse_ci([0.4], 80, 20) == [None, None]


def test_donor_averaged_tests_pair_donor_means():
    a = np.array([0.5, 0.7, 0.6, 0.4, 0.9, 0.8, 0.55])
    b = np.array([0.45, 0.6, 0.62, 0.41, 0.7, 0.75, 0.5])
    donors = ["d1", "d1", "d2", "d2", "d3", "d3", "d4"]
    res = stats.donor_tests(a, b, donors)
    # hand: donor means of a = 0.6, 0.5, 0.85, 0.55; of b = 0.525, 0.515, 0.725, 0.5
    ma, mb = np.array([0.6, 0.5, 0.85, 0.55]), np.array([0.525, 0.515, 0.725, 0.5])
    assert res["n_donors"] == 4
    assert res["paired_t"]["p"] == pytest.approx(sps.ttest_rel(ma, mb).pvalue, rel=1e-9)
    assert res["paired_t"]["mean_diff"] == pytest.approx((ma - mb).mean(), rel=1e-12)
    assert res["wilcoxon"]["p"] == pytest.approx(sps.wilcoxon(ma, mb).pvalue, rel=1e-12)


def test_compare_pair_repeats_and_donors():
    """corrected = Nadeau-Bengio on repeat 0's folds; corrected_repeated = B&F on all folds."""
    rng = np.random.default_rng(5)
    ea = {f: 0.5 + rng.normal(0, 0.05, 8) for f in range(4)}
    eb = {f: 0.52 + rng.normal(0, 0.05, 8) for f in range(4)}
    donors = {f: [f"D{i // 2}" for i in range(8)] for f in range(4)}
    pair = stats.compare_pair(ea, eb, 30, 8, "a", "b", donors=donors,
                              repeat_of={0: 0, 1: 0, 2: 1, 3: 1})
    d = [np.mean(ea[f] - eb[f]) for f in range(4)]
    assert pair["corrected"]["t"] == pytest.approx(stats.corrected_t(d[:2], 30, 8)["t"])
    assert pair["corrected_repeated"]["t"] == pytest.approx(
        stats.corrected_repeated_t(d, 30, 8, 2)["t"])
    assert pair["corrected_repeated"]["repeats"] == 2 and pair["corrected_repeated"]["df"] == 3
    assert all(f["donor"]["n_donors"] == 4 for f in pair["per_fold"])
    pairs = stats.compare_all({"a": ea, "b": eb, "c": eb}, 30, 8, donors=donors)
    assert all(p["corrected_repeated"]["p_holm"] >= p["corrected_repeated"]["p"] for p in pairs)


def test_one_donor_per_fold_has_no_fold_donor_test_but_a_pooled_one_pairs_every_donor():
    """6 donors, 3 samples each, leave-one-donor-out: per fold the donor test has n = 1 (p None);
    pooled over folds it pairs the 6 donor means; a second repeat's errors for the same donor
    are averaged in, not counted as another donor."""
    rng = np.random.default_rng(11)
    ea = {f: rng.gamma(4.0, 0.1, 3) for f in range(6)}
    eb = {f: ea[f] + rng.normal(0.02, 0.03, 3) for f in range(6)}
    donors = {f: [f"D{f}"] * 3 for f in range(6)}
    pair = stats.compare_pair(ea, eb, 15, 3, "a", "b", donors=donors)
    assert all(f["donor"]["n_donors"] == 1 and f["donor"]["paired_t"]["p"] is None
               for f in pair["per_fold"])
    ma = np.array([ea[f].mean() for f in range(6)])
    mb = np.array([eb[f].mean() for f in range(6)])
    pooled = pair["donor_pooled"]
    assert pooled["n_donors"] == 6
    assert pooled["paired_t"]["p"] == pytest.approx(sps.ttest_rel(ma, mb).pvalue, rel=1e-9)
    assert pooled["wilcoxon"]["p"] == pytest.approx(sps.wilcoxon(ma, mb).pvalue, rel=1e-9)
    assert (pooled["a_better"], pooled["b_better"]) == (int((ma < mb).sum()),
                                                          int((mb < ma).sum()))
    # two repeats: fold 6 + f holds donor D(5 - f) again; its mean is over both repeats
    ea2 = {**ea, **{6 + f: ea[5 - f] + 0.1 for f in range(6)}}
    eb2 = {**eb, **{6 + f: eb[5 - f] for f in range(6)}}
    donors2 = {**donors, **{6 + f: donors[5 - f] for f in range(6)}}
    rep = stats.compare_pair(ea2, eb2, 15, 3, "a", "b", donors=donors2,
                             repeat_of={f: f // 6 for f in range(12)})["donor_pooled"]
    assert rep["n_donors"] == 6
    assert rep["paired_t"]["mean_diff"] == pytest.approx((ma + 0.05 - mb).mean(), rel=1e-9)
    # a fold without donors: no pooled test (it could not pair every sample by donor)
    assert stats.compare_pair(ea, eb, 15, 3, donors={**donors, 0: None})["donor_pooled"] is None


def test_a_column_outside_the_family_gets_no_holm_p_and_leaves_the_others_alone():
    rng = np.random.default_rng(3)
    errs = {v: {f: rng.gamma(2.0, 0.2, 10) + s for f in range(3)}
            for v, s in (("a", 0.0), ("b", 0.05), ("tuned", -0.1))}
    every = stats.compare_all(errs, 20, 10, outside=("tuned",))
    fair = stats.compare_all({v: errs[v] for v in ("a", "b")}, 20, 10)
    by = {(p["a"], p["b"]): p for p in every}
    assert by[("a", "b")]["corrected"]["p_holm"] == pytest.approx(fair[0]["corrected"]["p_holm"])
    assert by[("a", "tuned")]["corrected"]["p_holm"] is None
    assert by[("b", "tuned")]["corrected_repeated"]["p_holm"] is None
