"""Pretraining on a real local Ray (Ray Train DDP over Ray Data), resume, encode, runs and plots.

The Ray tests share ONE trained run (module fixture): 2 workers x 2 epochs, then a resume to a
third epoch; every assertion about checkpoints, metrics, the final model and encoding reads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from raviso.data import Store
from raviso.core.errors import RavisoError
from raviso.train.datasets import is_validation
from raviso.train.config import TrainConfig
from raviso.train.config import PretrainConfig
from raviso.models.vae.config import VAEConfig
from raviso.core.config import OptionError
from raviso.train.runspec import ray_run_dir
from raviso.data.store import write_store

N_ARCHS4, N_GTEX, N_GENES = 400, 60, 40
MODEL = {"hidden": (32, 16), "latent_dim": 3}
TRAIN = {"epochs": 2, "batch_size": 32, "lr": 3e-3, "workers": 2, "cpus_per_worker": 0.5,
         "val_fraction": 0.2, "keep_checkpoints": 3}


def structured_store(path, genes=None, seed=0):
    """Rank-3 structure + noise on a log2(TPM+1)-like scale: a 3-d latent can learn it fast."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(3, N_GENES)) * 1.5

    def X(n):
        return np.clip(rng.normal(size=(n, 3)) @ W + 3 + 0.3 * rng.normal(size=(n, N_GENES)),
                       0, None).astype(np.float32)

    genes = genes or [f"G{i}" for i in range(N_GENES)]
    return write_store(path, genes,
                       archs4={"X": X(N_ARCHS4), "sample_id": [f"GSM{i}" for i in range(N_ARCHS4)]},
                       gtex_gene={"X": X(N_GTEX), "tissue": ["Lung"] * N_GTEX,
                                  "sample_id": [f"GTEX-{i % 7}-{i}" for i in range(N_GTEX)]})


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def steps_in(optimizer_state: dict) -> int:
    steps = {int(s["step"]) for s in optimizer_state["state"].values()}
    assert len(steps) == 1
    return steps.pop()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ray_session):
    """(store, run dir, metrics after 2 epochs, checkpoint dir of epoch 2 copied aside)."""
    from raviso.train.pretrain import pretrain

    root = tmp_path_factory.mktemp("pretrain")
    store = structured_store(root / "store")
    run = root / "run"
    pretrain(store, run, VAEConfig(**MODEL), TrainConfig(**TRAIN), PretrainConfig(quiet=True))
    first = read_jsonl(run / "metrics.jsonl")
    ckpt2 = root / "ckpt2"
    shutil.copytree(Path(ray_run_dir(run)) / "checkpoint_epoch-00002", ckpt2)
    # continue the same run to a third epoch
    pretrain(store, run, train=TrainConfig(epochs=3), run=PretrainConfig(resume=True, quiet=True))
    return store, run, first, ckpt2


@pytest.mark.ray
def test_ddp_training_improves_validation_elbo(trained):
    store, run, first, _ = trained
    assert [r["epoch"] for r in first] == [1, 2]
    train_rows = int((~is_validation([f"GSM{i}" for i in range(N_ARCHS4)], 0.2)).sum())
    val_rows = N_ARCHS4 - train_rows
    for r in first:
        # every training row every epoch (equal DDP shards drop at most workers-1 rows)
        assert train_rows - 1 <= r["train_samples"] <= train_rows
        assert r["val_samples"] == val_rows and r["gtex_samples"] == N_GTEX
        assert r["val_elbo"] == pytest.approx(-(r["val_recon"] + r["val_kl"]))
        assert r["samples_per_s"] > 0
    assert first[1]["val_elbo"] > first[0]["val_elbo"]
    assert first[1]["gtex_elbo"] > first[0]["gtex_elbo"]


@pytest.mark.ray
def test_run_directory_is_complete_and_loadable(trained):
    from safetensors.torch import load_file

    from raviso.train.runs import load_run

    store, run, _, _ = trained
    for name in ("config.json", "genes.txt", "model.safetensors", "metrics.jsonl", "run.json",
                 "pretrain_elbo.png", "pretrain_recon.png", "pretrain_kl.png"):
        assert (run / name).is_file(), name
    assert (run / "pretrain_elbo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "config.json").read_text())
    assert config["epochs_done"] == 3 and config["model"]["hidden"] == [32, 16]
    assert (run / "genes.txt").read_text().splitlines() == Store(store).genes
    loaded = load_run(run)
    weights = load_file(str(run / "model.safetensors"))
    assert set(weights) == set(loaded.model.state_dict())
    assert "logvar.weight" in weights and weights["mu.weight"].shape == (3, 16)
    # the checkpoint's weights are plain tensors: torch.load(weights_only=True) works
    last = Path(ray_run_dir(run)) / "checkpoint_epoch-00003"
    state = torch.load(last / "model.pt", weights_only=True)
    assert all(torch.equal(state[k], weights[k]) for k in weights)


@pytest.mark.ray
def test_resume_continues_epoch_count_and_optimizer_state(trained):
    store, run, first, ckpt2 = trained
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in metrics] == [1, 2, 3]            # nothing lost, nothing repeated
    assert metrics[:2] == first                                     # history carried over intact
    ckpt3 = Path(ray_run_dir(run)) / "checkpoint_epoch-00003"
    assert json.loads((ckpt3 / "state.json").read_text())["epoch"] == 3
    opt2 = torch.load(ckpt2 / "optimizer.pt", weights_only=True)
    opt3 = torch.load(ckpt3 / "optimizer.pt", weights_only=True)
    per_epoch = steps_in(opt2) // 2
    rows_per_worker = first[0]["train_samples"] // 2
    assert per_epoch == -(-rows_per_worker // TRAIN["batch_size"])
    assert steps_in(opt3) == 3 * per_epoch        # Adam's step count continued, not restarted
    # Adam's moments were loaded too: epoch 3's first moment is not a fresh one-epoch estimate
    assert set(opt3["state"]) == set(opt2["state"])


@pytest.mark.ray
def test_encode_rows_and_order_match_the_store(trained, tmp_path):
    from raviso.train.encode import encode, read_latent
    from raviso.train.runs import load_run

    store, run, _, _ = trained
    out = encode(run, store, which="gtex", out=tmp_path / "latent")   # archs4: the same code path
    s = Store(store)
    for which, name in (("gtex", "gtex_gene"),):
        ids, Z = read_latent(out[which])
        assert list(ids) == list(s.meta(name).sample_id)
        expected = load_run(run).encode(s.numpy(name))
        np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-5)
        assert Z.shape == (s.n_rows(name), 3)
        assert json.loads((out[which] / "latent.json").read_text())["rows"] == s.n_rows(name)


@pytest.mark.ray
def test_gene_order_mismatch_is_refused(trained, tmp_path):
    from raviso.train.encode import encode

    _, run, _, _ = trained
    genes = [f"G{i}" for i in range(N_GENES)]
    swapped = structured_store(tmp_path / "swapped", genes=genes[1:2] + genes[:1] + genes[2:])
    with pytest.raises(RavisoError, match="gene order differs.*column 0 is G1, the model expects G0"):
        encode(run, swapped, out=tmp_path / "x")
    other = structured_store(tmp_path / "other", genes=[f"H{i}" for i in range(N_GENES)])
    with pytest.raises(RavisoError, match="40 of 40 model genes missing"):
        encode(run, other, out=tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# -- no Ray --------------------------------------------------------------------------------------
def test_validation_split_is_deterministic_by_sample_id():
    ids = [f"GSM{i}" for i in range(5000)]
    a = is_validation(ids, 0.1)
    assert np.array_equal(a, is_validation(list(reversed(ids)), 0.1)[::-1])   # per id, not position
    assert 0.08 < a.mean() < 0.12
    assert not is_validation(ids, 0.0).any()


def test_unfinished_run_is_refused(tmp_path):
    from raviso.train.runs import load_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(RavisoError, match="not a finished pretraining run.*--resume"):
        load_run(run)
    with pytest.raises(RavisoError, match="no such run"):
        load_run(tmp_path / "nope")


def test_bad_options_fail_before_anything_is_written(tmp_path):
    from raviso.train.pretrain import pretrain

    store = structured_store(tmp_path / "store")
    with pytest.raises(OptionError, match="batch_size must be >= 1") as e:
        TrainConfig(batch_size=0)
    assert e.value.option == "batch_size"
    with pytest.raises(RavisoError, match="shuffle"):
        pretrain(store, tmp_path / "run", train=TrainConfig(shuffle="sometimes"))
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()
    with pytest.raises(RavisoError, match="already exists"):
        pretrain(store, tmp_path / "run")
    with pytest.raises(RavisoError, match="nothing to resume"):
        pretrain(store, tmp_path / "run", run=PretrainConfig(resume=True))


def test_plots_from_metrics(tmp_path):
    from raviso.core.plots import plot_pretraining

    recs = [{"epoch": e, "train_elbo": -10.0 / e, "train_recon": 9.0 / e, "train_kl": 1.0,
             "val_elbo": -11.0 / e, "val_recon": 10.0 / e, "val_kl": 1.0} for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    paths = plot_pretraining(tmp_path, tmp_path / "plots")
    assert [p.name for p in paths] == ["pretrain_elbo.png", "pretrain_recon.png", "pretrain_kl.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
