"""`raviso predict` outputs beyond log2(TPM+1) (no Ray): per-isoform out-of-fold reliability as
AnnData var columns or a side table, conformal interval layers, TPM and isoform fractions (summing
to 1 per gene and sample), the merged features x samples tables and tx2gene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cvdata import write_tiny_store

from raviso.core.errors import RavisoError

OPTIONS = {"epochs": 3, "seed": 0}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """share_net on the tiny store, its MODEL carrying the arrays of a 3-fold donor CV."""
    from raviso.evaluate.cv import run_trial
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.trust.reliability import OofAccumulator, model_arrays
    from raviso.evaluate.engine.repeats import repeated_folds
    from raviso.models.saved import ModelExtras, fit_model

    root = tmp_path_factory.mktemp("outputs")
    store, d = write_tiny_store(root / "store")
    st, data = load_labelled(store, {})
    folds = repeated_folds(data.tissue, data.donor, k=3, seed=0, repeats=1)
    oof = {}
    for f in range(3):
        acc = OofAccumulator()
        run_trial(data, folds.fold, f, "share_net", OPTIONS, taps=[acc])
        oof[(f, "share_net")] = acc.result()
    arrays = model_arrays(oof, "share_net")
    fit_model(data, "share_net", root / "model", options=OPTIONS, store_uri=st.uri,
              extras=ModelExtras(reliability=arrays))
    fit_model(data, "share_net", root / "plain", options=OPTIONS, store_uri=st.uri)
    return root, d, arrays


def gene_h5ad(path, d, tissue=None):
    import anndata as ad

    obs = pd.DataFrame(index=d["sample_id"])
    if tissue is not None:
        obs["tissue"] = tissue
    ad.AnnData(X=np.asarray(d["G"], np.float32), obs=obs,
               var=pd.DataFrame(index=d["genes"])).write_h5ad(path)
    return path


def test_h5ad_has_reliability_columns_interval_layers_and_units(model, tmp_path):
    import anndata as ad

    from raviso.trust.reliability import halfwidth, per_isoform
    from raviso.serve.predict import predict_file

    root, d, arrays = model
    src = gene_h5ad(tmp_path / "in.h5ad", d, d["tissue"])
    out = predict_file(root / "model", src, tmp_path / "out.h5ad", interval=0.9,
                       units="tpm,fraction", quiet=True)
    a = ad.read_h5ad(out)
    stats = per_isoform(arrays)
    for col in ("oof_mse", "oof_r2", "oof_r", "mean_expr"):
        np.testing.assert_allclose(a.var[col].to_numpy(), stats[col], rtol=1e-12)
    assert a.var["reliable"].dtype == bool
    assert a.var["reliable"].tolist() == (np.nan_to_num(stats["oof_r2"], nan=-1) >= 0.5).tolist()
    assert a.var["gene_id"].tolist() == d["isoform_gene"]
    X, lo, hi = a.X, a.layers["lower"], a.layers["upper"]
    w = halfwidth(arrays["hist"], 0.9)
    np.testing.assert_allclose(hi - X, np.broadcast_to(w, X.shape), rtol=1e-5, atol=1e-5)
    assert (lo >= 0).all() and (lo <= X).all() and (X <= hi).all()
    np.testing.assert_allclose(a.layers["tpm"], np.exp2(X) - 1, rtol=1e-5, atol=1e-5)
    frac = pd.DataFrame(a.layers["fraction"].T, index=a.var["gene_id"])
    sums = frac.groupby(level=0).sum(min_count=1).to_numpy()
    gene_tpm = pd.DataFrame(a.layers["tpm"].T, index=a.var["gene_id"]).groupby(level=0).sum()
    expressed = gene_tpm.to_numpy() > 0
    assert expressed.mean() > 0.5
    np.testing.assert_allclose(sums[expressed], 1.0, rtol=1e-6)    # per gene and sample
    assert np.isnan(sums[~expressed]).all()                         # no TPM: no shares
    assert set(a.obs["tissue_model"]) == {"tissue"}


def test_tsv_side_tables_merged_layout_and_tx2gene(model, tmp_path):
    from raviso.serve.predict import predict_file

    root, d, _ = model
    src = gene_h5ad(tmp_path / "in.h5ad", d, d["tissue"])
    out = predict_file(root / "model", src, tmp_path / "p.tsv", interval=0.8, units="fraction",
                       merged=True, quiet=True)
    main = pd.read_csv(out, sep="\t", index_col=0)
    iso = pd.read_csv(tmp_path / "p.isoforms.tsv", sep="\t", index_col=0)
    assert list(iso.index) == d["isoforms"]
    assert {"gene_id", "oof_mse", "oof_r2", "oof_r", "reliable", "halfwidth_0.8"} <= set(iso)
    lower = pd.read_csv(tmp_path / "p.lower.tsv", sep="\t", index_col=0)
    upper = pd.read_csv(tmp_path / "p.upper.tsv", sep="\t", index_col=0)
    assert (lower.to_numpy() <= main.to_numpy() + 1e-6).all()
    assert (upper.to_numpy() >= main.to_numpy() - 1e-6).all()
    merged = pd.read_csv(tmp_path / "p.merged.fraction.tsv", sep="\t")
    assert list(merged.columns[:2]) == ["transcript_id", "gene_id"]
    assert list(merged.columns[2:]) == d["sample_id"]
    sums = merged.groupby("gene_id")[d["sample_id"]].sum(min_count=1).to_numpy()
    np.testing.assert_allclose(sums[~np.isnan(sums)], 1.0, rtol=1e-5)
    log2 = pd.read_csv(tmp_path / "p.merged.log2tpm.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(log2[d["sample_id"]].to_numpy().T, main.to_numpy(), rtol=1e-6)
    tx = pd.read_csv(tmp_path / "p.tx2gene.tsv", sep="\t")
    assert tx.columns.tolist() == ["transcript_id", "gene_id"]
    assert tx["gene_id"].tolist() == d["isoform_gene"]


def test_parquet_carries_interval_columns_and_the_rule_is_the_users(model, tmp_path):
    import pyarrow.parquet as pq

    from raviso.data.reader import tensor_to_numpy
    from raviso.serve.predict import predict_file

    root, d, _ = model
    src = gene_h5ad(tmp_path / "in.h5ad", d, d["tissue"])
    out = predict_file(root / "model", src, tmp_path / "p.parquet", interval=0.95,
                       reliable_r2=-1e9, quiet=True)
    t = pq.read_table(out)
    X, lo, hi = (tensor_to_numpy(t.column(c)) for c in ("expr", "lower", "upper"))
    assert (lo <= X).all() and (X <= hi).all()
    iso = pd.read_csv(tmp_path / "p.isoforms.tsv", sep="\t", index_col=0)
    varies = iso["oof_r2"].notna()
    assert iso.loc[varies, "reliable"].all()


def test_fractions_of_a_gene_with_no_tpm_are_nan():
    from raviso.serve.outputs import GeneShares

    shares = GeneShares(["g1", "g1", "g2", None])
    f = shares.fraction(np.array([[1.0, 3.0, 0.0, 5.0], [0.0, 0.0, 2.0, 1.0]]))
    np.testing.assert_allclose(f[0, :2], [0.25, 0.75])
    assert np.isnan(f[0, 2]) and np.isnan(f[1, :2]).all() and f[1, 2] == 1.0
    assert np.isnan(f[:, 3]).all()                     # an isoform without a gene has no share


def test_interval_needs_a_model_with_out_of_fold_residuals(model, tmp_path):
    from raviso.serve.predict import predict_file

    root, d, _ = model
    src = gene_h5ad(tmp_path / "in.h5ad", d, d["tissue"])
    with pytest.raises(RavisoError, match="--cv-folds 0"):
        predict_file(root / "plain", src, tmp_path / "x.h5ad", interval=0.9, quiet=True)
    assert not (tmp_path / "x.h5ad").exists()
    with pytest.raises(RavisoError, match="interval must be a level in"):
        predict_file(root / "model", src, tmp_path / "x.h5ad", interval=1.5, quiet=True)
    with pytest.raises(RavisoError, match="--units"):
        predict_file(root / "model", src, tmp_path / "x.h5ad", units="fpkm", quiet=True)


def test_observed_isoforms_qc_flags_an_aberrant_sample(model, tmp_path):
    import anndata as ad

    from raviso.serve.predict import predict_file

    root, d, _ = model
    Y = np.array(d["Y"], np.float64)
    genes = np.array(d["isoform_gene"])
    for g in np.unique(genes):                     # sample 0: every gene's split turned over
        cols = np.flatnonzero(genes == g)
        if len(cols) > 1:
            Y[0, cols] = 0.0
            Y[0, cols[0]] = 8.0
    table = pd.DataFrame(Y.T, index=pd.Index([i + ".1" for i in d["isoforms"]],
                                             name="transcript_id"), columns=d["sample_id"])
    table.to_csv(tmp_path / "iso.tsv", sep="\t")         # transcripts x samples, versioned ids
    src = gene_h5ad(tmp_path / "in.h5ad", d, d["tissue"])
    said = []
    out = predict_file(root / "model", src, tmp_path / "q.h5ad", observed=tmp_path / "iso.tsv",
                       quiet=True, warn=said.append)
    a = ad.read_h5ad(out)
    z = a.obs["qc_z"].to_numpy()
    summary = [s for s in said if s.startswith("raviso: --observed:")]
    assert summary == [f"raviso: --observed: 1 of {len(z)} sample(s) aberrant (qc_z > 3: isoform "
                       f"fractions unlike the CV's held-out donors'; highest qc_z "
                       f"{z.max():.1f}), in {tmp_path / 'q.qc.tsv'}"]
    assert np.isfinite(z).all() and a.obs["qc_aberrant"].dtype == bool
    assert a.obs["qc_aberrant"].tolist() == [True] + [False] * (len(z) - 1)
    assert z[0] > 3 and np.abs(np.median(z[1:])) < 1.5
    per_gene = pd.read_csv(tmp_path / "q.qc_genes.tsv", sep="\t", index_col=0)
    assert list(per_gene.index) == d["sample_id"]
    assert per_gene.shape[1] == sum(1 for g in set(d["isoform_gene"])
                                    if d["isoform_gene"].count(g) > 1)
    assert per_gene.iloc[0].median() > 2 > per_gene.iloc[1:].abs().median().median()
    qc = pd.read_csv(tmp_path / "q.qc.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(qc["qc_z"].to_numpy(), z, rtol=1e-6)


def test_oof_r2_is_nan_where_the_isoform_barely_varies():
    from raviso.trust.reliability import OofAccumulator, per_isoform, reliable

    rng = np.random.default_rng(0)
    n = 40
    Y = np.column_stack([rng.normal(3, 1, n), 2 + 1e-5 * rng.normal(size=n),
                         1 + 0.05 * rng.normal(size=n), np.zeros(n)])
    pred = Y + rng.normal(0, 0.1, Y.shape)
    acc = OofAccumulator(Y.mean(0))
    acc.add(pred, Y)
    stats = per_isoform(acc.result())
    sse, sst = ((pred - Y) ** 2).sum(0), ((Y - Y.mean(0)) ** 2).sum(0)
    assert 1 - sse[1] / sst[1] < -1e6                 # what 1 - SSE/SST reads for isoform 1
    r2 = stats["oof_r2"]
    assert np.isnan(r2[[1, 3]]).all() and not reliable(stats)[[1, 3]].any()
    np.testing.assert_allclose(r2[[0, 2]], 1 - sse[[0, 2]] / sst[[0, 2]], rtol=1e-9)
    assert r2[0] > 0.9 and r2[2] < 0                    # SD 0.05 still varies: an R^2 of its own
