"""The applicability domain (`raviso.trust.domain`, no Ray): held-out percentiles are calibrated
on data like the training set, a batch offset or another cell type is flagged, and the interval
scale follows the held-out errors."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.trust import domain as dm


def world(n, g=120, seed=0, programs=6, centre=None):
    """log-like expression of `programs` latent programs + gene noise (the same loadings for
    every call with the same `seed`; `centre` moves the programs: another cell type)."""
    load = np.random.default_rng(seed).normal(0, 0.6, (programs, g))
    rng = np.random.default_rng(seed + 1000 + n)
    z = rng.normal(0, 1, (n, programs)) + (0 if centre is None else centre)
    return 4 + z @ load + rng.normal(0, 0.4, (n, g))


def auc(neg, pos) -> float:
    """P(a positive scores above a negative) (ties count half)."""
    neg, pos = np.asarray(neg), np.asarray(pos)
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


@pytest.fixture(scope="module")
def fitted():
    X = world(400)
    return X, dm.model_domain(X, np.arange(len(X)) % 5)


def test_fresh_samples_like_the_training_set_are_calibrated(fitted):
    X, arrays = fitted
    check = dm.DomainCheck(arrays, level=0.9)
    new = world(2000, seed=0)
    cols = check.assess(new, [f"s{i}" for i in range(len(new))])
    pct = cols["domain_pct"]
    # "as unusual as X% of held-out donors": fresh samples spread uniformly over the percentiles
    assert np.mean(pct >= 0.9) == pytest.approx(0.10, abs=0.04)
    assert np.mean(pct >= 0.5) == pytest.approx(0.50, abs=0.07)
    assert np.mean(cols["in_domain"]) == pytest.approx(0.90, abs=0.04)
    assert len(arrays["calibration"]) == len(X)


def test_a_batch_offset_and_another_cell_type_are_flagged(fitted):
    _, arrays = fitted
    check = dm.DomainCheck(arrays)                  # level 0.99
    base = world(200, seed=0)
    offset = base + np.random.default_rng(5).normal(0, 0.8, base.shape[1])   # platform / batch
    other = world(200, seed=0, centre=np.full(6, 3.5))                        # unseen cell type
    typical = check.assess(base, list(range(200)))
    flagged = int((~typical["in_domain"]).sum())
    assert flagged <= 6                              # 1% of typical samples, give or take
    for shifted in (offset, other):
        cols = check.assess(shifted, list(range(200)))
        flagged += int((~cols["in_domain"]).sum())
        assert cols["in_domain"].mean() < 0.03
        assert auc(typical["domain_score"], cols["domain_score"]) > 0.99
    line = check.summary()
    assert line.startswith(f"raviso: warning: {flagged} of 600 samples are further from the "
                           "training data than 99% of held-out donors: their reliability and "
                           "intervals are not valid")


def test_interval_scale_follows_the_heldout_errors():
    pct = np.linspace(0, 0.999, 1000)
    mse = np.where(pct >= 0.95, 4.0, 1.0)           # the most unusual 5% predicted worse
    scale = dm.interval_scale(pct, mse)
    overall = mse.mean()
    assert scale[-1] == pytest.approx(np.sqrt(4.0 / overall))
    assert scale[0] == pytest.approx(np.sqrt(1.0 / overall))
    assert (dm.interval_scale(pct, np.full(1000, np.nan)) == 1).all()   # no errors: no scale


def test_heldout_scores_use_only_the_training_fold():
    X = world(300)
    folds = np.arange(300) % 3
    held = dm.heldout_scores(X, folds)
    own = dm.Domain.fit(X, np.flatnonzero(folds != 0), seed=0).score(X[folds == 0])
    np.testing.assert_allclose(held[folds == 0], own)
    # a training row is closer to its own fit than a held-out row is: the calibration is honest
    inside = dm.Domain.fit(X).score(X)
    assert np.median(held) > np.median(inside)
    # (R, n) plans of --repeats: the first repeat's folds
    np.testing.assert_allclose(dm.heldout_scores(X, np.stack([folds, folds[::-1] + 3])), held)
