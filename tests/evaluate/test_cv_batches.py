"""A small store's baselines run as one Tune trial per fold (`raviso.evaluate.engine.jobs`): every
member keeps its own row, errors and arrays, with exactly the numbers a trial of its own computes
(`run_trial`), and a member that crashes once is retried in place and marked, alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cvdata import failing_once, write_tiny_store

pytestmark = pytest.mark.ray

VARIANTS = ["pca_ridge", "mean", "tissue_mean"]
K = 3


def test_batch_jobs_group_a_small_stores_baselines_per_fold():
    from raviso.evaluate.engine.jobs import batch_jobs, members, trial_order

    jobs = trial_order(["share_net", "mean", "tissue_mean", "mean@tuned"], 2)
    assert batch_jobs(jobs, 100) == [[0, "share_net"], [1, "share_net"],
                                     [0, "mean@tuned"], [1, "mean@tuned"],
                                     [0, ["mean", "tissue_mean"]], [1, ["mean", "tissue_mean"]]]
    assert batch_jobs(jobs, 10_000) == jobs                     # a large store: one per trial
    assert batch_jobs([[0, "mean"], [0, "share_net"]], 100) == [[0, "mean"], [0, "share_net"]]
    assert members([0, ["mean", "tissue_mean"]]) == ["mean", "tissue_mean"]
    assert members([0, "mean"]) == ["mean"]


def test_batched_trials_match_single_trials_and_retry_alone(tmp_path, ray_session):
    from raviso.data import make_folds
    from raviso.evaluate.cv import run_cv, run_trial
    from raviso.evaluate.engine.inputs import load_labelled

    store, _ = write_tiny_store(tmp_path / "store")
    said: list[str] = []
    with failing_once(1, "mean"):
        out = run_cv(store, variants=",".join(VARIANTS), folds=K, seed=0, out=tmp_path / "cv",
                     progress=said.append, report=False)
    doc = json.loads((out / "results.json").read_text())
    rows = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    assert set(rows) == {(f, v) for f in range(K) for v in VARIANTS}
    assert [k for k, t in rows.items() if t["retried"]] == [(1, "mean")]
    assert rows[(1, "mean")]["attempts"] == 2
    assert doc["retried_trials"] == ["fold 1 mean (2 attempts)"]
    assert "trial fold 1 mean crashed: retrying it" in said
    lines = [s for s in said if s.startswith("trial ") and "MSE" in s]
    assert len(lines) == K * len(VARIANTS) and lines[-1].startswith(f"trial {K * len(VARIANTS)}/")
    assert set(doc["intervals"]) == set(VARIANTS)

    _, data = load_labelled(store, {})
    folds = make_folds(data.tissue, data.donor, k=K, seed=0)
    for (f, v), t in rows.items():
        alone = run_trial(data, folds.fold, f, v, {"seed": 0})
        assert t["mse"] == alone["mse"], (f, v)                  # to the last digit
        assert np.array_equal(np.load(out / "errors" / f"fold{f}_{v}.npy"), alone["per_sample"])
