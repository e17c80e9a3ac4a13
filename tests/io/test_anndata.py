"""AnnData in and out through the `anndata` package. `raviso predict` writes a
real AnnData (obs = samples with tissue, var = isoforms with gene_id) that opens with
`anndata.read_h5ad` and works with scanpy-style code; `convert`, `import --matrix` and `predict`
read .h5ad (dense or sparse X); `raviso export STORE --to h5ad|tsv` gives a samples x features
table that pandas / scanpy open directly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_bad_input import assert_one_line_error, run_cli
from test_predict import fitted  # noqa: F401  (the fitted MODEL, shared)

anndata = pytest.importorskip("anndata")

from raviso.data import Store  # noqa: E402


def write_h5ad(path, X, obs_names, var_names, sparse=False, obs=None, var=None):
    ad = anndata.AnnData(X=sp.csr_matrix(X) if sparse else np.asarray(X),
                         obs=pd.DataFrame(obs or {}, index=list(obs_names)),
                         var=pd.DataFrame(var or {}, index=list(var_names)))
    ad.write_h5ad(path)
    return path


def test_predict_writes_a_real_anndata(fitted, tmp_path, capsys, monkeypatch):
    root, d, data, _, expected = fitted
    out = tmp_path / "pred.h5ad"
    code, _, err = run_cli(capsys, monkeypatch, "predict", root / "model", root / "store",
                           "--out", out)
    assert code == 0, err
    assert f"raviso: predict: {len(d['sample_id'])} rows in " in err and "rows/s" in err  # 12.19
    ad = anndata.read_h5ad(out)
    assert ad.shape == (len(d["sample_id"]), len(d["isoforms"]))
    assert list(ad.obs_names) == d["sample_id"] and list(ad.var_names) == d["isoforms"]
    assert list(ad.obs["tissue"]) == list(data.tissue)
    assert list(ad.var["gene_id"]) == d["isoform_gene"]
    np.testing.assert_allclose(ad.X, expected, rtol=1e-5, atol=1e-6)
    assert json.loads(ad.uns["raviso"])["units"] == "log2(TPM+1)"
    # scanpy-style use: per-tissue means, an isoform's share of its gene, a DataFrame view
    t0 = ad.obs["tissue"].iloc[0]
    sub = ad[ad.obs["tissue"] == t0]
    np.testing.assert_allclose(np.asarray(sub.X).mean(0),
                               expected[np.asarray(data.tissue) == t0].mean(0), rtol=1e-5)
    g = ad.var["gene_id"].iloc[0]
    assert ad[:, ad.var["gene_id"] == g].n_vars == d["isoform_gene"].count(g)
    assert ad.to_df().shape == ad.shape


@pytest.mark.parametrize("sparse", [False, True])
def test_predict_reads_h5ad_input(fitted, tmp_path, sparse):
    from raviso.serve.predict import predict_file, read_predictions

    root, d, data, _, expected = fitted
    perm = np.random.default_rng(0).permutation(len(d["genes"]))
    src = write_h5ad(tmp_path / "in.h5ad", d["G"][:, perm], d["sample_id"],
                     [d["genes"][j] for j in perm], sparse=sparse)
    ids, P, _ = read_predictions(predict_file(root / "model", src, tmp_path / "p.parquet"))
    assert ids == d["sample_id"]
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_convert_reads_h5ad(tmp_path, sparse, capsys, monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.random((30, 12)).astype(np.float32) * 5
    X[X < 1] = 0
    ids = [f"GTEX-{k // 3}-{k:04d}" for k in range(30)]
    genes = [f"G{j}" for j in range(12)]
    src = write_h5ad(tmp_path / "a.h5ad", X, ids, genes, sparse=sparse,
                     obs={"tissue": [f"t{k % 2}" for k in range(30)]})
    code, _, err = run_cli(capsys, monkeypatch, "convert", tmp_path / "st", "--archs4", src,
                           "--gtex-gene", src, "--quiet")
    assert code == 0, err
    st = Store(tmp_path / "st")
    np.testing.assert_allclose(st.numpy("archs4"), X, rtol=1e-6)
    meta = st.meta("gtex_gene")
    assert meta.tissue.tolist()[:2] == ["t0", "t1"] and meta.donor.tolist()[3] == "GTEX-1"


def test_import_matrix_reads_h5ad(tmp_path):
    from raviso.io.importer import import_matrix

    V = np.array([[1.0, 2.0, 3.0, 0.5], [0.0, 4.0, 8.0, 0.25]])      # samples x transcripts
    src = write_h5ad(tmp_path / "tx.h5ad", V, ["GTEX-A-1", "GTEX-B-1"],
                     ["ENST01.1", "ENST02.2", "ENST03.1", "ENST04.3"], sparse=True,
                     var={"gene_id": ["ENSG1", "ENSG2", "ENSG2", "ENSG3"]})
    st = Store(import_matrix(src, tmp_path / "st", units="tpm", gene_col="gene_id"))
    np.testing.assert_allclose(st.numpy("gtex_isoform"), np.log2(V + 1), rtol=1e-5)
    np.testing.assert_allclose(st.numpy("gtex_gene")[:, 1], np.log2(V[:, 1] + V[:, 2] + 1),
                               rtol=1e-5)
    assert st.meta("gtex_gene").donor.tolist() == ["GTEX-A", "GTEX-B"]


@pytest.mark.parametrize("to", ["h5ad", "tsv"])
def test_export_round_trip(fitted, tmp_path, to, capsys, monkeypatch):
    root, d, data, _, _ = fitted
    out = tmp_path / f"iso.{to}"
    code, _, err = run_cli(capsys, monkeypatch, "export", root / "store", "--to", to,
                           "--dataset", "gtex_isoform", "--out", out)
    assert code == 0, err
    st = Store(root / "store")
    X = st.numpy("gtex_isoform")
    if to == "h5ad":
        ad = anndata.read_h5ad(out)
        assert list(ad.obs_names) == d["sample_id"] and list(ad.var_names) == d["isoforms"]
        assert list(ad.var["gene_id"]) == d["isoform_gene"]
        assert list(ad.obs["tissue"]) == st.meta("gtex_isoform").tissue.tolist()
        np.testing.assert_array_equal(ad.X, X)
    else:
        df = pd.read_csv(out, sep="\t", index_col=0)
        assert list(df.index) == d["sample_id"] and list(df.columns) == d["isoforms"]
        np.testing.assert_allclose(df.to_numpy(), X, rtol=1e-6)


def test_export_bad_input_is_one_line(fitted, tmp_path, capsys, monkeypatch):
    root = fitted[0]
    assert_one_line_error(run_cli(capsys, monkeypatch, "export", root / "store", "--to", "xlsx",
                                  "--out", tmp_path / "x"), "--to")
    assert_one_line_error(run_cli(capsys, monkeypatch, "export", tmp_path / "nostore", "--to",
                                  "tsv", "--out", tmp_path / "x.tsv"), "nostore")
    assert not (tmp_path / "x.tsv").exists()


def test_bad_h5ad_inputs_are_one_line(tmp_path, capsys, monkeypatch):
    """Raw counts where log2(TPM+1) is expected, and an AnnData without var, name the file."""
    import h5py

    counts = write_h5ad(tmp_path / "counts.h5ad", np.full((4, 3), 5000.0), list("abcd"),
                        list("XYZ"), sparse=True)
    assert_one_line_error(run_cli(capsys, monkeypatch, "convert", tmp_path / "st", "--archs4",
                                  counts), str(counts), "not on a log scale")
    novar = write_h5ad(tmp_path / "novar.h5ad", np.ones((2, 2)), ["a", "b"], ["X", "Y"])
    with h5py.File(novar, "r+") as f:
        del f["var"]
    assert_one_line_error(run_cli(capsys, monkeypatch, "convert", tmp_path / "st", "--archs4",
                                  novar), str(novar))
    assert not (tmp_path / "st").exists()
