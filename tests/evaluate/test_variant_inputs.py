"""Which variants a CV runs and which latents it loads: options given in Python, in a variant
spec string (``share_net[context=vae]``) or in a best.json all reach the trials, and the default
list runs what the store's inputs allow."""

import json

import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.evaluate.engine.inputs import available_variants, latent_runs, parse_variants
from raviso.models.variants import DEFAULT_VARIANTS, make_variant, variant_needs
from tests.cvdata import write_tiny_run, write_tiny_store


def test_latent_runs_reads_the_variant_options():
    opts = {"latent": "vae"}
    assert latent_runs(["share_net"], "RUN", options=opts) == {"vae": "RUN"}
    assert latent_runs(["share_net"], "RUN", options={"share_net": {"context": "ae+pca"}},
                       pretrained_ae="AE") == {"ae": "AE"}
    assert latent_runs(["share_net[context=vae]"], "RUN") == {"vae": "RUN"}
    assert latent_runs(["share_net"], "RUN") == {}
    with pytest.raises(RavisoError, match="--pretrained RUN"):
        latent_runs(["ffnn_plus"], options={"context": "vae"})


def test_latent_runs_reads_a_best_json(tmp_path):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"format": "raviso.tune.best/1", "variant": "share_net",
                                "options": {"context": "vae+pca"}}))
    assert latent_runs(["mean"], "RUN", tuned_config=best) == {"vae": "RUN"}


def test_variant_specs_parse_into_columns_with_their_options():
    names = parse_variants("share_net,share_net[context=vae],ffnn_plus[context=none,hidden=16]")
    assert names == ["share_net", "share_net[context=vae]", "ffnn_plus[context=none,hidden=16]"]
    m = make_variant(names[1], lr=1e-2, epochs=None)
    assert m.context == "vae" and m.opts.lr == 1e-2 and m.opts.epochs == 60
    assert make_variant(names[2]).hidden == (16,) and make_variant(names[2]).context == "none"
    assert variant_needs(names[1]) == {"genes", "tissue", "latent:vae"}
    assert make_variant("share_net", latent="ae").context == "ae"          # the alias
    with pytest.raises(RavisoError, match="takes no option"):
        parse_variants("mean[epochs=3]")
    with pytest.raises(RavisoError, match="bad context"):
        make_variant("share_net[context=pca+none]")


def test_default_list_is_what_fit_ships_and_the_baselines_and_groups_skip_what_they_cannot_feed():
    from raviso.models.variants import BASELINES, PAPER_VARIANTS

    assert DEFAULT_VARIANTS[:3] == ("recommended", "share_net", "share_net[tissue=False]")
    assert set(DEFAULT_VARIANTS[3:]) == set(BASELINES)
    assert available_variants(None) == (list(DEFAULT_VARIANTS), {})   # no pretrained run needed
    names, skipped = available_variants("default,paper,ffnn_plus")
    assert set(skipped) == {"vae_ffnn", "ae_ffnn"} and "--pretrained" in skipped["vae_ffnn"]
    assert names == [*DEFAULT_VARIANTS, "gene_ffnn", "ffnn_plus"]
    assert available_variants("paper", "RUN", "AE") == (list(PAPER_VARIANTS), {})
    assert available_variants("vae_ffnn") == (["vae_ffnn"], {})   # named: run as asked
    with pytest.raises(RavisoError, match="--pretrained RUN"):
        latent_runs(["vae_ffnn"])
    with pytest.raises(RavisoError, match="listed twice"):
        parse_variants("default,mean")


def test_context_columns_are_scaled_and_concatenated():
    from tests.models.test_share_net import world_data

    data = world_data(n=60)
    data.add_latent("vae", data.sample_id, np.random.default_rng(0).normal(
        size=(60, 3)).astype(np.float32))
    rows = np.arange(60)
    widths = {}
    for ctx in ("pca", "vae", "vae+pca", "none"):
        m = make_variant("share_net", context=ctx, n_components=4)
        m.features.fit(data, rows)
        widths[ctx] = m.features(data, rows, "cpu").shape[1] - len(m.tissues_)
    assert widths == {"pca": 4, "vae": 3, "vae+pca": 7, "none": 0}


@pytest.mark.ray
def test_context_reaches_the_trials_by_every_path(tmp_path, ray_session):
    """Python options, a spec string and a best.json each ask for the VAE context; every trial
    runs (the latent is loaded whichever way it was asked for)."""
    from raviso.evaluate.cv import run_cv

    store, d = write_tiny_store(tmp_path / "store")
    run = write_tiny_run(tmp_path / "run", d["genes"])
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"format": "raviso.tune.best/1", "variant": "share_net",
                                "options": {"context": "vae"}}))
    out = run_cv(store, pretrained=run, variants="ffnn_plus,share_net[context=vae+pca]",
                 variant_options={"epochs": 1, "ffnn_plus": {"context": "vae"}},
                 tuned_config=best, folds=2, out=tmp_path / "cv", report=False,
                 progress=lambda s: None)
    doc = json.loads((out / "results.json").read_text())
    got = {(t["variant"], t["status"]) for t in doc["trials"]}
    assert got == {(v, "ok") for v in ("ffnn_plus", "share_net[context=vae+pca]",
                                       "share_net@tuned")}
    assert "skipped_variants" not in doc


@pytest.mark.ray
def test_default_variants_run_on_a_store_without_runs(tmp_path, ray_session):
    from raviso.evaluate.cv import run_cv

    store, _ = write_tiny_store(tmp_path / "store")
    lines = []
    out = run_cv(store, folds=2, epochs=1, out=tmp_path / "cv", report=False,
                 variants="default,paper", progress=lines.append)
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["skipped_variants"]) == {"vae_ffnn", "ae_ffnn"}
    assert any(s.startswith("skipping vae_ffnn: needs a pretrained run") for s in lines)
    assert {t["status"] for t in doc["trials"]} == {"ok"}
    assert {t["variant"] for t in doc["trials"]} == set(DEFAULT_VARIANTS) | {"gene_ffnn"}
    # the model `raviso fit` ships is on the leaderboard, tested against the best baseline
    row = next(r for r in doc["leaderboard"] if r["variant"] == "recommended")
    assert row["mse_mean"] > 0 and row["vs_best_baseline"]["baseline"] in doc["config"]["variants"]


@pytest.mark.ray
def test_context_reaches_the_trials_from_the_command_line(tmp_path, ray_session, capsys,
                                                          monkeypatch):
    from test_bad_input import run_cli

    store, d = write_tiny_store(tmp_path / "store")
    run = write_tiny_run(tmp_path / "run", d["genes"])
    code, out, err = run_cli(capsys, monkeypatch, "cv", store, "--out", tmp_path / "cv",
                             "--variants", "mean,share_net[context=vae]", "--pretrained", run,
                             "--folds", "2", "--epochs", "1")
    assert code == 0, (out, err)
    doc = json.loads((tmp_path / "cv" / "results.json").read_text())
    assert {(t["variant"], t["status"]) for t in doc["trials"]} == {
        ("mean", "ok"), ("share_net[context=vae]", "ok")}
    assert doc["summary"]["share_net[context=vae]"]["kind"] == "model"
