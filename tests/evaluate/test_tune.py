"""Hyperparameter search: the search sees only the rows it is given (scramble test),
a crashed trial resumes from its checkpoint onto the same curve, best.json round-trips into
`raviso fit --config`, and nested `raviso cv --tune` records a config per outer fold.

Ray tests are two small Tune runs on the shared session (a search of 3 trials, a nested cv of
2 folds x 2 trials) on the tiny store of tests/cvdata.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from cvdata import tiny_labelled, write_tiny_store

from raviso.core.errors import RavisoError
from raviso.data import make_folds
from raviso.data.labelled import Labelled
from raviso.evaluate.config import TuneConfig
from raviso.evaluate.tune.search import config_curve, inner_splits
from raviso.evaluate.tune.space import (best_doc, default_space, read_best, read_space,
                                        tune_domains)

SPACE = {"lr": {"loguniform": [1e-3, 3e-2]}, "hidden": {"choice": ["8", "16,8"]},
         "batch_size": 16}


def labelled(seed=0) -> Labelled:
    d = tiny_labelled(seed=seed)
    iso_gene = np.array([d["genes"].index(g) for g in d["isoform_gene"]], np.int64)
    return Labelled(sample_id=np.array(d["sample_id"]), tissue=np.array(d["tissue"]),
                    donor=np.array(d["donor"]), genes=d["G"], isoforms=d["Y"],
                    gene_names=d["genes"], isoform_names=d["isoforms"], isoform_gene=iso_gene,
                    truth=d["truth"])


def outer(data, k=3):
    """(outer training rows of fold 0, the same data with fold 0's validation rows scrambled:
    NaN expression, another tissue, a donor shared with a training row)."""
    folds = make_folds(data.tissue, data.donor, k=k, seed=0)
    train, val = folds.split(0)
    genes, iso = data.genes.copy(), data.isoforms.copy()
    genes[val], iso[val] = np.nan, np.nan
    tissue, donor = data.tissue.copy(), data.donor.copy()
    tissue[val], donor[val] = "Scrambled", donor[train[0]]
    return train, dataclasses.replace(data, genes=genes, isoforms=iso, tissue=tissue,
                                      donor=donor, truth=None)


def curve(data, rows, options, epochs=4):
    splits = inner_splits(data, rows, TuneConfig(inner_folds=3, seed=0))
    opts = {"seed": 0, "epochs": epochs, "batch_size": 16, **options}
    return [score for _, score, _ in config_curve(data, splits, "gene_ffnn", opts)]


# -- no Ray ------------------------------------------------------------------------------------
def test_inner_splits_partition_the_given_rows_by_donor():
    data = labelled()
    train = outer(data)[0]
    splits = inner_splits(data, train, TuneConfig(inner_folds=3, seed=0))
    vals = np.concatenate([va for _, va in splits])
    assert sorted(vals) == sorted(train)                       # every given row once, no other
    for tr, va in splits:
        assert not set(data.donor[tr]) & set(data.donor[va])   # a donor on one side only
        assert sorted(np.concatenate([tr, va])) == sorted(train)


def test_scrambled_outer_validation_rows_change_nothing():
    data = labelled()
    train, scrambled = outer(data)
    opts = {"lr": 1e-2, "hidden": "8"}
    clean = curve(data, train, opts)
    assert len(clean) == 4 and all(np.isfinite(clean))
    assert curve(scrambled, train, opts) == clean              # bit for bit
    assert clean[-1] < clean[0]                                # it learns


def test_spaces_and_best_json_round_trip(tmp_path):
    assert set(default_space("gene_ffnn")) >= {"lr", "hidden", "batch_size"}
    with pytest.raises(RavisoError, match="no default search space"):
        default_space("mean")
    assert set(tune_domains(SPACE)) == set(SPACE) and tune_domains(SPACE)["batch_size"] == 16
    bad = tmp_path / "space.json"
    for text, msg in (('{"lr": {"loguniform": [0, 1]}}', "bad dimension lr"),
                      ('{"nope": 1}', "takes no option"), ('{"epochs": {"int": [1, 9]}}',
                                                           "not a search dimension"),
                      ("[1]", "non-empty JSON object"), ("{", "not a JSON")):
        bad.write_text(text)
        with pytest.raises(RavisoError, match=msg) as e:
            read_space(bad, "gene_ffnn")
        assert str(bad) in str(e.value)
    bad.write_text(json.dumps({"space": SPACE}))
    assert read_space(bad, "gene_ffnn") == SPACE
    doc = best_doc("gene_ffnn", {"lr": np.float64(0.01), "hidden": "8", "epochs": 3}, 0.5, 3,
                   "t1", {"trials": 2})
    (tmp_path / "best.json").write_text(json.dumps(doc))
    assert read_best(tmp_path) == ("gene_ffnn", {"lr": 0.01, "hidden": "8", "epochs": 3})
    (tmp_path / "best.json").write_text(json.dumps({**doc, "options": {"alpha": 1}}))
    with pytest.raises(RavisoError, match="does not take: alpha"):
        read_best(tmp_path / "best.json")


def test_fit_config_trains_the_tuned_options(tmp_path):
    from raviso.serve.fit import fit_store

    store, _ = write_tiny_store(tmp_path / "store")
    doc = best_doc("gene_ffnn", {"lr": 0.01, "hidden": "8", "epochs": 2, "batch_size": 16},
                   0.5, 2, "t1", {})
    (tmp_path / "best.json").write_text(json.dumps(doc))
    model = fit_store(store, out=tmp_path / "model", tuned_config=tmp_path / "best.json",
                      cv_folds=0)
    meta = json.loads((model / "model.json").read_text())
    reg = json.loads((model / "regressor" / "regressor.json").read_text())
    assert meta["variant"] == "gene_ffnn" and reg["hidden"] == [8]
    assert reg["options"]["lr"] == 0.01 and reg["history"]["epochs_run"] == 2


# -- Ray ---------------------------------------------------------------------------------------
@pytest.mark.ray
def test_search_sees_training_rows_only_and_resumes(tmp_path, ray_session, monkeypatch):
    import raviso.evaluate.tune.search as tune_mod
    from raviso.evaluate.config import TuneConfig
    from raviso.evaluate.tune.search import SearchRun, search, write_search

    data = labelled()
    train, scrambled = outer(data)
    monkeypatch.setattr(tune_mod, "FAULTS", {"fail_once_marker": str(tmp_path / "failed"),
                                             "fail_once_epoch": 3})
    cfg = TuneConfig(variant="gene_ffnn", trials=3, max_epochs=4, inner_folds=3, seed=0,
                     scheduler="fifo")
    out = search(scrambled, train, SPACE, cfg, SearchRun(tmp_path / "tune", checkpoint_every=2),
                 base_options={"seed": 0})
    assert (tmp_path / "failed").exists()                     # one trial crashed at epoch 3 ...
    assert len(out.trials) == 3 and all(t["status"] == "completed" for t in out.trials)
    for t in out.trials:      # ... and every curve is the clean data's (1 torch thread in a
        # trial, the test's own count here: equal to float rounding; a NaN row would show)
        np.testing.assert_allclose(t["curve"], curve(data, train, t["config"]), rtol=1e-6,
                                   err_msg=str(t))
    best = min(out.trials, key=lambda t: t["best_val_mse"])
    assert out.best["inner_val_mse"] == best["best_val_mse"]
    assert out.best["options"]["epochs"] == best["best_epoch"]
    assert out.best["search"]["rows"] == len(train)
    (tmp_path / "out").mkdir()
    write_search(tmp_path / "out", out)
    table = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert len(table) == 3 and {"config/lr", "curve", "status"} <= set(table.columns)
    assert (tmp_path / "out" / "search.png").stat().st_size > 1000
    assert read_best(tmp_path / "out")[0] == "gene_ffnn"


@pytest.mark.ray
def test_nested_cv_tunes_inside_each_outer_fold(tmp_path, ray_session):
    from raviso.evaluate.cv import run_cv

    store, _ = write_tiny_store(tmp_path / "store")
    out = run_cv(store, variants="gene_ffnn,mean", folds=2, epochs=3, seed=0,
                 out=tmp_path / "cv", tune=2, variant_options={"batch_size": 16},
                 progress=lambda line: None)
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["variants"] == ["gene_ffnn", "mean", "gene_ffnn@tuned"]
    tuning = doc["tuning"]
    assert [r["fold"] for r in tuning["per_fold"]] == [0, 1]
    for r in tuning["per_fold"]:
        assert r["trials"] == 2 and 1 <= r["options"]["epochs"] <= 3
        assert (out / "tuning" / f"fold{r['fold']}_gene_ffnn" / "best.json").exists()
        # each outer fold's search saw that fold's training rows only
        best = json.loads((out / "tuning" / f"fold{r['fold']}_gene_ffnn" / "best.json")
                          .read_text())
        assert best["search"]["rows"] == doc["folds"][r["fold"]]["n_train"]
    assert doc["summary"]["gene_ffnn@tuned"]["folds_ok"] == 2
    assert "Nested tuning" in (out / "report.md").read_text()


def test_bad_tuning_inputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    from test_bad_input import assert_one_line_error, run_cli

    store, _ = write_tiny_store(tmp_path / "store")
    out = tmp_path / "out"
    (tmp_path / "space.json").write_text('{"lr": {"uniform": [1, 0]}}')
    (tmp_path / "best.json").write_text(json.dumps(best_doc("gene_ffnn", {"lr": 0.01}, 0.5, 1,
                                                            "t", {})))
    for args, needle in (
            (["tune", store, "--variant", "mean"], "no default search space"),
            (["tune", store, "--variant", "nope"], "unknown variant"),
            (["tune", store, "--variant", "gene_ffnn", "--space", tmp_path / "space.json"],
             "space.json"),
            (["cv", store, "--variants", "gene_ffnn", "--tune", "2", "--config",
              tmp_path / "best.json"], "exclude each other"),
            (["fit", store, "--variant", "pca_ffnn", "--config", tmp_path / "best.json"],
             "differs from the tuned config")):
        assert_one_line_error(run_cli(capsys, monkeypatch, *args, "--out", out), needle)
        assert not out.exists()


def test_config_plan_gives_every_fold_the_tuned_options(tmp_path):
    from raviso.evaluate.tune.nested import config_plan, options_for
    from raviso.evaluate.report.appendix import tuning_section

    data = labelled()
    folds = make_folds(data.tissue, data.donor, k=3, seed=0)
    tuned = {"lr": 0.01, "hidden": "8", "epochs": 3}
    (tmp_path / "best.json").write_text(json.dumps(best_doc("gene_ffnn", tuned, 0.5, 3, "t",
                                                            {})))
    plan = config_plan(tmp_path / "best.json", folds, {"seed": 0, "epochs": 9})
    assert plan.variants == ["gene_ffnn@tuned"]
    for f in range(folds.k):
        assert options_for(plan.fold_options, f, "gene_ffnn@tuned") == {"seed": 0, **tuned}
        assert options_for(plan.fold_options, f, "gene_ffnn") == {}
    assert plan.final_model("gene_ffnn@tuned", {"seed": 0}) == ("gene_ffnn", {"seed": 0, **tuned})
    assert plan.final_model("mean", {"seed": 0}) == ("mean", {"seed": 0})
    assert "hidden=8, lr=0.01" in "\n".join(tuning_section({"tuning": plan.record}).lines)
