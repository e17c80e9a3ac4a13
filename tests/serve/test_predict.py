"""`raviso fit` -> `raviso predict` (no Ray): the saved MODEL reproduces the fitted model (clamped at
0), inputs are aligned by gene NAME whatever their layout, a mismatched gene set is refused (one line
naming the genes) unless --allow-missing fills the training means, and the Parquet / TSV / h5ad
outputs hold the same numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from cvdata import write_tiny_run, write_tiny_store

from raviso.core.errors import RavisoError


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.models.saved import fit_model

    root = tmp_path_factory.mktemp("fit")
    store, d = write_tiny_store(root / "store")
    run = write_tiny_run(root / "vae", d["genes"])
    st, data = load_labelled(store, {"vae": str(run)})
    model = fit_model(data, "vae_ffnn", root / "model", runs={"vae": str(run)},
                      options={"epochs": 3, "seed": 1}, store_uri=st.uri)
    expected = np.maximum(model.predict(data, np.arange(data.n)), 0)
    return root, d, data, model, expected


def write_tsv(path, ids, genes, X):
    with open(path, "w") as f:
        f.write("sample_id\t" + "\t".join(genes) + "\n")
        for s, row in zip(ids, X):
            f.write(s + "\t" + "\t".join(repr(float(v)) for v in row) + "\n")
    return path


def test_fit_predict_round_trip_from_store(fitted):
    from raviso.serve.predict import predict_file, read_predictions

    root, d, data, _, expected = fitted
    out = predict_file(root / "model", root / "store", root / "pred.parquet")
    ids, P, meta = read_predictions(out)
    assert ids == d["sample_id"]
    assert meta["isoforms"] == d["isoforms"] and meta["missing_genes"]["count"] == 0
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-6)
    # not a constant: the model really maps each sample's genes to its own prediction
    assert np.ptp(P, axis=0).max() > 1e-3


def test_columns_aligned_by_name(fitted, tmp_path):
    from raviso.serve.predict import predict_file, read_predictions

    root, d, _, _, expected = fitted
    perm = np.random.default_rng(3).permutation(len(d["genes"]))
    src = write_tsv(tmp_path / "genes.tsv", d["sample_id"], [d["genes"][j] for j in perm],
                    d["G"][:, perm])
    _, P, _ = read_predictions(predict_file(root / "model", src, tmp_path / "p.parquet"))
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-6)


def test_missing_genes_refused_naming_them(fitted, tmp_path):
    from raviso.serve.predict import predict_file

    root, d, _, _, _ = fitted
    keep = [j for j in range(len(d["genes"])) if j not in (2, 5)]
    src = write_tsv(tmp_path / "few.tsv", d["sample_id"], [d["genes"][j] for j in keep],
                    d["G"][:, keep])
    with pytest.raises(RavisoError, match=r"2 of 16 model genes missing: G002, G005"):
        predict_file(root / "model", src, tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()
    # the CLI: one line on stderr, exit 1, nothing written
    r = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "predict",
                        str(root / "model"), str(src), "--out", str(tmp_path / "q.parquet")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"raviso: error: {src}: 2 of 16 model genes missing: G002, G005")
    assert not (tmp_path / "q.parquet").exists()


def test_allow_missing_fills_training_means_and_says_so(fitted, tmp_path):
    from raviso.serve.predict import LoadedModel, predict_file, read_predictions

    root, d, data, _, _ = fitted
    keep = [j for j in range(len(d["genes"])) if j not in (2, 5)]
    src = write_tsv(tmp_path / "few.tsv", d["sample_id"], [d["genes"][j] for j in keep],
                    d["G"][:, keep])
    with pytest.raises(RavisoError, match=r"2 of 16 model genes missing \(12%, above "
                       r"--max-missing 0.1\): G002, G005"):
        predict_file(root / "model", src, tmp_path / "p.parquet", allow_missing=True)
    assert not (tmp_path / "p.parquet").exists()
    warnings = []
    out = predict_file(root / "model", src, tmp_path / "p.parquet", allow_missing=True,
                       max_missing=0.2, warn=warnings.append)
    _, P, meta = read_predictions(out)
    assert meta["missing_genes"] == {"count": 2, "names": ["G002", "G005"],
                                     "filled_with": "training mean"}
    assert "2 of 16 model genes missing, filled with their training means: G002, G005" \
        in warnings[0]
    means = np.asarray(data.genes).mean(axis=0)
    assert means[[2, 5]].min() > 1                   # the filled value is not 0
    X = d["G"].copy()
    X[:, [2, 5]] = means[[2, 5]]
    np.testing.assert_allclose(P, np.maximum(LoadedModel(root / "model").predict(X), 0),
                               rtol=1e-5, atol=1e-6)
    assert P.min() >= 0


def test_allow_missing_needs_the_models_training_means(fitted, tmp_path):
    import shutil

    from raviso.serve.predict import predict_file

    root, d, _, _, _ = fitted
    old = tmp_path / "old-model"
    shutil.copytree(root / "model", old)
    meta = json.loads((old / "model.json").read_text())
    del meta["gene_means"]
    (old / "model.json").write_text(json.dumps(meta))
    src = write_tsv(tmp_path / "few.tsv", d["sample_id"], d["genes"][1:], d["G"][:, 1:])
    with pytest.raises(RavisoError, match="no training means.*refit"):
        predict_file(old, src, tmp_path / "p.parquet", allow_missing=True)


def test_tsv_and_h5ad_outputs_hold_the_same_predictions(fitted, tmp_path):
    import h5py

    from raviso.serve.predict import predict_file

    root, d, _, _, expected = fitted
    tsv = predict_file(root / "model", root / "store", tmp_path / "p.tsv")
    lines = tsv.read_text().splitlines()
    assert lines[0].split("\t") == ["sample_id"] + d["isoforms"]
    vals = np.array([[float(x) for x in ln.split("\t")[1:]] for ln in lines[1:]])
    np.testing.assert_allclose(vals, expected, rtol=1e-4, atol=1e-5)
    h5 = predict_file(root / "model", root / "store", tmp_path / "p.h5ad")
    with h5py.File(h5, "r") as f:
        assert f.attrs["encoding-type"] == "anndata"
        np.testing.assert_allclose(f["X"][:], expected, rtol=1e-5, atol=1e-6)
        assert [s.decode() for s in f["obs/_index"][:]] == d["sample_id"]
        assert [s.decode() for s in f["var/_index"][:]] == d["isoforms"]
        assert json.loads(f["uns/raviso"][()])["units"] == "log2(TPM+1)"


@pytest.mark.parametrize("variant", ["share_net", "ffnn_plus"])
def test_recommended_models_save_and_predict(fitted, tmp_path, variant):
    """raviso's own models are savable: fit -> MODEL -> predict reproduces the fitted model's
    predictions (context transform, tissue one-hot and network all restored)."""
    from raviso.models.saved import fit_model, is_savable
    from raviso.serve.predict import LoadedModel, predict_file, read_predictions

    root, d, data, _, _ = fitted
    assert is_savable(variant)
    model = fit_model(data, variant, tmp_path / "m",
                      options={"epochs": 3, "seed": 1, "n_components": 4})
    expected = np.maximum(model.predict(data, np.arange(data.n)), 0)
    ids, P, _ = read_predictions(predict_file(tmp_path / "m", root / "store", tmp_path / "p.parquet"))
    assert ids == d["sample_id"]
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-5)
    assert np.ptp(P, axis=0).max() > 1e-3
    loaded = LoadedModel(tmp_path / "m").regressor
    assert type(loaded) is type(model) and loaded.opts == model.opts
    assert loaded.tissues_ == model.tissues_ and len(model.tissues_) > 1
    (tmp_path / "m" / "regressor" / "share.safetensors").write_bytes(b"junk")
    with pytest.raises(RavisoError, match=r"regressor/share.safetensors is cut short .*refit"):
        LoadedModel(tmp_path / "m")


def test_bad_model_and_format(fitted, tmp_path):
    from raviso.serve.predict import predict_file

    root, _, _, _, _ = fitted
    with pytest.raises(RavisoError, match="not a raviso model"):
        predict_file(tmp_path, root / "store", tmp_path / "p.parquet")
    with pytest.raises(RavisoError, match="--format must be one of"):
        predict_file(root / "model", root / "store", tmp_path / "p.x", fmt="xlsx")
    with pytest.raises(RavisoError, match="cannot be saved"):
        from raviso.models.saved import fit_model
        fit_model(fitted[2], "mean", tmp_path / "m")


def test_streams_in_chunks_with_the_same_result(fitted, tmp_path, monkeypatch):
    """Inputs bigger than one chunk are predicted and written chunk by chunk (48 rows, chunks of
    10): same rows, same order, same numbers in every output format."""
    import h5py

    import raviso.serve.predict as predict
    from raviso.serve.predict import predict_file, read_predictions

    root, d, _, _, expected = fitted
    monkeypatch.setattr(predict, "CHUNK_ROWS", 10)
    ids, P, _ = read_predictions(predict_file(root / "model", root / "store",
                                              tmp_path / "p.parquet"))
    assert ids == d["sample_id"]
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-6)
    with h5py.File(predict_file(root / "model", root / "store", tmp_path / "p.h5ad"), "r") as f:
        np.testing.assert_allclose(f["X"][:], expected, rtol=1e-5, atol=1e-6)
        assert [s.decode() for s in f["obs/_index"][:]] == d["sample_id"]
