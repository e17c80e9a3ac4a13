"""A node dies under DDP pretraining: Ray Train restarts the workers from the last checkpoint
once a node is back, and the finished RUN is the one an uninterrupted run writes.

Two DDP workers on two different nodes (0.75 CPU each, one CPU per node: no node holds two),
the store read from ``s3://`` and the checkpoints written to ``s3://`` (moto on loopback). After
epoch 1's checkpoint is in the bucket, the node of one worker is SIGKILLed; a fresh node joins;
the run must finish with every epoch in metrics.jsonl exactly once and weights bit-identical to
a run that was never interrupted. ``shuffle="none"`` makes the data order a function of the seed
alone, so the comparison is exact: with the default file-order shuffle each epoch's order is
drawn fresh by every execution, and two clean runs already differ (docs/cluster.md).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from raviso.data.remote import copy_tree
from cvdata import write_archs4_store

pytestmark = [pytest.mark.multinode, pytest.mark.ray]

EPOCHS = 4
MODEL = {"hidden": (16,), "latent_dim": 2}
TRAIN = {"epochs": EPOCHS, "batch_size": 8, "lr": 3e-3, "workers": 2, "cpus_per_worker": 0.75,
         "threads": 1, "val_fraction": 0.1, "shuffle": "none", "keep_checkpoints": 2,
         "max_failures": 2}


def train_run(store, out, **run):
    from raviso.models.vae.model import VAEConfig
    from raviso.train.config import PretrainConfig, TrainConfig
    from raviso.train.pretrain import pretrain

    return pretrain(store, out, VAEConfig(**MODEL), TrainConfig(**TRAIN),
                    PretrainConfig(quiet=True, **run))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def test_pretrain_survives_a_node_loss_bit_identically(multinode, s3, tmp_path):
    from raviso.train.runspec import checkpoints, ray_run_name, read_spec

    local = write_archs4_store(tmp_path / "store", genes=16)
    remote = f"s3://raviso-test/stores/{tmp_path.name}"
    copy_tree(local, remote)
    storage = f"s3://raviso-test/checkpoints/{tmp_path.name}"

    clean = train_run(local, tmp_path / "clean")

    run, outcome = tmp_path / "run", {}

    def train():
        try:
            outcome["run"] = train_run(remote, run, storage=storage)
        except BaseException as e:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = e

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not (run / "run.json").is_file() or not any(
            c.endswith("checkpoint_epoch-00001")
            for c in checkpoints(storage, ray_run_name(read_spec(run)))):
        assert thread.is_alive(), f"training ended before its first checkpoint: {outcome}"
        assert time.monotonic() < deadline, "no first checkpoint within 120 s"
        time.sleep(0.05)
    on = multinode.actors_on("RayTrainWorker")
    victim = next(n for n in multinode.workers() if n.node_id in on)
    assert len(on) == 2, f"the two DDP workers share a node: {on}"
    multinode.kill(victim)
    name = ray_run_name(read_spec(run))
    at_kill = [c.rsplit("/", 1)[-1] for c in checkpoints(storage, name)]
    multinode.add_worker()                               # capacity comes back
    thread.join(timeout=180)
    assert not thread.is_alive(), "training did not finish within 180 s of the node loss"
    assert "error" not in outcome, outcome.get("error")

    assert f"checkpoint_epoch-{EPOCHS:05d}" not in at_kill      # a restart really was needed
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))  # none lost, none twice
    assert json.loads((run / "config.json").read_text())["epochs_done"] == EPOCHS
    ref = read_jsonl(clean / "metrics.jsonl")
    for a, b in zip(records, ref):
        assert a["train_loss"] == b["train_loss"] and a["val_elbo"] == b["val_elbo"], a["epoch"]
    mine, theirs = weights(run), weights(clean)
    assert set(mine) == set(theirs)
    assert all(np.array_equal(mine[k].numpy(), theirs[k].numpy()) for k in mine)
