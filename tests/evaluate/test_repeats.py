"""`--repeats` runs genuinely different partitions: a fold seed that gives an earlier repeat's
partition again is dropped (never counted twice), further seeds are drawn, and the plan says when
fewer distinct partitions exist than were asked for."""

from __future__ import annotations

import numpy as np

from raviso.data.folds import make_folds
from raviso.evaluate.engine.repeats import (MAX_SEEDS, RepeatedFolds, partition_key,
                                            repeated_folds)
from raviso.synth import names
from raviso.synth.generate import get_preset
from raviso.synth.world import build_world


def _tiny_world(seed: int):
    p = get_preset("tiny")
    w = build_world(seed, p.n_archs4, p.n_gtex, p.n_genes, p.n_isoforms)
    return np.array(names.TISSUES)[w.gtex_tissue], w.gtex_donor.astype(str)


def _partitions(plan: RepeatedFolds) -> set:
    return {partition_key(p.fold) for p in plan.plans}


def test_partition_key_ignores_fold_labels():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert partition_key(a) == partition_key(np.array([2, 2, 0, 0, 1, 1]))
    assert partition_key(a) != partition_key(np.array([0, 1, 0, 1, 2, 2]))


def test_identical_partitions_never_counted_twice():
    """Tiny preset, world seed 0, 16 donors, 3 folds: fold seeds 0, 1, 3 and 6 give one partition
    and 2, 4, 5, 7 another, so --repeats 3 must skip seeds 1 (a duplicate of 0) and reach a third
    distinct partition further on, or stop at the distinct ones and say so."""
    tissue, donor = _tiny_world(0)
    keys = [partition_key(make_folds(tissue, donor, k=3, seed=s).fold) for s in range(8)]
    assert keys[0] == keys[1] and keys[0] != keys[2]          # the sklearn behaviour at issue
    plan = repeated_folds(tissue, donor, k=3, seed=0, repeats=3)
    assert len(_partitions(plan)) == plan.repeats              # every repeat a new partition
    assert plan.plans[0].seed == 0 and plan.plans[1].seed == 2 and 1 in plan.duplicate_seeds
    assert plan.k == 3 * plan.repeats and plan.assignments.shape == (plan.repeats, len(tissue))
    doc = plan.to_dict()
    assert doc["repeats_requested"] == 3 and doc["repeats"] == plan.repeats
    assert doc["seeds"] == [p.seed for p in plan.plans]
    if plan.repeats < 3:
        assert "only" in plan.note and "never counted twice" in plan.note
        assert len(plan.duplicate_seeds) + plan.repeats == MAX_SEEDS * 3    # the bound was used
    else:
        assert plan.note == ""


def test_only_one_partition_exists_is_said():
    """World seed 1, 5 folds: every fold seed gives the same partition; --repeats 2 runs one
    repeat, says so, and tries a bounded number of seeds."""
    tissue, donor = _tiny_world(1)
    plan = repeated_folds(tissue, donor, k=5, seed=0, repeats=2)
    assert plan.repeats == 1 and plan.k == 5
    assert plan.duplicate_seeds == list(range(1, MAX_SEEDS * 2))
    assert plan.to_dict()["note"].startswith("--repeats 2: only 1 distinct partition")


def test_distinct_partitions_keep_consecutive_seeds():
    """Where every seed differs, the plan is what it was before: seeds seed .. seed+R-1."""
    rng = np.random.default_rng(0)
    tissue = rng.choice(["a", "b", "c"], 200)
    donor = np.array([f"d{i // 2}" for i in range(200)])
    plan = repeated_folds(tissue, donor, k=4, seed=5, repeats=3)
    assert [p.seed for p in plan.plans] == [5, 6, 7] and plan.note == ""
    for r, p in enumerate(plan.plans):
        assert np.array_equal(p.fold, make_folds(tissue, donor, k=4, seed=5 + r).fold)
