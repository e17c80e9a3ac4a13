"""`small_data_folds`: explicit, reported CV schemes for users' small labelled sets."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.data.folds import small_data_folds


def _donors_never_split(folds, donor):
    for d in set(donor):
        assert len(set(folds.fold[np.asarray(donor) == d])) == 1, d


def test_few_donors_give_leave_one_donor_out():
    tissue = ["a", "b", "a", "b", "a", "b", "a", "b"]
    donor = ["d1", "d1", "d2", "d2", "d3", "d3", "d4", "d4"]
    f = small_data_folds(tissue, donor, k=5, seed=3)
    assert f.scheme == "logo" and f.k == 4 and f.grouped_by == "donor"
    assert sorted(set(f.fold.tolist())) == [0, 1, 2, 3]
    _donors_never_split(f, donor)
    assert "leave-one-donor-out: only 4 donors for 5 requested folds" == f.reason
    assert f.to_dict()["scheme"] == "logo" and f.to_dict()["requested_k"] == 5
    # same seed, same folds; the fold numbering is shuffled by the seed
    assert np.array_equal(f.fold, small_data_folds(tissue, donor, k=5, seed=3).fold)


def test_k_adapted_to_smallest_class():
    # class "rare" spans 3 donors, so at most 3 folds can each hold one of its donors
    tissue = ["big"] * 24 + ["rare"] * 3
    donor = [f"d{i}" for i in range(24)] + ["r1", "r2", "r3"]
    f = small_data_folds(tissue, donor, k=5, seed=0)
    assert f.scheme == "kfold" and f.k == 3
    assert "k reduced from 5 to 3: the smallest class 'rare' has 3 donors" in f.reason
    for i in range(3):
        _, val = f.split(i)
        assert "rare" in {tissue[j] for j in val}          # every fold sees the small class
    _donors_never_split(f, donor)


def test_large_enough_keeps_requested_k_and_without_donors_groups_are_samples():
    tissue = ["a"] * 10 + ["b"] * 10
    f = small_data_folds(tissue, None, k=5)
    assert f.scheme == "kfold" and f.k == 5 and f.grouped_by == "none"
    assert f.reason == "5-fold as requested"
    assert np.bincount(f.fold).tolist() == [4, 4, 4, 4, 4]
    f = small_data_folds(["a"] * 4, None, k=5)
    assert f.scheme == "logo" and f.k == 4 and f.reason.startswith("leave-one-sample-out")


def test_single_donor_class_is_reported_and_one_group_is_an_error():
    tissue = ["a"] * 12 + ["lonely"]
    donor = [f"d{i}" for i in range(12)] + ["x"]
    f = small_data_folds(tissue, donor, k=4)
    assert f.k == 4 and "pooled: lonely" in f.reason
    with pytest.raises(RavisoError, match="from 1 donor cannot be cross-validated"):
        small_data_folds(["a", "a"], ["d", "d"])
    with pytest.raises(RavisoError, match="fold scheme must be one of"):
        small_data_folds(["a", "a"], None, scheme="loo")
