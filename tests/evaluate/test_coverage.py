"""Out-of-fold reliability arrays and conformal intervals (`raviso.trust.reliability`), no Ray:
the streamed per-isoform statistics equal the two-pass ones, the histogram quantile is the exact
order statistic rounded up to its bin's edge, and folds calibrated on the other folds cover at
nominal (or just above)."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.trust import reliability as rel


def fold_arrays(pred, Y, train_mean, chunk=7):
    acc = rel.OofAccumulator(train_mean)
    for s in range(0, len(Y), chunk):
        acc.add(pred[s:s + chunk], Y[s:s + chunk])
    return acc.result()


def synthetic(n=600, m=40, seed=0):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.05, 1.5, m)
    Y = rng.gamma(2.0, 1.5, (n, m))
    pred = Y + rng.normal(0, 1, (n, m)) * scale
    return pred, Y


def test_streamed_stats_match_two_pass():
    pred, Y = synthetic()
    folds = np.arange(len(Y)) % 3
    parts = [fold_arrays(pred[folds == f], Y[folds == f], Y[folds != f].mean(0))
             for f in range(3)]
    stats = rel.per_isoform(rel.combine(parts))
    mse = ((pred - Y) ** 2).mean(0)
    np.testing.assert_allclose(stats["oof_mse"], mse, rtol=1e-10)
    sst = ((Y - Y.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(stats["oof_r2"], 1 - mse * len(Y) / sst, rtol=1e-9)
    r = [np.corrcoef(pred[:, j], Y[:, j])[0, 1] for j in range(Y.shape[1])]
    np.testing.assert_allclose(stats["oof_r"], r, rtol=1e-9)
    np.testing.assert_allclose(stats["mean_expr"], Y.mean(0), rtol=1e-12)
    assert rel.reliable(stats, 0.5).tolist() == (stats["oof_r2"] >= 0.5).tolist()


def test_halfwidth_is_the_conformal_order_statistic_within_a_bin():
    pred, Y = synthetic(n=499)
    a = fold_arrays(pred, Y, Y.mean(0))
    for level in (0.8, 0.9, 0.95):
        w = rel.halfwidth(a["hist"], level)
        k = int(np.ceil(500 * level))
        exact = np.sort(np.abs(pred - Y), axis=0)[k - 1]
        ratio = w / exact                  # rounded up to its bin's edge: never below
        assert np.all(ratio >= 1) and np.all(ratio < 2 ** (1 / 12) + 1e-9)     # one bin
    # too few residuals for the rank: an infinite interval, never a too-narrow one
    small = fold_arrays(pred[:5], Y[:5], Y.mean(0))
    assert np.isinf(rel.halfwidth(small["hist"], 0.9)).all()


def test_heldout_fold_coverage_is_nominal():
    pred, Y = synthetic(n=1500, m=60, seed=1)
    folds = np.arange(len(Y)) % 5
    parts = {f: fold_arrays(pred[folds == f], Y[folds == f], Y[folds != f].mean(0))
             for f in range(5)}
    cov = rel.coverage(parts, k=5)
    for level in (0.8, 0.9, 0.95):
        c = cov[f"{level:g}"]
        assert level <= c["coverage"] <= level + 0.015     # conservative by under one bin
        assert len(c["per_fold"]) == 5
    # counting from the histogram agrees with counting the residuals themselves
    w = rel.halfwidth(rel.combine([parts[f] for f in (1, 2, 3, 4)])["hist"], 0.9)
    exact = (np.abs(pred - Y)[folds == 0] <= w).mean()
    assert cov["0.9"]["per_fold"][0] == pytest.approx(exact, abs=1e-12)   # a bin edge: exact


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory, ray_session):
    """`raviso cv --save-model` of share_net and its tissue-free twin on the tiny preset."""
    from raviso.evaluate.cv import run_cv
    from raviso.io.convert import convert
    from raviso.synth.generate import generate

    root = tmp_path_factory.mktemp("coverage")
    generate(root / "synth", preset="tiny", seed=0, heldout=False)
    convert(root / "store", root / "synth")
    cv = run_cv(root / "store", variants="share_net,share_net[tissue=false]", folds=5,
                out=root / "cv", save_model=True, progress=lambda s: None,
                variant_options={"epochs": 15})
    return root, cv


def test_heldout_donor_coverage_on_the_tiny_preset(tiny_cv):
    import json

    root, cv = tiny_cv
    doc = json.loads((cv / "results.json").read_text())
    iv = doc["intervals"]["share_net"]
    for level in (0.8, 0.9, 0.95):
        c = iv[f"{level:g}"]
        assert c["coverage"] == pytest.approx(level, abs=0.05), (level, c)
        assert len(c["per_fold"]) == 5 and c["mean_halfwidth"] > 0
    assert iv["0.9"]["mean_halfwidth"] < iv["0.95"]["mean_halfwidth"]
    report = (cv / "report.md").read_text()
    assert "## Prediction intervals: coverage on held-out donors" in report
    assert "### What a missing tissue costs" in report
    assert doc["summary"]["share_net[tissue=False]"]["mse_mean"] > 0


def test_predict_h5ad_with_interval_from_the_cli(tiny_cv, tmp_path):
    import subprocess
    import sys

    import anndata as ad

    from raviso.data.reader import Store

    root, cv = tiny_cv
    model = cv / "model"
    meta = json_of(model / "model.json")
    assert meta["reliability"] and meta["tissue_free"] and meta["tissue_free_reliability"]
    assert meta["domain"] == "domain.npz"           # cv --save-model: the applicability domain
    st = Store(root / "store")
    X, ids, tissue, _ = next(st.batches("gtex_gene", 40))
    src = tmp_path / "in.h5ad"
    import pandas as pd
    ad.AnnData(X=np.asarray(X, np.float32), obs=pd.DataFrame({"tissue": list(tissue)},
                                                             index=list(ids)),
               var=pd.DataFrame(index=st.genes)).write_h5ad(src)
    out = tmp_path / "out.h5ad"
    r = subprocess.run([sys.executable, "-m", "cli", "predict", str(model), str(src), "--out",
                        str(out), "--interval", "0.9", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a = ad.read_h5ad(out)
    assert {"oof_mse", "oof_r2", "oof_r", "reliable", "mean_expr"} <= set(a.var.columns)
    assert a.var["reliable"].dtype == bool and 0 < a.var["reliable"].mean() <= 1
    assert {"lower", "upper"} <= set(a.layers)
    assert a.obs["in_domain"].mean() > 0.9 and a.obs["calibrated"].dtype == bool
    assert (a.layers["lower"] <= a.X).all() and (a.X <= a.layers["upper"]).all()


def json_of(path):
    import json

    return json.loads(path.read_text())
