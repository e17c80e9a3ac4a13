"""Generalisation schemes through `raviso cv` (held-out tissues, --train-fraction) and the
pretraining study (`raviso study`) on a tiny store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cvdata import write_tiny_run, write_tiny_store

from raviso.core.config import OptionError
from raviso.core.errors import RavisoError

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    store, d = write_tiny_store(root / "store", n_donors=16)
    return root, store, d


def _quiet(_):
    pass


def test_cv_heldout_tissues(tiny, ray_session):
    from raviso.evaluate.cv import run_cv

    root, store, d = tiny
    out = run_cv(store, variants="share_net,pca_ridge", folds=3, epochs=2,
                 fold_scheme="tissue", out=root / "cv-tissue", progress=_quiet, report=False)
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["fold_scheme"] == "tissue"
    assert doc["grouping"]["scheme"] == "tissue" and doc["grouping"]["grouped_by"] == "tissue"
    assert doc["config"]["variant_options"]["tissue"] is False      # the tissue-free path
    tissue = np.asarray(d["tissue"])
    for f, held in zip(doc["folds"], doc["grouping"]["heldout_tissues"]):
        assert set(f["tissues"]) == set(held)
        train = np.flatnonzero(~np.isin(np.asarray(d["sample_id"]), f["sample_id"]))
        assert not set(tissue[train]) & set(held)                   # never in training rows
        assert f["n_train"] == len(train)
    assert {t["status"] for t in doc["trials"]} == {"ok"}


def test_cv_train_fraction(tiny, ray_session):
    from raviso.evaluate.cv import run_cv

    root, store, d = tiny
    runs = {}
    for frac in (0.25, 1.0):
        out = run_cv(store, variants="pca_ridge,recommended", folds=4, epochs=2,
                     train_fraction=frac, out=root / f"cv-{frac}", progress=_quiet, report=False)
        runs[frac] = json.loads((out / "results.json").read_text())
    small, full = runs[0.25], runs[1.0]
    assert small["config"]["train_fraction"] == 0.25 and full["config"]["train_fraction"] == 1.0
    for fs, ff in zip(small["folds"], full["folds"]):
        assert fs["sample_id"] == ff["sample_id"]                   # same validation rows
        assert fs["n_train"] < ff["n_train"]
        # 12 training donors x 4 samples: round(0.25 * 12) = 3 donors
        assert fs["n_train"] == 3 * 4
        assert {t["n_train"] for t in small["trials"] if t["fold"] == fs["fold"]} == \
            {fs["n_train"]}
    with pytest.raises(OptionError, match="train_fraction"):
        run_cv(store, variants="mean", train_fraction=0, out=root / "bad", progress=_quiet)


def test_study_compact(tiny, ray_session):
    from raviso.evaluate.study.run import run_study, study_variants, StudyConfig

    root, store, d = tiny
    run = write_tiny_run(root / "vae", d["genes"])
    cols = study_variants(StudyConfig(pretrained=run, compact=True))
    assert cols[:2] == ["share_net", "share_net[context=vae]"] and "recommended" in cols
    out = run_study(store, pretrained=run, compact=True, folds=3, repeats_small=2, epochs=2,
                    out=root / "study", progress=_quiet)
    doc = json.loads((out / "study.json").read_text())
    assert set(doc["points"]) == {"f0.05", "f1", "tissue"}
    small, full = doc["points"]["f0.05"], doc["points"]["f1"]
    assert small["repeats"] == 2 and small["folds"] == 6 and full["folds"] == 3
    assert small["n_train"] < full["n_train"]
    for row in doc["points"].values():
        (vae,) = [c for c in row["contexts"] if c["a"] == "share_net[context=vae]"]
        assert vae["b"] == "share_net" and len(vae["ci95"]) == 2
        assert vae["diff"] == pytest.approx(vae["mean_a"] - vae["mean_b"])
        assert [c["a"] for c in row["vs_baseline"]] == ["recommended", "share_net"]
    assert "pretrained VAE context" in doc["verdict"]
    md = (out / "study.md").read_text()
    assert doc["verdict"] in md and "| f0.05 |" in md
    assert (out / "study.png").stat().st_size > 1000
    with pytest.raises(RavisoError, match="needs a context model"):
        run_study(store, models="", out=root / "bad", progress=_quiet)
