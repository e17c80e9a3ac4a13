"""The floors on a tiny synthetic world, recomputed by brute force from the generator itself, agree
with what `raviso synth` -> convert -> results.json -> report.md say; the observed data of a seed
are unchanged by the held-out-donor file.

Brute force: the generator's own functions, re-run on each sample's state (same random stream),
with 3,000 FRESH donor effects and fresh measurement noise per sample; the mean over them is the
held-out-donor expectation, and its MSE against the observations (minus the Monte-Carlo variance of
that mean) is the floor. No cubature, no table: independent of `raviso.synth.heldout`.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from raviso.synth import world as W
from raviso.synth.generate import CHUNK_ENTRIES, Preset, generate

PRESET = Preset("floors", n_archs4=20, n_gtex=90, n_genes=24, n_isoforms=80)
SEED = 3
DRAWS = 3000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from raviso.io.convert import convert

    root = tmp_path_factory.mktemp("floors")
    info = generate(root / "synth", preset=PRESET, seed=SEED)
    convert(root / "store", root / "synth")
    return root, info


def brute_force(rows_per_block: int):
    """(per-sample measurement floor, per-sample held-out-donor floor, observed) in the world's
    sample order, from the generator's functions only."""
    w = W.build_world(SEED, PRESET.n_archs4, PRESET.n_gtex, PRESET.n_genes, PRESET.n_isoforms)
    noise, held, observed = [], [], []
    for i, r0 in enumerate(range(0, PRESET.n_gtex, rows_per_block)):
        rows = slice(r0, min(r0 + rows_per_block, PRESET.n_gtex))
        rng = np.random.default_rng([SEED, 2, i])           # the block's own stream, as generate
        tissue = w.gtex_tissue[rows]
        h, gene_tpm = W.true_gene_tpm(w, w.tissue_emb[tissue], w.gtex_z[rows],
                                       w.gene_on[tissue], rng, None)
        depth = w.gtex_depth[rows]

        def iso_tpm(q, tissue=tissue, h=h, gene_tpm=gene_tpm):
            logits = (h @ w.iso_latent + w.iso_base + w.iso_tissue[tissue]
                      + q @ w.iso_donor).astype(np.float32)
            share = W.segment_softmax(logits, w.iso_starts, w.iso_counts) * w.iso_on[tissue]
            return (share * (gene_tpm * w.iso_scale)[:, w.iso_gene])[:, w.isoform_order]

        tpm = iso_tpm(w.donor_q[w.gtex_donor[rows]])
        obs = W.measure(tpm.copy(), depth, W.GTEX_ISOFORM, rng).astype(np.float64)
        noise.append(((obs - np.log2(tpm.astype(np.float64) + 1)) ** 2).mean(axis=1))
        fresh = np.random.default_rng(99)
        n = obs.shape[0]
        s1 = np.zeros_like(obs)
        s2 = np.zeros_like(obs)
        for _ in range(DRAWS):
            o = W.measure(iso_tpm(fresh.standard_normal((n, 4)).astype(np.float32)), depth,
                          W.GTEX_ISOFORM, fresh).astype(np.float64)
            s1 += o
            s2 += o * o
        m = s1 / DRAWS
        var = (s2 - DRAWS * m * m) / (DRAWS - 1)
        held.append((((obs - m) ** 2) - var / DRAWS).mean(axis=1))
        observed.append(obs)
    return np.concatenate(noise), np.concatenate(held), np.concatenate(observed)


@pytest.fixture(scope="module")
def brute():
    return brute_force(max(1, CHUNK_ENTRIES // PRESET.n_isoforms))


def test_heldout_file_leaves_the_observed_data_unchanged(tmp_path, store):
    import h5py

    root, _ = store
    generate(tmp_path / "plain", preset=PRESET, seed=SEED, heldout=False)
    assert not (tmp_path / "plain" / "truth_heldout_isoform_expression_norm_transposed.hdf5"
                ).exists()
    for stem in ("gtex_isoform", "truth_isoform", "gtex_gene", "archs4_gene"):
        name = f"{stem}_expression_norm_transposed.hdf5"
        with h5py.File(root / "synth" / name) as a, h5py.File(tmp_path / "plain" / name) as b:
            assert np.array_equal(a["expressions"][:], b["expressions"][:]), name


def test_store_floor_agrees_with_brute_force(store, brute):
    from raviso.data.labelled import Labelled
    from raviso.data.reader import Store

    root, info = store
    noise, held, observed = brute
    data = Labelled.from_store(Store(root / "store"))
    assert np.array_equal(data.isoforms, observed.astype(np.float32))   # same samples, order
    assert data.floor_heldout.mean() == pytest.approx(held.mean(), rel=0.01)
    assert info["gtex_isoform"]["floor_heldout_donor_mse"] == pytest.approx(
        data.floor_heldout.mean(), rel=1e-6)
    # the unseen donor's share effect costs something: the floor lies above the measurement floor
    assert held.mean() > noise.mean() * 1.1
    assert info["gtex_isoform"]["noise_floor_mse"] == pytest.approx(noise.mean(), rel=1e-5)


@pytest.fixture(scope="module")
def cv_doc(store, tmp_path_factory):
    """results.json + report.md of 3-fold CV with --repeats 2 (mean, tissue_mean, gene_ffnn), run
    trial by trial without Ray (`run_trial`), assembled by the real results/report code. This
    world's 5 donors allow one donor partition into 3 folds only, so the plan holds one repeat."""
    from raviso.data.labelled import Labelled
    from raviso.data.reader import Store
    from raviso.evaluate.cv import TuneOutcome, run_trial
    from raviso.evaluate.engine.repeats import repeated_folds
    from raviso.evaluate.report.render import write_report
    from raviso.evaluate.results import build_results, write_results

    root, _ = store
    data = Labelled.from_store(Store(root / "store"))
    folds = repeated_folds(data.tissue, data.donor, k=3, seed=0, repeats=2)
    variants = ["mean", "tissue_mean", "gene_ffnn"]
    trials, errors = [], {}
    for f in range(folds.k):
        for v in variants:
            out = run_trial(data, folds.assignments, f, v, {"epochs": 3, "lr": 1e-3})
            errors[(f, v)] = out.pop("per_sample")
            trials.append({"fold": f, "variant": v, "status": "ok", "attempts": 1,
                           "retried": False, "error": None, **out})
    config = {"store": str(root / "store"), "variants": variants, "folds": 3, "repeats": 2,
              "seed": 0, "epochs": 3}
    doc = build_results(config, data, folds, TuneOutcome(trials, errors, 1.0, 1))
    cv = tmp_path_factory.mktemp("cvdoc")
    write_results(cv, doc, errors)
    write_report(cv)
    return json.loads((cv / "results.json").read_text()), (cv / "report.md").read_text(), data, cv


def test_results_and_report_floors_agree_with_brute_force(cv_doc, brute):
    doc, report, data, _ = cv_doc
    noise, held, _ = brute
    pos = {s: i for i, s in enumerate(data.sample_id)}
    for f in doc["folds"]:
        idx = [pos[s] for s in f["sample_id"]]
        assert f["floor_heldout_donor"] == pytest.approx(held[idx].mean(), rel=0.015)
        assert f["noise_floor"] == pytest.approx(noise[idx].mean(), rel=1e-5)
    block = doc["floor_heldout_donor"]
    assert block["per_fold"] == [f["floor_heldout_donor"] for f in doc["folds"]]
    assert f"Held-out-donor floor {block['mean']:.4f}" in report
    # every "x floor" figure is relative to the held-out-donor floor, fold by fold
    mean_trials = [t for t in doc["trials"] if t["variant"] == "mean"]
    ratio = np.mean([t["mse"] / doc["folds"][t["fold"]]["floor_heldout_donor"]
                     for t in mean_trials])
    board = {r["variant"]: r for r in doc["leaderboard"]}
    assert board["mean"]["x_floor_heldout_donor"] == pytest.approx(ratio, rel=1e-9)
    assert block["over_floor"]["mean"] == pytest.approx(ratio, rel=1e-9)
    row = next(line for line in report.splitlines() if line.startswith("| ") and "| mean |" in line
               and "baseline" in line)
    assert f"{ratio:.4f}" in row
    assert "No model can beat it" not in report
    # per tissue: the floor is the mean over the tissue's validation samples
    t, entry = max(doc["per_tissue"].items(), key=lambda kv: kv[1]["n"])
    rows = [pos[s] for f in doc["folds"] for s in f["sample_id"] if data.tissue[pos[s]] == t]
    assert entry["floor_heldout_donor"] == pytest.approx(data.floor_heldout[rows].mean(), rel=1e-9)


def test_report_sections_in_reading_order(cv_doc):
    doc, report, _, cv = cv_doc
    heads = ["## Leaderboard", "## Floors", "## The paper's Table 1 beside this run",
             "## Table 1: validation MSE per fold", "## Per tissue", "## Where the errors are",
             "## Other metrics", "## Training curves", "## Pairwise tests (each variant vs",
             "## Folds", "## Trials", "## Appendix: every pair"]
    at = [report.index(h) for h in heads]
    assert at == sorted(at)
    assert "| VAE latent + FFNN (`vae_ffnn`) | 0.3210 | – |" in report
    assert "| mean baseline (`mean`) | 0.4850 | " in report
    # leaderboard best first, with kinds
    board = doc["leaderboard"]
    assert [r["mse_mean"] for r in board] == sorted(r["mse_mean"] for r in board)
    assert {r["variant"]: r["kind"] for r in board} == {
        "mean": "baseline", "tissue_mean": "baseline", "gene_ffnn": "paper"}
    assert doc["summary"]["mean"]["is_baseline"] and not doc["summary"]["gene_ffnn"]["is_baseline"]
    lines = report[report.index("## Leaderboard"):report.index("## Floors")].splitlines()
    names = [re.split(r"\s*\|\s*", ln)[2].strip("*") for ln in lines if re.match(r"\| \d", ln)]
    assert names == [r["variant"] for r in board]
    # --repeats 2 on 5 donors: every fold seed gives the same partition, so one repeat is run and
    # the duplicate is never counted as new folds (issue 32); the plan says so
    assert [f["repeat"] for f in doc["folds"]] == [0, 0, 0]
    g = doc["grouping"]
    assert g["repeats"] == 1 and g["repeats_requested"] == 2 and g["seeds"] == [0]
    assert g["note"].startswith("--repeats 2: only 1 distinct partition")
    # training curves recorded per epoch for the FFNN, none for the baselines
    ffnn = [t for t in doc["trials"] if t["variant"] == "gene_ffnn"]
    assert all(len(t["history"]["train_loss"]) == 3 for t in ffnn)
    assert all(t["history"] is None for t in doc["trials"] if t["variant"] == "mean")
    for png in ("training_curves.png", "mse_per_tissue.png"):
        assert (cv / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.ray
def test_cv_repeats_on_ray(store, tmp_path, ray_session):
    """`run_cv(repeats=2)` through Ray Tune: 2 x 2 folds with global ids, the (R, n) plan reaching
    the trials, and the repeated-CV test with R*k - 1 degrees of freedom. Grouped by sample: this
    world's 5 donors give a single donor partition (see cv_doc)."""
    from raviso.evaluate.cv import run_cv

    root, _ = store
    out = run_cv(root / "store", variants="mean,tissue_mean", folds=2, repeats=2,
                 group_by="none", out=tmp_path / "cv", progress=lambda s: None)
    doc = json.loads((out / "results.json").read_text())
    assert [(f["fold"], f["repeat"]) for f in doc["folds"]] == [(0, 0), (1, 0), (2, 1), (3, 1)]
    assert doc["config"]["repeats"] == 2 and doc["grouping"]["n_folds"] == 4
    for f in doc["folds"]:                       # each repeat covers every sample once
        assert f["n_train"] + f["n_test"] == PRESET.n_gtex
    ids = [set(f["sample_id"]) for f in doc["folds"]]
    assert ids[0] | ids[1] == ids[2] | ids[3] and not ids[0] & ids[1]
    pair = doc["tests"][0]
    assert pair["corrected_repeated"]["df"] == 3 and pair["corrected"]["df"] == 1
    for t in doc["trials"]:
        e = np.load(out / "errors" / f"fold{t['fold']}_{t['variant']}.npy")
        assert len(e) == doc["folds"][t["fold"]]["n_test"] and e.mean() == pytest.approx(t["mse"])
