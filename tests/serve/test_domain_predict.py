"""`raviso predict` and the applicability domain (no Ray; the CV's unit of work in process, as
bench/shift.py runs it): shifted samples are flagged with one summary line, in-domain intervals
cover near nominal on a small world, the option makes it an error, and a MODEL without the
calibration or without the tissue-free CV says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raviso.core.errors import RavisoError

OPTIONS = {"epochs": 8, "seed": 0}


@pytest.fixture(scope="module")
def shift(tmp_path_factory):
    """The tiny preset split into training / test donors / a held-out tissue group; share_net
    cross-validated (3 folds) and fitted on the training part; a MODEL of the same fit whose CV
    ran no tissue=False twin; the test sets of bench/shift.py."""
    from bench import shift as sh
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.io.convert import convert
    from raviso.synth.generate import generate

    root = tmp_path_factory.mktemp("shift")
    generate(root / "synth", preset="tiny", seed=0, heldout=False)
    convert(root / "store", root / "synth")
    _, data = load_labelled(root / "store", {})
    train_rows, test_rows, tissue_rows = sh.split(data, 0)
    train = sh.subset(data, train_rows)
    model = sh.cv_model(train, root / "model", k=3, options=OPTIONS)
    aware = sh.cv_model(train, root / "aware-only", k=3, options=OPTIONS, tissue_free=False)
    sets = sh.test_sets(data, test_rows, tissue_rows, 0)
    return sh, data, model, aware, sets


def test_shifted_samples_are_flagged_in_domain_coverage_is_sane(shift, tmp_path, capsys):
    sh, data, model, _, sets = shift
    r = {name: sh.predict_set(model, data, G, rows, ids, tmp_path, name, say=print)
         for name, (G, rows, ids) in sets.items()}
    t = sh.summarise(r)
    assert t["in_domain"]["not_calibrated"] <= 0.1 * t["in_domain"]["n"]
    assert 0.85 <= t["in_domain"]["coverage_calibrated"] <= 0.95
    assert t["batch_offset"]["out_of_domain"] >= 0.9 * t["batch_offset"]["n"]  # clearly shifted
    assert t["batch_offset"]["auc"] > 0.95 and t["all"]["auc"] > 0.8
    # a tissue the MODEL never saw: predicted tissue-free, never claimed calibrated
    assert t["unseen_tissue"]["not_calibrated"] == t["unseen_tissue"]["n"]
    err = capsys.readouterr().out
    assert "sample(s) of a tissue the MODEL was not trained on" in err
    n, k = t["batch_offset"]["n"], t["batch_offset"]["out_of_domain"]
    assert (f"raviso: warning: {k} of {n} samples are further from the training data than 99% "
            "of held-out donors: their reliability and intervals are not valid") in err


def test_domain_columns_side_table_and_the_scaled_widths(shift, tmp_path):
    import anndata as ad

    from raviso.serve.predict import predict_file
    from raviso.trust.reliability import halfwidth, load_arrays

    sh, data, model, _, sets = shift
    G, rows, ids = sets["in_domain"]
    src = sh.gene_h5ad(tmp_path / "in.h5ad", G, data.gene_names, ids, data.tissue[rows])
    a = ad.read_h5ad(predict_file(model, src, tmp_path / "p.h5ad", interval=0.9, quiet=True))
    assert {"domain_score", "domain_pct", "in_domain", "calibrated", "interval_scale"} \
        <= set(a.obs.columns)
    assert a.obs["in_domain"].dtype == bool and a.obs["domain_pct"].between(0, 1).all()
    w = halfwidth(load_arrays(model / "reliability.npz")["hist"], 0.9)
    scale = a.obs["interval_scale"].to_numpy()[:, None]
    aware = (a.obs["tissue_model"] == "tissue").to_numpy()     # the rest: tissue-free widths
    assert aware.mean() > 0.9
    np.testing.assert_allclose((a.layers["upper"] - a.X)[aware], (w * scale)[aware], rtol=1e-5,
                               atol=1e-5)
    assert "calibrated" in a.uns["raviso"]
    out = predict_file(model, src, tmp_path / "p.parquet", quiet=True)
    side = pd.read_csv(tmp_path / "p.domain.tsv", sep="\t", index_col=0)
    assert list(side.index) == ids and out.exists()
    np.testing.assert_allclose(side["domain_score"], a.obs["domain_score"], rtol=1e-6)
    assert side["in_domain"].isin([0, 1]).all()


def test_out_of_domain_can_be_an_error(shift, tmp_path):
    from raviso.serve.predict import predict_file

    sh, data, model, _, sets = shift
    G, rows, ids = sets["batch_offset"]
    src = sh.gene_h5ad(tmp_path / "in.h5ad", G, data.gene_names, ids, data.tissue[rows])
    with pytest.raises(RavisoError, match="further from the training data than 99% of held-out "
                                          "donors .--out-of-domain error."):
        predict_file(model, src, tmp_path / "x.h5ad", out_of_domain="error", quiet=True)
    assert not (tmp_path / "x.h5ad").exists()


def test_a_model_without_calibration_or_tissue_free_cv_says_so(shift, tmp_path):
    import shutil

    import anndata as ad

    from raviso.serve.predict import predict_file
    from raviso.trust.domain import NO_CALIBRATION

    sh, data, model, aware, sets = shift
    G, rows, ids = sets["unseen_tissue"]
    src = sh.gene_h5ad(tmp_path / "in.h5ad", G, data.gene_names, ids, data.tissue[rows])
    said = []
    a = ad.read_h5ad(predict_file(aware, src, tmp_path / "a.h5ad", interval=0.9, quiet=True,
                                  warn=said.append))
    assert set(a.obs["tissue_model"]) == {"tissue-free"}
    assert not a.obs["calibrated"].any()
    assert any(f"{len(ids)} sample(s) took the tissue-free path, which the CV behind this MODEL "
               "did not measure" in s for s in said)
    old = tmp_path / "old"                         # a MODEL saved before the calibration existed
    shutil.copytree(model, old)
    meta = (old / "model.json").read_text().replace('"domain": "domain.npz"', '"domain": null')
    (old / "model.json").write_text(meta)
    said.clear()
    predict_file(old, src, tmp_path / "o.h5ad", quiet=True, warn=said.append)
    assert NO_CALIBRATION in said
    with pytest.raises(RavisoError, match="--out-of-domain error: this MODEL has no "
                                          "applicability-domain calibration"):
        predict_file(old, src, tmp_path / "e.h5ad", out_of_domain="error", quiet=True)
