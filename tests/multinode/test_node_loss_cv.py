"""A node dies under `raviso cv`, and then the driver dies: nothing is lost, nothing changes.

Trials run on two worker nodes (one CPU each, the head has none). Every trial is seeded and
deterministic, so a recovered CV must report a clean run's MSEs to the last digit.

- Node loss: four long trials (gene_ffnn, one per fold) keep both nodes busy; once the first has
  finished, one node is SIGKILLed while both run their second trial. Tune retries the lost trial
  on the surviving node (`--max-failures`); results.json marks it retried. Trial storage is on
  ``s3://`` (moto on loopback), as a multi-node cluster needs.
- Driver loss: `raviso cv --address` in a subprocess is SIGKILLed after some trials finished;
  a resumed cv (`resume=True`, as `--resume`) reruns only the trials that did not finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cvdata import write_tiny_store

pytestmark = [pytest.mark.multinode, pytest.mark.ray]

RAVISO = str(Path(sys.executable).parent / "raviso")
VARIANTS, FOLDS, EPOCHS = "gene_ffnn,mean", 4, 2500   # a gene_ffnn trial: ~1.5 s of one core
OPTIONS = dict(variants=VARIANTS, folds=FOLDS, epochs=EPOCHS, seed=0, report=False)


def mses(cv: Path) -> dict:
    doc = json.loads((cv / "results.json").read_text())
    return {(t["fold"], t["variant"]): t["mse"] for t in doc["trials"]}


def trials(cv: Path) -> list[dict]:
    return json.loads((cv / "results.json").read_text())["trials"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """(store, {(fold, variant): MSE}) of every trial computed alone, in this process, as a cv
    trial computes it (`run_trial`, one torch thread, the cv's folds and options): the numbers
    an uninterrupted run reports, without a third cv on the cluster."""
    import torch

    from raviso.data import make_folds
    from raviso.evaluate.cv import run_trial
    from raviso.evaluate.engine.inputs import load_labelled

    root = tmp_path_factory.mktemp("cv")
    store, _ = write_tiny_store(root / "store")
    _, data = load_labelled(store, {})
    folds = make_folds(data.tissue, data.donor, k=FOLDS, seed=0)
    threads, options = torch.get_num_threads(), {"epochs": EPOCHS, "seed": 0}
    try:
        return store, {(f, v): run_trial(data, folds.fold, f, v, options)["mse"]
                       for f in range(FOLDS) for v in VARIANTS.split(",")}
    finally:
        torch.set_num_threads(threads)


def test_lost_node_trials_are_retried_elsewhere_with_identical_results(multinode, clean,
                                                                      tmp_path):
    from raviso.evaluate.cv import run_cv

    store, reference = clean
    multinode.ensure_workers(2)
    said, outcome = [], {}

    def cv():
        try:
            outcome["cv"] = run_cv(store, out=tmp_path / "cv", progress=said.append,
                                   storage=f"s3://raviso-test/tune/{tmp_path.name}",
                                   max_failures=2, **OPTIONS)
        except BaseException as e:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = e

    thread = threading.Thread(target=cv, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not any(line.startswith("trial 1/") for line in said):
        assert thread.is_alive(), f"cv ended before its first trial: {outcome}"
        assert time.monotonic() < deadline, "no trial finished within 120 s"
        time.sleep(0.02)
    time.sleep(0.3)              # both nodes are now inside their second gene_ffnn trial
    finished_at_kill = sum(line.startswith("trial ") and "MSE" in line for line in said)
    multinode.kill(multinode.workers()[0])
    thread.join(timeout=120)
    assert not thread.is_alive(), "cv did not finish within 120 s of the node loss"
    assert "error" not in outcome, outcome.get("error")

    assert finished_at_kill < 2 * FOLDS
    retried = [t for t in trials(tmp_path / "cv") if t["retried"]]
    assert retried and all(t["variant"] == "gene_ffnn" and t["attempts"] == 2 for t in retried)
    assert any("crashed: retrying it" in line for line in said)
    assert mses(tmp_path / "cv") == reference              # to the last digit


def test_cv_resume_after_the_driver_is_killed_reruns_only_unfinished_trials(multinode, clean,
                                                                           tmp_path):
    from raviso.evaluate.cv import run_cv
    from raviso.evaluate.engine.resume import finished_trials, trial_store

    store, reference = clean
    multinode.ensure_workers(2)
    out = tmp_path / "cv"
    cmd = [RAVISO, "cv", str(store), "--out", str(out), "--address", multinode.address,
           "--variants", VARIANTS, "--folds", str(FOLDS), "--epochs", str(EPOCHS),
           "--seed", "0", "--no-report"]
    root = trial_store(out, None)
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not finished_trials(root):
            assert driver.poll() is None, f"cv ended before a trial finished: {driver.stderr.read()}"
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    done = set(finished_trials(root))
    assert 0 < len(done) < 2 * FOLDS and not out.exists()

    # the resume runs in this process (already connected to the cluster): the CLI's --resume
    # flag is the same CvConfig field (tests/train/test_run_identity.py covers the CLI path)
    run_cv(store, out=out, progress=lambda s: None, resume=True, **OPTIONS)
    rows = trials(out)
    assert {(t["fold"], t["variant"]) for t in rows if t.get("reused")} == done
    assert len(rows) == 2 * FOLDS and all(t["status"] == "ok" for t in rows)
    assert mses(out) == reference
    assert not Path(root).exists()            # CV written whole: the trial store is dropped
