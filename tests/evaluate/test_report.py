"""The report: its sections in order, and what it says about the statistics, the data and the saved
model, checked on hand-made results documents (plus one cv run end to end)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raviso.evaluate.stats import paired as stats
from raviso.evaluate.stats.floors import spread
from raviso.evaluate.stats.leaderboard import board, choose_saved_model, variant_kind
from raviso.evaluate.report.render import SECTIONS, render, sections
from raviso.evaluate.report.sections import fmt, header_section, leaderboard_section, \
    paper_section
from raviso.evaluate.report.tables import metrics_section, table1_section, tissue_section
from raviso.evaluate.results import pair_tests, summarise

IMPORTED = {"formats": ["matrix:tpm"], "units": "log2(TPM+1)", "imported": True}
COURSE = {"formats": ["course-hdf5"], "units": "log2(TPM+1)", "imported": False}


def make_doc(shift: dict, k: int = 3, donors: int = 4, per_donor: int = 3, noise: float = 0.02,
             kinds: dict | None = None, seed: int = 0, origin=IMPORTED) -> dict:
    """A results document of `k` folds; variant v's per-sample errors are a shared base + shift[v]
    + noise; each fold holds `donors` donors with `per_donor` samples each (tissues A and B)."""
    rng = np.random.default_rng(seed)
    variants, folds, errors = list(shift), [], {}
    for f in range(k):
        n = donors * per_donor
        donor = [f"D{f}-{d}" for d in range(donors) for _ in range(per_donor)]
        base = rng.gamma(4.0, 0.1, n)
        for v in variants:
            errors[(f, v)] = base + shift[v] + rng.normal(0, noise, n)
        folds.append({"fold": f, "repeat": 0, "n_train": 2 * n, "n_test": n,
                      "sample_id": [f"S{f}-{i}" for i in range(n)], "donor": donor,
                      "tissues": {"A": n // 2, "B": n - n // 2}, "n_donors": donors})
    trials = [{"fold": f, "variant": v, "status": "ok", "attempts": 1,
               "mse": float(errors[(f, v)].mean()), "seconds": 1.0}
              for f in range(k) for v in variants]
    summary = summarise(trials, variants, folds)
    for v, kind in (kinds or {}).items():
        summary[v].update(kind=kind, is_baseline=kind == "baseline")
    return {"config": {"store": "/no/such/store", "variants": variants, "folds": k, "seed": 0,
                       "epochs": None, "repeats": 1},
            "data": {"n_samples": k * donors * per_donor, "n_genes": 10, "n_isoforms": 20,
                     "n_tissues": 2, "n_donors": k * donors, "has_truth": False,
                     "origin": origin},
            "grouping": {"k": k, "grouped_by": "donor", "rare_tissues": []},
            "folds": folds, "trials": trials, "summary": summary,
            "tests": pair_tests(errors, variants, folds), "noise_floor": None,
            "floor_heldout_donor": None, "per_tissue": None, "retried_trials": [],
            "failed_trials": [],
            "tune": {"wall_seconds": 1.0, "max_concurrent_trials": 1, "trial_seconds_sum": 1.0,
                     "parallel_efficiency": 1.0, "all_zero_copy": True}}


def text(section) -> str:
    return "\n".join(section.lines)


def test_render_is_the_sections_in_order():
    doc = make_doc({"share_net": 0.0, "gene_ffnn": 0.05, "mean": 0.2})
    parts = sections(doc)
    assert len(parts) == len(SECTIONS) and all(isinstance(s.lines, list) for s in parts)
    assert render(doc) == "\n".join(line for s in parts for line in s.lines) + "\n"
    heads = ["## Leaderboard", "## Table 1", "## Other metrics", "## Pairwise tests", "## Folds",
             "## Trials", "## Appendix"]
    out = render(doc)
    assert [out.index(h) for h in heads] == sorted(out.index(h) for h in heads)


def test_a_trial_metric_is_declared_once(monkeypatch):
    from raviso.evaluate import results

    monkeypatch.setattr(results, "TRIAL_METRICS",
                        results.TRIAL_METRICS + (("attempts", "attempts made", None),))
    doc = make_doc({"share_net": 0.0, "mean": 0.2})
    assert doc["summary"]["share_net"]["attempts_mean"] == 1.0
    assert "attempts made" in text(metrics_section(doc))


def test_per_sample_p_values_are_labelled_pseudo_replicated_where_donors_cluster():
    doc = make_doc({"share_net": 0.0, "mean": 0.05})
    t1 = text(table1_section(doc))
    assert "PSEUDO-REPLICATED" in t1 and "only 4 donors" in t1
    pair = doc["tests"][0]
    row = [ln for ln in t1.splitlines() if ln.startswith("| 1 |")][-1]   # the p-value table
    per_fold = pair["per_fold"][0]
    assert row == f"| 1 | {fmt(per_fold['paired_t']['p'])} | " \
                  f"{fmt(per_fold['donor']['paired_t']['p'])} |"
    # one sample per donor: nothing clusters, the paper's table as it was
    single = make_doc({"share_net": 0.0, "mean": 0.05}, donors=12, per_donor=1)
    assert "PSEUDO-REPLICATED" not in text(table1_section(single))
    assert "the paper's test, done on the same validation samples" in \
        text(table1_section(single))


def test_rank_one_is_tested_against_rank_two_when_both_are_models():
    doc = make_doc({"share_net": 0.0, "ffnn_plus": 0.004, "mean": 0.3}, noise=0.03)
    rows = board(doc)
    assert [r["variant"] for r in rows] == ["share_net", "ffnn_plus", "mean"]
    mse = {v: [t["mse"] for t in doc["trials"] if t["variant"] == v] for v in doc["summary"]}
    ref = stats.corrected_repeated_t(np.subtract(mse["share_net"], mse["ffnn_plus"]),
                                     [24] * 3, [12] * 3, 1)
    top = rows[0]["vs_runner_up"]
    assert top["runner_up"] == "ffnn_plus" and top["p"] == pytest.approx(ref["p"])
    family = [rows[0]["vs_best_baseline"]["p"], rows[1]["vs_best_baseline"]["p"], top["p"]]
    holm = stats.holm(family)
    assert [rows[0]["vs_best_baseline"]["p_holm"], rows[1]["vs_best_baseline"]["p_holm"],
            top["p_holm"]] == pytest.approx(holm)
    lead = text(leaderboard_section(doc))
    verdict = "is better than" if top["p_holm"] < 0.05 else "is NOT significantly better than"
    assert f"**share_net** {verdict} rank 2, ffnn_plus" in lead
    # rank 2 a baseline: no extra test, the test against the best baseline says it
    solo = board(make_doc({"share_net": 0.0, "mean": 0.3}))
    assert "vs_runner_up" not in solo[0]


def test_every_model_is_tested_against_the_best_of_all_baselines_by_kind():
    doc = make_doc({"share_net": 0.0, "my_ridge": 0.05, "mean": 0.1},
                   kinds={"my_ridge": "baseline"})
    rows = board(doc)
    assert variant_kind("my_ridge") == "model"          # not in the registry: kind from summary
    assert rows[0]["vs_best_baseline"]["baseline"] == "my_ridge"
    assert "diff vs my_ridge" in text(leaderboard_section(doc))


def test_a_config_tuned_on_this_store_is_optimistic_and_outside_the_family(tmp_path):
    shifts = {"share_net": 0.0, "gene_ffnn@tuned": -0.05, "gene_ffnn": 0.03, "mean": 0.3}
    store = tmp_path / "store"
    store.mkdir()
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"variant": "gene_ffnn", "search": {"store": str(store)}}))
    doc = make_doc(shifts)
    base = {**doc, "config": {**doc["config"], "variants": ["share_net", "gene_ffnn", "mean"]},
            "trials": [t for t in doc["trials"] if t["variant"] != "gene_ffnn@tuned"]}
    doc["config"].update(store=str(store), tuned_config=str(best))
    rows = {r["variant"]: r for r in board(doc)}
    tuned = rows["gene_ffnn@tuned"]
    assert tuned["rank"] == 1 and tuned["optimistic"]
    assert tuned["vs_best_baseline"]["p_holm"] is None
    # the family (and so every Holm p) is that of the run without the tuned column
    ref = {r["variant"]: r for r in board(base)}
    for v in ("share_net", "gene_ffnn"):
        assert rows[v]["vs_best_baseline"]["p_holm"] == \
            pytest.approx(ref[v]["vs_best_baseline"]["p_holm"])
    assert rows["share_net"]["vs_runner_up"]["runner_up"] == "gene_ffnn"
    lead = text(leaderboard_section(doc))
    assert "**gene_ffnn@tuned is optimistic**" in lead and "not in family" in lead
    # tuned on another store: an ordinary member of the family
    best.write_text(json.dumps({"variant": "gene_ffnn", "search": {"store": "/elsewhere"}}))
    assert not {r["variant"]: r for r in board(doc)}["gene_ffnn@tuned"]["optimistic"]


def test_save_model_saves_the_winner_or_says_a_baseline_won():
    savable = {"share_net", "gene_ffnn"}.__contains__
    won = choose_saved_model(make_doc({"share_net": 0.0, "mean": 0.3}), savable)
    assert won["variant"] == won["winner"] == "share_net" and "saved the winner" in won["note"]
    doc = make_doc({"tissue_mean": 0.0, "gene_ffnn": 0.1, "mean": 0.3})
    lost = choose_saved_model(doc, savable)
    assert (lost["variant"], lost["winner"], lost["winner_kind"]) == \
        ("gene_ffnn", "tissue_mean", "baseline")
    assert lost["note"].startswith("a baseline, tissue_mean, won") and "gene_ffnn" in lost["note"]
    doc["saved_model"] = lost
    assert f"`--save-model`: {lost['note']}" in text(leaderboard_section(doc))


def test_per_tissue_mse_has_n_sd_and_a_donor_level_interval():
    rng = np.random.default_rng(1)
    err = rng.gamma(2.0, 0.2, 12)
    rows = np.arange(12) % 6                      # 6 samples, each in two repeats
    donors = np.array(["a", "a", "b", "b", "c", "c"] * 2)
    s = spread(err, rows, donors)
    per_sample = [err[rows == i].mean() for i in range(6)]
    per_donor = np.array([err[donors == d].mean() for d in "abc"])
    assert s["sd"] == pytest.approx(np.std(per_sample, ddof=1))
    half = 4.302652729911275 * per_donor.std(ddof=1) / np.sqrt(3)     # t(0.975, 2)
    assert s["ci95"] == pytest.approx([per_donor.mean() - half, per_donor.mean() + half])
    assert (s["unit"], s["n_units"]) == ("donor", 3)
    doc = make_doc({"share_net": 0.0, "mean": 0.3})
    doc["per_tissue"] = {"A": {"n": 6, "n_donors": 3, "mse": {"share_net": 0.4, "mean": 0.7},
                               "spread": {"share_net": s, "mean": s}}}
    out = text(tissue_section(doc))
    assert "share_net 95% CI" in out and "t-interval of the tissue's MSE over its donors" in out
    assert f"| A | 6 | 3 | 0.4000 | {s['sd']:.4f} |" in out


def test_the_report_adapts_to_real_data():
    doc = make_doc({"tissue_mean": 0.0, "gene_ffnn": 0.1, "mean": 0.3})
    doc["config"]["folds"] = 5                       # asked for 5, the scheme used 3
    assert "3-fold CV" in text(header_section(doc))
    lead = text(leaderboard_section(doc))
    assert "x held-out-donor floor" not in lead and "x floor" not in lead
    assert "the baseline tissue_mean is the best predictor here; a baseline winning means" in lead
    assert paper_section(doc).lines == []
    assert "## The paper's Table 1" not in render(doc)
    doc["data"]["origin"] = COURSE
    assert "## The paper's Table 1" in text(paper_section(doc))
    won = make_doc({"share_net": 0.0, "mean": 0.3})
    assert "For prediction: share_net is the best predictor here" in \
        text(leaderboard_section(won))


@pytest.mark.ray
def test_cv_on_a_store_without_truth_reports_real_data_and_the_saved_model(tmp_path,
                                                                            ray_session):
    from cvdata import tiny_labelled

    from raviso.data.store import write_store
    from raviso.evaluate.cv import run_cv

    d = tiny_labelled()
    meta = dict(sample_id=d["sample_id"], tissue=d["tissue"], donor=d["donor"])
    write_store(tmp_path / "store", d["genes"], gtex_gene=dict(X=d["G"], **meta),
                gtex_isoform=dict(X=d["Y"], **meta), isoforms=d["isoforms"],
                isoform_gene=d["isoform_gene"])
    lines: list[str] = []
    out = run_cv(tmp_path / "store", variants="tissue_mean,gene_ffnn", folds=3, epochs=2,
                 save_model=True, out=tmp_path / "cv", progress=lines.append)
    doc = json.loads((out / "results.json").read_text())
    saved = doc["saved_model"]
    assert saved["variant"] == "gene_ffnn" and (out / "model").is_dir()
    assert any(ln == f"--save-model: {saved['note']}" for ln in lines)
    if saved["winner"] == "tissue_mean":
        assert saved["note"].startswith("a baseline, tissue_mean, won")
    report = (out / "report.md").read_text()
    assert saved["note"] in report and "For prediction:" in report
    assert "x held-out-donor floor" not in report and "## Floors" not in report
    assert "## The paper's Table 1" not in report and "3-fold CV" in report
