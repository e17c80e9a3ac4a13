"""Generalisation schemes: held-out tissues (`tissue_folds`) and the labelled-size learning curve
(`training_subset`)."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.data.folds import make_folds, tissue_folds, training_subset
from raviso.evaluate.engine.repeats import fold_split, repeated_folds


def _gtex_like(n_donors=30, tissues=8, seed=0):
    """Every donor gives a random half of the tissues (one sample each)."""
    rng = np.random.default_rng(seed)
    tissue, donor = [], []
    for d in range(n_donors):
        for t in rng.choice(tissues, tissues // 2, replace=False):
            tissue.append(f"T{t}")
            donor.append(f"D{d}")
    return np.array(tissue), np.array(donor)


def test_heldout_tissues_never_in_training_rows():
    tissue, donor = _gtex_like()
    f = make_folds(tissue, donor, k=3, seed=4, scheme="tissue")
    assert f.k == 3 and f.grouped_by == "tissue"
    seen = []
    for i in range(f.k):
        train, val = f.split(i)
        assert set(tissue[val]) == set(f.heldout[i])
        assert not set(tissue[train]) & set(tissue[val])
        seen += f.heldout[i]
    assert sorted(seen) == sorted(set(tissue))          # every tissue held out exactly once
    d = f.to_dict()
    assert d["scheme"] == "tissue" and d["heldout_tissues"] == f.heldout
    assert 0 < d["donor_overlap"] <= 1                   # donors give several tissues


def test_tissue_folds_balanced_seeded_and_repeatable():
    tissue, donor = _gtex_like(n_donors=60, tissues=10)
    a, b = tissue_folds(tissue, donor, k=2, seed=1), tissue_folds(tissue, donor, k=2, seed=1)
    assert np.array_equal(a.fold, b.fold)
    sizes = np.bincount(a.fold)
    assert sizes.max() - sizes.min() <= np.unique(tissue, return_counts=True)[1].max()
    groupings = {tuple(map(tuple, tissue_folds(tissue, donor, k=2, seed=s).heldout))
                 for s in range(6)}
    assert len(groupings) > 1                            # seeds hold out different groupings
    plan = repeated_folds(tissue, donor, k=2, seed=0, repeats=2, scheme="tissue")
    for i in range(plan.k):
        train, val = fold_split(plan.assignments, i)
        assert not set(tissue[train]) & set(tissue[val])


def test_tissue_folds_k_capped_and_bad_input():
    assert tissue_folds(["a", "b", "a"], k=5).k == 2
    with pytest.raises(RavisoError, match="at least 2 tissues"):
        tissue_folds(["a", "a", "a"], k=2)


def test_training_subset_donor_disjoint_nested_deterministic():
    tissue, donor = _gtex_like(n_donors=40)
    f = make_folds(tissue, donor, k=4, seed=0)
    for i in range(f.k):
        train, val = f.split(i)
        n_donors = len(set(donor[train]))
        previous = set()
        for frac in (0.02, 0.05, 0.1, 0.25, 1.0):
            sub = training_subset(train, donor, frac, seed=7, fold=i)
            assert set(sub) <= set(train)
            assert not set(donor[sub]) & set(donor[val])          # donor-disjoint from validation
            kept = set(donor[sub])
            assert len(kept) == (n_donors if frac == 1 else max(2, round(frac * n_donors)))
            # whole donors: every training row of a kept donor is kept
            assert set(sub) == {j for j in train if donor[j] in kept}
            assert previous <= kept                                # nested
            previous = kept
            assert np.array_equal(sub, training_subset(train, donor, frac, seed=7, fold=i))
    a = training_subset(train, donor, 0.25, seed=7, fold=0)
    b = training_subset(train, donor, 0.25, seed=7, fold=1)
    c = training_subset(train, donor, 0.25, seed=8, fold=0)
    assert set(donor[a]) != set(donor[b]) or set(donor[a]) != set(donor[c])


def test_training_subset_without_donors_and_bad_fraction():
    train = np.arange(50)
    assert len(training_subset(train, None, 0.1, seed=0)) == 5
    assert np.array_equal(training_subset(train, None, 1.0), train)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(RavisoError, match="--train-fraction"):
            training_subset(train, None, bad)
