"""Stores, checkpoints and trial results on a real S3 API (moto on loopback), credentials from the
environment only. An upload cut short leaves objects missing (each object appears whole or not
at all), so a half-uploaded checkpoint is a directory without some of its files: a resume must
skip it, never load it. (Pretrain and cv writing their checkpoints to ``s3://`` under node loss:
test_node_loss_pretrain.py, test_node_loss_cv.py.)
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from cvdata import write_tiny_store

from raviso.data import Store
from raviso.data.remote import copy_tree

pytestmark = [pytest.mark.multinode]


def put(s3, path: str, data: bytes) -> None:
    with s3.open_output_stream(path) as f:
        f.write(data)


def test_a_store_reads_back_from_s3_identically(s3, tmp_path):
    local, _ = write_tiny_store(tmp_path / "store")
    uri = f"s3://raviso-test/stores/{tmp_path.name}"
    copy_tree(local, uri)
    remote, here = Store(uri), Store(local)
    assert remote.genes == here.genes
    for name in ("gtex_gene", "gtex_isoform"):
        assert np.array_equal(remote.numpy(name), here.numpy(name))


def test_a_pretrain_checkpoint_cut_short_is_skipped_on_resume(s3, tmp_path):
    from raviso.train import runspec

    storage = f"s3://raviso-test/checkpoints/{tmp_path.name}"
    spec = {"run_id": "abc123", "ray_run_name": "run-abc123"}
    model = {"n_genes": 4, "hidden": [8], "latent_dim": 2}
    base = f"raviso-test/checkpoints/{tmp_path.name}/run-abc123"
    for name in ("model.pt", "optimizer.pt", "metrics.jsonl"):
        put(s3, f"{base}/checkpoint_epoch-00001/{name}", b"whole")
    put(s3, f"{base}/checkpoint_epoch-00001/state.json",
        json.dumps({"epoch": 1, "model": model, "run_id": "abc123"}).encode())
    put(s3, f"{base}/checkpoint_epoch-00002/model.pt", b"whole")    # the rest never arrived

    found = runspec.checkpoints(storage, "run-abc123")
    assert [p.rsplit("/", 1)[-1] for p in found] == ["checkpoint_epoch-00001",
                                                     "checkpoint_epoch-00002"]
    assert runspec.newest_state(storage, found)["epoch"] == 1
    runspec.check_resumable(tmp_path, spec, storage, model)          # resumes, does not refuse
    with pytest.raises(Exception, match="another model"):
        runspec.check_resumable(tmp_path, spec, storage, {**model, "latent_dim": 3})


def test_a_cv_trial_cut_short_is_rerun_not_reused(s3, tmp_path):
    from raviso.evaluate.engine.resume import ERRORS_FILE, TRIAL_FILE, finished_trials

    root = f"s3://raviso-test/tune/{tmp_path.name}"
    base = f"raviso-test/tune/{tmp_path.name}/attempt-1"
    errors = io.BytesIO()
    np.save(errors, np.arange(3.0))
    for trial, (fold, variant), files in (("t0", (0, "mean"), (TRIAL_FILE, ERRORS_FILE)),
                                          ("t1", (1, "mean"), (TRIAL_FILE,))):
        doc = {"job": [fold, variant], "metrics": {"mse": 0.5 + fold}}
        for name in files:
            put(s3, f"{base}/{trial}/checkpoint_000000/{name}",
                json.dumps(doc).encode() if name == TRIAL_FILE else errors.getvalue())
    done = finished_trials(root)
    assert set(done) == {(0, "mean")}
    metrics, errs = done[(0, "mean")]
    assert metrics["mse"] == 0.5 and np.array_equal(errs, np.arange(3.0))
