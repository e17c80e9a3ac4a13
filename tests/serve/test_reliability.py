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


def test_fit_with_cv_folds_writes_a_model_with_reliability_and_its_cv(tmp_path, ray_session):
    import json

    from raviso.serve.fit import fit_store

    store, d = write_tiny_store(tmp_path / "store")
    out = fit_store(store, out=tmp_path / "model", variant="share_net", cv_folds=2, epochs=2)
    meta = json.loads((out / "model.json").read_text())
    assert meta["reliability"] and meta["tissue_free"] and meta["tissues"]
    assert (out / meta["reliability"]).exists() and not (tmp_path / "model.cv" / "model").exists()
    doc = json.loads((tmp_path / "model.cv" / "results.json").read_text())
    assert doc["config"]["folds"] == 2 and "share_net" in doc["intervals"]
