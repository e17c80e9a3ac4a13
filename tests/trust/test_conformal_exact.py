"""Issue 32's exact statistics for the conformal intervals (`raviso.trust.reliability`, no Ray):
half-widths are never below the exact finite-sample quantile, and with ``--repeats`` a fold is
calibrated only on its own repeat (never on the same samples predicted in another repeat)."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.evaluate.engine.repeats import repeated_folds
from raviso.trust import reliability as rel


def arrays_of(pred, Y, train_mean=None):
    acc = rel.OofAccumulator(Y.mean(0) if train_mean is None else train_mean)
    acc.add(pred, Y)
    return acc.result()


def residuals(rng, n, m):
    """|residual|-shaped data of many kinds: heavy tails, exact zeros (isoforms that are off),
    scales from 0.01 to 3 log2 units."""
    Y = rng.gamma(1.5, 1.0, (n, m)) * (rng.random((n, m)) > rng.uniform(0, 0.6, m))
    noise = rng.standard_t(3, (n, m)) * rng.uniform(0.01, 3, m)
    noise[rng.random((n, m)) < rng.uniform(0, 0.5, m)] = 0.0          # exact zeros
    return Y + noise, Y


@pytest.mark.parametrize("n", [9, 19, 57, 200, 999])
def test_halfwidth_is_never_below_the_exact_finite_sample_quantile(n):
    rng = np.random.default_rng(n)
    pred, Y = residuals(rng, n, 300)
    a = arrays_of(pred, Y)
    r = np.sort(np.abs(pred - Y), axis=0)
    for level in (0.5, 0.8, 0.9, 0.95):
        w = rel.halfwidth(a["hist"], level)
        rank = int(np.ceil((n + 1) * level))
        if rank > n:                                   # too few residuals: infinite
            assert np.isinf(w).all()
            continue
        exact = r[rank - 1]
        assert (w >= exact).all(), (level, np.min(w - exact))
        # no wider than the one bin that holds the exact quantile (2^(1/12)), or the first bin
        finite = np.isfinite(w)          # infinite only where the quantile is in the open bin
        assert finite.mean() > 0.9 and (exact[~finite] >= rel.EDGES[-1]).all()
        assert (w[finite] <= np.maximum(exact[finite] * 2 ** (1 / 12), rel.EDGES[0]) + 1e-12).all()
        # so at least `rank` of the n residuals lie inside: the split-conformal guarantee
        assert ((np.abs(pred - Y) <= w).sum(axis=0)[finite] >= rank).all()


def test_a_six_per_octave_histogram_of_an_older_model_is_read_as_such():
    rng = np.random.default_rng(1)
    pred, Y = residuals(rng, 400, 50)
    d = np.abs(pred - Y)
    old_edges = rel.edges_of(11 * 6 + 2)
    b = np.searchsorted(old_edges, d, side="right")
    hist = np.stack([np.bincount(b[:, j], minlength=68) for j in range(50)])
    w = rel.halfwidth(hist, 0.9)
    exact = np.sort(d, axis=0)[int(np.ceil(401 * 0.9)) - 1]
    assert (w >= exact).all() and np.isin(w, old_edges).all()
    np.testing.assert_array_equal(rel.covered(hist, w), (d <= w).sum(axis=0))


def test_repeats_never_calibrate_on_the_held_out_samples_from_another_repeat():
    rng = np.random.default_rng(7)
    n, m = 240, 30
    donor = np.repeat(np.arange(60), 4)
    tissue = np.array(["a", "b"])[np.arange(n) % 2]
    plan = repeated_folds(tissue, donor, k=4, seed=0, repeats=2)
    assert plan.k == 8 and plan.k_per_repeat == 4
    Y = rng.gamma(2, 1, (n, m))
    # repeat 0 predicts with small errors, repeat 1 with errors ten times larger: a fold
    # calibrated on the other repeat (which holds its own samples) would cover ~1.0 or ~0.5
    pred = [Y + rng.normal(0, 0.2, (n, m)), Y + rng.normal(0, 2.0, (n, m))]
    oof = {}
    for f in range(plan.k):
        r, rows = plan.repeat_of(f), np.flatnonzero(plan.assignments[plan.repeat_of(f)] == f)
        oof[(f, "v")] = arrays_of(pred[r][rows], Y[rows], Y[plan.assignments[r] != f].mean(0))
    cov = rel.cv_intervals(oof, plan, ["v"])["v"]["0.9"]
    assert len(cov["per_fold"]) == 8
    for c in cov["per_fold"]:
        assert 0.85 <= c <= 0.96, cov["per_fold"]
    # each fold exactly as calibrated on the other folds of its repeat alone
    for r in range(2):
        alone = rel.coverage({f: oof[(f, "v")] for f in range(4 * r, 4 * r + 4)}, k=4)
        assert cov["per_fold"][4 * r:4 * r + 4] == pytest.approx(alone["0.9"]["per_fold"])
