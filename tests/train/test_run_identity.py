"""On the shared Ray: a RUN is its own Ray Train run (a shared --storage
or --overwrite never continues another run), resume finds the recorded --storage and never
destroys metrics history, and `raviso cv --resume` reuses the trials a killed CV finished.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cvdata import failing_once, write_tiny_store

from raviso.core.errors import RavisoError
from raviso.data.store import write_store

pytestmark = pytest.mark.ray

from raviso.models.vae.config import VAEConfig  # noqa: E402
from raviso.train.config import PretrainConfig, TrainConfig  # noqa: E402

MODEL = {"hidden": (16,), "latent_dim": 2}
RESUME = PretrainConfig(resume=True, quiet=True)
TRAIN = {"epochs": 1, "batch_size": 32, "lr": 3e-3, "workers": 1, "cpus_per_worker": 0.5,
         "val_fraction": 0.2, "eval_gtex": False}


def tiny_archs4(path, n=240, genes=12, seed=0):
    rng = np.random.default_rng(seed)
    X = np.clip(rng.normal(size=(n, 2)) @ rng.normal(size=(2, genes)) + 3, 0, None)
    return write_store(path, [f"G{i}" for i in range(genes)],
                       archs4={"X": X.astype(np.float32), "sample_id": [f"GSM{i}" for i in range(n)]})


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shared(tmp_path_factory, ray_session):
    """Two RUNs pretrained one after the other into ONE --storage (docs/cluster.md's layout)."""
    from raviso.train.pretrain import pretrain

    root = tmp_path_factory.mktemp("identity")
    store = tiny_archs4(root / "store")
    storage = root / "checkpoints"
    a = pretrain(store, root / "a", VAEConfig(**MODEL), TrainConfig(**TRAIN),
                 PretrainConfig(storage=str(storage), quiet=True))
    b = pretrain(store, root / "b", VAEConfig(**{**MODEL, "latent_dim": 3}),
                 TrainConfig(**{**TRAIN, "epochs": 2, "seed": 1}),
                 PretrainConfig(storage=str(storage), quiet=True))
    return root, store, storage, a, b


def test_a_second_run_in_a_shared_storage_starts_fresh(shared):
    """Two RUNs in one --storage are two Ray Train runs: b never restores a's checkpoint (whose
    latent size 2 would not even fit b's model)."""
    _, _, storage, a, b = shared
    assert [r["epoch"] for r in metrics(b)] == [1, 2]
    assert metrics(b)[0]["train_elbo"] != metrics(a)[0]["train_elbo"]
    names = {json.loads((r / "run.json").read_text())["ray_run_name"] for r in (a, b)}
    assert len(names) == 2 and all((storage / n).is_dir() for n in names)


def test_resume_finds_the_recorded_storage_and_keeps_history(shared):
    """run.json records --storage, so `--resume` without it continues from the recorded storage
    (not at epoch 0 in RUN/checkpoints) and keeps metrics.jsonl's history."""
    from raviso.train.pretrain import pretrain

    _, store, _, a, _ = shared
    first = metrics(a)
    assert json.loads((a / "run.json").read_text())["storage"]
    pretrain(store, a, train=TrainConfig(epochs=2), run=RESUME)
    after = metrics(a)
    assert [r["epoch"] for r in after] == [1, 2]
    assert after[0] == first[0]


def test_resume_without_a_checkpoint_refuses_to_erase_history(shared, tmp_path):
    import shutil

    from raviso.train.pretrain import pretrain

    root, store, _, a, _ = shared
    c = tmp_path / "c"
    shutil.copytree(a, c)
    spec = json.loads((c / "run.json").read_text())
    spec["storage"] = str(tmp_path / "empty-storage")           # the checkpoints are gone
    (c / "run.json").write_text(json.dumps(spec))
    before = (c / "metrics.jsonl").read_text()
    with pytest.raises(RavisoError, match="no checkpoint"):
        pretrain(store, c, train=TrainConfig(epochs=3), run=RESUME)
    assert (c / "metrics.jsonl").read_text() == before


def test_overwrite_keeps_the_old_run_until_the_new_one_is_finished(shared):
    """--overwrite trains the new RUN beside the old one (a fresh Ray run, never the old one's
    checkpoints) and swaps it in at the end; the old RUN stays whole while it trains."""
    import threading
    import time

    from raviso.train.pretrain import pretrain

    root, store, storage, a, b = shared
    before = (b / "config.json").read_bytes()
    old = json.loads((b / "run.json").read_text())["ray_run_name"]
    known = {p.name for p in storage.iterdir()}
    outcome, intact = {}, []

    def train():
        try:
            pretrain(store, b, VAEConfig(**MODEL), TrainConfig(**{**TRAIN, "epochs": 2, "seed": 2}),
                     PretrainConfig(overwrite=True, storage=str(storage), quiet=True))
        except BaseException as e:  # noqa: BLE001 - asserted below
            outcome["error"] = e

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 240
    while thread.is_alive() and time.monotonic() < deadline:
        new = [p for p in storage.iterdir() if p.name not in known]
        if new and any(new[0].glob("checkpoint_epoch-00001")):
            intact.append((b / "config.json").is_file()
                          and (b / "config.json").read_bytes() == before)
            break
        time.sleep(0.05)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert intact == [True]                       # mid-training, the old RUN was still whole
    assert json.loads((b / "run.json").read_text())["ray_run_name"] != old
    assert [r["epoch"] for r in metrics(b)] == [1, 2]
    assert not [p for p in b.parent.iterdir() if p.name.startswith(".b.tmp-")]


def test_resume_refuses_another_runs_checkpoints(shared, tmp_path):
    import shutil

    from raviso.train.pretrain import pretrain

    root, store, storage, a, b = shared
    c = tmp_path / "c"
    shutil.copytree(a, c)
    spec = json.loads((c / "run.json").read_text())
    spec["run_id"] = "0123456789ab"                       # c claims to be another run than a
    spec["storage"] = str(storage)
    (c / "run.json").write_text(json.dumps(spec))
    with pytest.raises(RavisoError, match="another run"):
        pretrain(store, c, train=TrainConfig(epochs=3), run=RESUME)


# -- raviso cv --resume ---------------------------------------------------------------------------
def test_cv_resume_reuses_finished_trials(tmp_path, ray_session):
    """A CV that did not finish (one trial failed for good here; a kill is the same for the
    trials already persisted) keeps its Tune storage outside its temp dir; `--resume` runs only
    the missing trial and marks the others reused."""
    from raviso.evaluate.cv import run_cv

    store, _ = write_tiny_store(tmp_path / "store")
    out = tmp_path / "cv"
    with pytest.raises(RavisoError, match="failed"), failing_once(0, "mean"):
        run_cv(store, variants="mean,tissue_mean", folds=2, out=out, max_failures=0,
               progress=lambda s: None)
    first = json.loads((out / "results.json").read_text())
    said = []
    run_cv(store, variants="mean,tissue_mean", folds=2, out=out, resume=True, progress=said.append)
    doc = json.loads((out / "results.json").read_text())
    assert all(t["status"] == "ok" for t in doc["trials"])
    reused = {(t["fold"], t["variant"]) for t in doc["trials"] if t.get("reused")}
    assert reused == {(0, "tissue_mean"), (1, "mean"), (1, "tissue_mean")}
    for t in doc["trials"]:
        if (t["fold"], t["variant"]) in reused:
            old = next(o for o in first["trials"] if (o["fold"], o["variant"]) == (t["fold"], t["variant"]))
            assert t["mse"] == old["mse"] and t["pid"] == old["pid"]
    assert any("reusing 3 finished trial" in s for s in said)


def test_cv_resume_refuses_another_configuration(tmp_path, ray_session):
    from raviso.evaluate.cv import run_cv

    store, _ = write_tiny_store(tmp_path / "store")
    out = tmp_path / "cv"
    with pytest.raises(RavisoError), failing_once(0, "mean"):
        run_cv(store, variants="mean", folds=2, out=out, max_failures=0,
               progress=lambda s: None)
    with pytest.raises(RavisoError, match="different configuration"):
        run_cv(store, variants="mean", folds=2, seed=5, out=out, resume=True,
               progress=lambda s: None)
