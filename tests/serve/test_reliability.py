"""Tissue at prediction time (no Ray): names match the MODEL's ignoring case, spaces and
punctuation; a sample with no or an unknown tissue is named in one warning and predicted by the
MODEL's tissue-free regressor (the variant fitted with tissue=False), or refused on request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cvdata import write_tiny_store

from raviso.core.errors import RavisoError

OPTIONS = {"epochs": 3, "seed": 0}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.models.saved import fit_model

    root = tmp_path_factory.mktemp("tissues")
    store, d = write_tiny_store(root / "store")
    st, data = load_labelled(store, {})
    fit_model(data, "share_net", root / "model", options=OPTIONS, store_uri=st.uri)
    return root, d


def predict(root, d, tissue, tmp_path, **kw):
    import anndata as ad

    from raviso.serve.predict import predict_file

    obs = pd.DataFrame(index=d["sample_id"])
    if tissue is not None:
        obs["tissue"] = tissue
    src = tmp_path / "in.h5ad"
    ad.AnnData(X=np.asarray(d["G"], np.float32), obs=obs,
               var=pd.DataFrame(index=d["genes"])).write_h5ad(src)
    said = []
    out = predict_file(root / "model", src, tmp_path / "out.h5ad", warn=said.append, quiet=True,
                       **kw)
    return ad.read_h5ad(out), [s for s in said if "tissue" in s]


def tissue_free_prediction(root, d):
    import copy

    from raviso.models.saved import TISSUE_FREE_DIR, load_predictor
    from raviso.serve.predict import LoadedModel

    m = LoadedModel(root / "model")
    free = copy.copy(m)
    free.regressor = load_predictor(m.dir / TISSUE_FREE_DIR)
    n = len(d["sample_id"])
    return np.maximum(free.predict(np.asarray(d["G"], np.float32), d["sample_id"], [""] * n), 0)


def test_tissue_key_ignores_case_spaces_and_punctuation():
    from raviso.serve.tissues import tissue_key

    assert tissue_key("brain_cortex") == tissue_key("Brain - Cortex") == "braincortex"
    assert tissue_key("LIVER ") == tissue_key("Liver") and tissue_key(None) == ""


def test_misspelled_tissues_are_matched(fitted, tmp_path):
    root, d = fitted
    exact, warned = predict(root, d, d["tissue"],tmp_path)
    assert warned == [] and set(exact.obs["tissue_model"]) == {"tissue"}
    spelled = [{"Kidney - Medulla": "kidney_medulla", "Liver": "liver"}.get(t, t.upper())
               for t in d["tissue"]]
    sub = tmp_path / "b"
    sub.mkdir()
    loose, warned = predict(root, d, spelled, sub, overwrite=True)
    assert warned == []
    np.testing.assert_array_equal(loose.X, exact.X)
    # obs: the user's spelling, and beside it the MODEL tissue it matched
    assert loose.obs["tissue"].tolist() == spelled
    assert loose.obs["tissue_matched"].tolist() == list(d["tissue"])


def test_unknown_or_missing_tissue_warns_and_takes_the_tissue_free_path(fitted, tmp_path):
    root, d = fitted
    tissue = list(d["tissue"])
    tissue[3], tissue[5] = "Heart", ""
    a, warned = predict(root, d, tissue, tmp_path)
    assert len(warned) == 1
    assert d["sample_id"][3] in warned[0] and "'Heart'" in warned[0]
    assert f"{d['sample_id'][5]} (no tissue)" in warned[0]
    path = a.obs["tissue_model"].tolist()
    assert path[3] == path[5] == "tissue-free" and path.count("tissue-free") == 2
    matched = a.obs["tissue_matched"].tolist()
    assert matched[3] == matched[5] == "" and matched[0] == d["tissue"][0]
    free = tissue_free_prediction(root, d)
    np.testing.assert_allclose(a.X[[3, 5]], free[[3, 5]], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a.X[0], free[0])          # known tissues use the tissue model
    # no tissue at all: every sample by the tissue-free model
    sub = tmp_path / "none"
    sub.mkdir()
    b, warned = predict(root, d, None, sub)
    np.testing.assert_allclose(b.X, free, rtol=1e-6, atol=1e-6)
    assert f"{len(d['sample_id'])} sample(s)" in warned[0]


def test_unknown_tissue_error_refuses_and_writes_nothing(fitted, tmp_path):
    root, d = fitted
    tissue = list(d["tissue"])
    tissue[2] = "Hearts"
    with pytest.raises(RavisoError, match=rf"{d['sample_id'][2]} \('Hearts'\)"):
        predict(root, d, tissue, tmp_path, unknown_tissue="error")
    assert not (tmp_path / "out.h5ad").exists()


def test_fit_folds_leave_one_donor_out_when_k_folds_would_hold_a_single_donor():
    from raviso.serve.fit_cv import fold_plan

    assert fold_plan(3, 5) == ("logo", 5) and fold_plan(6, 5) == ("logo", 5)
    assert fold_plan(9, 5) == ("logo", 5) and fold_plan(10, 5) == ("kfold", 5)
    assert fold_plan(4, 2) == ("kfold", 2)


def test_fit_cv_scores_the_variant_its_tissue_free_twin_and_every_baseline():
    from raviso.models.variants import BASELINES
    from raviso.serve.fit_cv import cv_variants

    assert cv_variants("recommended", None, 3) == ["recommended", "recommended[tissue=False]",
                                                   *BASELINES]
    assert cv_variants("share_net[lr=0.01]", None, 2)[:2] == ["share_net[lr=0.01]",
                                                             "share_net[lr=0.01,tissue=False]"]
    assert cv_variants("share_net", None, 1) == ["share_net", *BASELINES]     # one tissue
    assert cv_variants("gene_ffnn", None, 3) == ["gene_ffnn", *BASELINES]     # reads no tissue


def test_fit_without_cv_says_so_and_predict_says_the_model_has_no_reliability(tmp_path):
    from raviso.serve.fit import fit_store
    from raviso.serve.predict import predict_file

    store, d = write_tiny_store(tmp_path / "store")
    said = []
    out = fit_store(store, out=tmp_path / "model", variant="share_net", cv_folds=0, epochs=2,
                    progress=said.append)
    assert said == ["--cv-folds 0: share_net was not cross-validated, so MODEL has no measured "
                    "error, per-isoform reliability or prediction intervals"]
    assert not (tmp_path / "model.cv").exists()
    notes = []
    predict_file(out, store, tmp_path / "p.h5ad", warn=notes.append, quiet=True)
    assert sum("has no reliability" in s for s in notes) == 1
    with pytest.raises(RavisoError, match=r"model: --interval: this MODEL has no "
                                          r"reliability .*--cv-folds 0"):
        predict_file(out, store, tmp_path / "q.h5ad", interval=0.9, quiet=True)
    assert not (tmp_path / "q.h5ad").exists()


def test_fit_with_cv_folds_writes_a_model_with_reliability_and_its_cv(tmp_path, ray_session):
    import json

    from raviso.models.variants import BASELINES
    from raviso.serve.fit import fit_store

    store, d = write_tiny_store(tmp_path / "store")
    said = []
    out = fit_store(store, out=tmp_path / "model", variant="share_net", cv_folds=2, epochs=2,
                    progress=said.append)
    meta = json.loads((out / "model.json").read_text())
    assert meta["reliability"] and meta["tissue_free"] and meta["tissues"]
    assert meta["tissue_free_reliability"]            # its twin ran: unknown tissues' widths
    assert (out / meta["reliability"]).exists() and not (tmp_path / "model.cv" / "model").exists()
    doc = json.loads((tmp_path / "model.cv" / "results.json").read_text())
    assert doc["config"]["folds"] == 2 and "share_net" in doc["intervals"]
    assert doc["config"]["variants"] == ["share_net", "share_net[tissue=False]", *BASELINES]
    assert doc["saved_model"]["variant"] == "share_net" and doc["saved_model"]["by"]
    # fit prints what the CV measured: its MSE and CI against the best baseline's
    row = next(r for r in doc["leaderboard"] if r["variant"] == "share_net")
    best = row["vs_best_baseline"]["baseline"]
    line = said[-1]
    assert line.startswith("measured by CV (2 donor-grouped folds") and best in line
    assert f"MSE {row['mse_mean']:.4g} (95% CI {row['mse_ci95'][0]:.4g}" in line
    assert not any("--save-model" in s or "(none)" in s for s in said)
