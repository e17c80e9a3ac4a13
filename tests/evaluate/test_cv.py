"""`raviso cv` end to end on the real shared Ray (one Tune run for the whole module): every fold x
variant in results.json, the folds' invariants on the output, a retried trial marked, zero-copy
sharing of the matrices, numbers checked against hand computations, the report and the saved model.
"""

from __future__ import annotations

import csv
import json
from itertools import combinations

import numpy as np
import pytest
from cvdata import failing_once, write_tiny_run, write_tiny_store

from raviso.core.errors import RavisoError

VARIANTS = ["vae_ffnn", "mean", "tissue_mean"]
K = 3
RETRIED = (1, "mean")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cv(tmp_path_factory, ray_session):
    from raviso.evaluate.cv import run_cv

    root = tmp_path_factory.mktemp("cv")
    store, d = write_tiny_store(root / "store")
    run = write_tiny_run(root / "vae", d["genes"])
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, **{f"{k}_{t}": 30.0 - e + j for j, k in enumerate(("train", "val"))
                                 for t in ("elbo", "recon", "kl")}}) + "\n"
        for e in range(3)))
    said = Said()
    with failing_once(*RETRIED):
        out = run_cv(store, pretrained=run, variants=",".join(VARIANTS), folds=K, epochs=2,
                     seed=0, out=root / "cv", save_model=True, progress=said)
    CV_PROGRESS[:] = said.lines
    return out, json.loads((out / "results.json").read_text()), d


CV_PROGRESS: list[str] = []


class Said:
    """A progress sink holding a lock, like a rich Console (Tune pickles its callbacks)."""

    def __init__(self):
        import threading

        self.lock = threading.RLock()
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)


def test_progress_lines(cv):
    trial_lines = [s for s in CV_PROGRESS if s.startswith("trial ") and "MSE" in s]
    assert len(trial_lines) == K * len(VARIANTS)
    assert f"trial {K * len(VARIANTS)}/{K * len(VARIANTS)}:" in trial_lines[-1]
    assert "trial fold 1 mean crashed: retrying it" in CV_PROGRESS


def test_every_fold_and_variant_is_reported(cv):
    out, doc, _ = cv
    assert doc["schema"] == "raviso.cv.results/1"
    pairs = {(t["fold"], t["variant"]) for t in doc["trials"]}
    assert pairs == {(f, v) for f in range(K) for v in VARIANTS}
    assert all(t["status"] == "ok" for t in doc["trials"])
    for t in doc["trials"]:
        e = np.load(out / "errors" / f"fold{t['fold']}_{t['variant']}.npy")
        assert len(e) == doc["folds"][t["fold"]]["n_test"] == t["n_test"]
        assert e.mean() == pytest.approx(t["mse"], rel=1e-9)
    assert len(doc["tests"]) == len(list(combinations(VARIANTS, 2)))
    assert set(doc["summary"]) == set(VARIANTS)


def test_retried_trial_is_marked(cv):
    _, doc, _ = cv
    by = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    assert by[RETRIED]["attempts"] == 2 and by[RETRIED]["retried"]
    assert [t for t in doc["trials"] if t["retried"]] == [by[RETRIED]]
    assert doc["retried_trials"] == ["fold 1 mean (2 attempts)"]
    report = (cv[0] / "report.md").read_text()
    assert "Retried trials: fold 1 mean (2 attempts)" in report


def test_matrices_reach_trials_zero_copy(cv):
    """Trials see the object store's read-only views, never private copies of the matrices."""
    _, doc, _ = cv
    assert all(t["zero_copy"] is True for t in doc["trials"])
    assert doc["tune"]["all_zero_copy"] is True


def test_folds_disjoint_cover_donors_together_tissues_stratified(cv):
    _, doc, d = cv
    ids = [s for f in doc["folds"] for s in f["sample_id"]]
    assert sorted(ids) == sorted(d["sample_id"])            # cover every sample exactly once
    assert len(set(ids)) == len(ids)                        # disjoint
    donor = dict(zip(d["sample_id"], d["donor"]))
    fold_of_donor = {}
    for f in doc["folds"]:
        for s in f["sample_id"]:
            assert fold_of_donor.setdefault(donor[s], f["fold"]) == f["fold"]
    rare = doc["grouping"]["rare_tissues"]
    assert rare == ["Kidney - Medulla"] and doc["grouping"]["grouped_by"] == "donor"
    tissue = dict(zip(d["sample_id"], d["tissue"]))
    for t in set(d["tissue"]) - set(rare):                  # every common tissue in every fold
        counts = [sum(tissue[s] == t for s in f["sample_id"]) for f in doc["folds"]]
        assert min(counts) >= 1, (t, counts)
    for f in doc["folds"]:
        assert f["n_train"] + f["n_test"] == len(d["sample_id"])


def test_numbers_match_hand_computation(cv):
    """The mean baseline's MSE and the noise floor of fold 0, recomputed from the raw arrays."""
    _, doc, d = cv
    pos = {s: i for i, s in enumerate(d["sample_id"])}
    val = np.array([pos[s] for s in doc["folds"][0]["sample_id"]])
    train = np.setdiff1d(np.arange(len(pos)), val)
    Y = d["Y"].astype(np.float64)
    mse_mean = ((Y[val] - Y[train].mean(0)) ** 2).mean()
    by = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    assert by[(0, "mean")]["mse"] == pytest.approx(mse_mean, rel=1e-6)
    assert by[(0, "mean")]["r2"] == pytest.approx(0.0, abs=1e-6)
    floor = ((Y[val] - d["truth"][val]) ** 2).mean()
    assert doc["folds"][0]["noise_floor"] == pytest.approx(floor, rel=1e-6)
    assert by[(0, "tissue_mean")]["mse_over_noise_floor"] == pytest.approx(
        by[(0, "tissue_mean")]["mse"] / floor, rel=1e-6)
    # the tissue mean must beat the overall mean on tissue-driven data
    assert doc["summary"]["tissue_mean"]["mse_mean"] < doc["summary"]["mean"]["mse_mean"]


def test_report_table_and_plots(cv):
    out, doc, _ = cv
    rows = list(csv.reader((out / "table1.csv").open()))
    assert rows[0] == ["fold"] + VARIANTS and len(rows) == K + 2
    by = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    for f in range(K):
        assert [float(x) for x in rows[1 + f][1:]] == pytest.approx(
            [by[(f, v)]["mse"] for v in VARIANTS], rel=1e-5)
    assert rows[-1][0] == "mean"
    for png in ("mse_per_fold.png", "pretraining/pretrain_elbo.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "## Table 1" in report and "Nadeau-Bengio" in report and "Kidney - Medulla" in report


def test_save_model_writes_a_loadable_model(cv):
    out, doc, _ = cv
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["variant"] == "vae_ffnn"                    # the only savable variant here
    assert (out / "model" / "encoder-vae" / "config.json").exists()


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path):
    from raviso.evaluate.cv import run_cv

    store, d = write_tiny_store(tmp_path / "store")
    with pytest.raises(RavisoError, match="needs a pretrained run: pass --pretrained"):
        run_cv(store, variants="vae_ffnn", out=tmp_path / "cv", progress=lambda s: None)
    with pytest.raises(RavisoError, match="unknown variant"):
        run_cv(store, variants="mean,nope", out=tmp_path / "cv", progress=lambda s: None)
    with pytest.raises(RavisoError, match="donors cannot make"):
        run_cv(store, variants="mean", folds=13, out=tmp_path / "cv", progress=lambda s: None)
    assert not (tmp_path / "cv").exists()


def test_report_reruns_from_results_alone(cv, tmp_path):
    """`raviso report CV` needs only results.json (no Ray): it rewrites the same table."""
    import shutil

    from typer.testing import CliRunner

    from cli import app

    out, _, _ = cv
    copy = tmp_path / "cv"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("tune", "model"))
    (copy / "report.md").unlink()
    (copy / "table1.csv").unlink()
    r = CliRunner().invoke(app, ["report", str(copy)])
    assert r.exit_code == 0, r.output
    assert (copy / "table1.csv").read_text() == (out / "table1.csv").read_text()
    assert (copy / "report.md").read_text().split("## Trials")[0] == \
        (out / "report.md").read_text().split("## Trials")[0]
    with pytest.raises(RavisoError, match="no results.json"):
        from raviso.evaluate.report.render import write_report
        write_report(tmp_path)


def test_a_trial_that_keeps_failing_is_reported_not_hidden(tmp_path, ray_session):
    """max_failures=0: the crashed trial is recorded as failed, the rest is still written, the
    report names it, and the command ends with an error."""
    from raviso.evaluate.cv import run_cv

    store, _ = write_tiny_store(tmp_path / "store")
    with pytest.raises(RavisoError, match=r"1 trial\(s\) failed .*fold 0 mean"), \
            failing_once(0, "mean"):
        run_cv(store, variants="mean,tissue_mean", folds=2, out=tmp_path / "cv",
               max_failures=0, progress=lambda s: None)
    doc = json.loads((tmp_path / "cv" / "results.json").read_text())
    bad = [t for t in doc["trials"] if t["status"] != "ok"]
    assert [(t["fold"], t["variant"]) for t in bad] == [(0, "mean")]
    assert "injected one-time failure" in bad[0]["error"]
    assert doc["failed_trials"] == ["fold 0 mean (1 attempts)"]
    assert doc["tests"] == []                    # no pair is complete on every fold
    assert "**Failed trials**" in (tmp_path / "cv" / "report.md").read_text()


def test_a_variant_that_needs_more_memory_gets_more_cpus(tmp_path, ray_session, monkeypatch):
    """Trials ask Ray for CPUs in proportion to their memory (`capacity.cpus_by_memory`): a variant
    estimated to need the whole node's budget takes all its CPUs (= its torch threads) and so never
    runs beside another trial, while the light variant of the same CV asks for one."""
    from raviso.evaluate.engine import capacity
    from raviso.evaluate.cv import run_cv

    real = capacity.trial_memory_bytes
    monkeypatch.setattr(capacity, "trial_memory_bytes", lambda v, *a: (
        10 * capacity.total_memory_bytes() if v == "tissue_mean" else real(v, *a)))
    store, _ = write_tiny_store(tmp_path / "store")
    run_cv(store, variants="mean,tissue_mean", folds=3, out=tmp_path / "cv",
           progress=lambda s: None)
    doc = json.loads((tmp_path / "cv" / "results.json").read_text())
    node = int(ray_session.cluster_resources()["CPU"])
    assert doc["tune"]["cpus_per_variant"] == {"mean": 1.0, "tissue_mean": float(node)}
    threads = {(t["fold"], t["variant"]): t["threads"] for t in doc["trials"]}
    assert threads == {(f, v): (node if v == "tissue_mean" else 1)
                       for f in range(3) for v in ("mean", "tissue_mean")}
    span = {(t["fold"], t["variant"]): (t["started_at"], t["finished_at"]) for t in doc["trials"]}
    for (f, v), (a, b) in span.items():
        if v == "tissue_mean":
            assert all(b2 <= a or b <= a2 for k, (a2, b2) in span.items() if k != (f, v))
