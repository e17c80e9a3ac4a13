"""Faults lose nothing: real processes are killed, nothing in Ray is mocked.

- A Ray Train worker killed (SIGKILL) mid-run: the run restarts its workers from the last
  checkpoint and finishes every epoch; metrics.jsonl has each epoch exactly once.
- `raviso convert` killed part-way: no store appears, the half-written directory never opens as a
  store, and a rerun completes.
- A Tune trial that raises is retried and the report marks it: tests/test_cv.py
  ::test_retried_trial_is_marked covers it (not duplicated here).
- The Ray head unreachable: a one-line error within seconds, nothing written
  (tests/test_bad_input.py::test_unreachable_ray_head_is_a_prompt_one_line_error).
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

import numpy as np
import pytest

from raviso.data import Store
from raviso.core.errors import RavisoError
from cvdata import write_archs4_store

RAVISO = str(Path(sys.executable).parent / "raviso")
EPOCHS = 4


def train_worker_pids(ray) -> set[int]:
    """Pids of this session's live Ray Train workers, from the GCS actor table (the public state
    API needs the dashboard, which the shared test session does not start)."""
    from ray._private.state import actors

    return {a["Pid"] for a in actors().values()
            if a["ActorClassName"] == "RayTrainWorker" and a["State"] == "ALIVE" and a["Pid"]}


@pytest.mark.ray
def test_killed_train_worker_resumes_from_checkpoint_without_losing_epochs(ray_session,
                                                                          tmp_path):
    from raviso.train.pretrain import pretrain
    from raviso.models.vae.config import VAEConfig
    from raviso.train.config import PretrainConfig, TrainConfig

    store = write_archs4_store(tmp_path / "store")
    run = tmp_path / "run"
    ckpts = run / "checkpoints"             # <ray run name>/checkpoint_epoch-*: one run here
    outcome = {}

    def train():
        try:
            outcome["run"] = pretrain(
                store, run, VAEConfig(hidden=(16,), latent_dim=2),
                TrainConfig(epochs=EPOCHS, batch_size=8, workers=2, cpus_per_worker=0.5,
                            val_fraction=0.1, max_failures=1, keep_checkpoints=2),
                PretrainConfig(quiet=True))
        except BaseException as e:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = e

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    # wait for the first checkpoint, then kill one worker while epoch 2 is under way
    deadline = time.monotonic() + 240
    while not any(ckpts.glob("*/checkpoint_epoch-00001")):
        assert thread.is_alive(), f"training ended before its first checkpoint: {outcome}"
        assert time.monotonic() < deadline, "no first checkpoint within 240 s"
        time.sleep(0.05)
    pids = train_worker_pids(ray_session)
    assert len(pids) == 2, pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    killed_during = sorted(p.name for p in ckpts.glob("*/checkpoint_epoch-*"))
    thread.join(timeout=300)
    assert not thread.is_alive(), "training did not finish within 300 s of the kill"
    assert "error" not in outcome, outcome.get("error")

    # the kill happened before the last epoch, so a restart really was needed
    assert f"checkpoint_epoch-{EPOCHS:05d}" not in killed_during
    assert victim not in train_worker_pids(ray_session)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))   # none lost, none twice
    assert all(np.isfinite(r["train_loss"]) for r in records)
    config = json.loads((run / "config.json").read_text())
    assert config["epochs_done"] == EPOCHS


def _convert_temp_dirs(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.tmp-*"))


def test_killed_convert_leaves_nothing_that_opens_and_a_rerun_completes(tmp_path):
    src = tmp_path / "syn"
    r = subprocess.run([RAVISO, "synth", "--format", "tsv", str(src)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    store = tmp_path / "store"
    caught = None
    for attempt in range(5):          # the write takes < 1 s: poll tightly, retry if missed
        proc = subprocess.Popen([RAVISO, "convert", str(src), str(store)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            tmps = _convert_temp_dirs(tmp_path, "store")
            # part-way: the first dataset has a Parquet part, the manifest is not there yet
            if tmps and any(tmps[-1].glob("*/part-*.parquet")):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                caught = tmps[-1]
                break
            time.sleep(0.002)
        if caught is not None:
            break
        assert proc.returncode == 0
        subprocess.run(["rm", "-rf", str(store)], check=True)
    assert caught is not None, "convert always finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert not store.exists()
    assert caught.is_dir() and not (caught / "manifest.json").exists()
    with pytest.raises(RavisoError, match="no such store"):
        Store(store)
    with pytest.raises(RavisoError, match="not a raviso store"):
        Store(caught)

    r = subprocess.run([RAVISO, "convert", str(src), str(store)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    st = Store(store)
    preset = json.loads((src / "synth.json").read_text())["preset"]
    assert st.numpy("archs4").shape == (preset["n_archs4"], preset["n_genes"])
    assert st.numpy("gtex_isoform").shape == (preset["n_gtex"], preset["n_isoforms"])
