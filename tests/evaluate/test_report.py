"""The report: its sections in order, and what it says about the statistics, the data and the saved
model, checked on hand-made results documents (plus one cv run end to end)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raviso.evaluate.stats import paired as stats
from raviso.evaluate.stats.floors import spread
from raviso.evaluate.stats.leaderboard import board, choose_saved_model, variant_kind
from raviso.evaluate.report.appendix import fold_tests_section, pairs_section
from raviso.evaluate.report.meaning import meaning_section
from raviso.evaluate.report.render import SECTIONS, render, sections
from raviso.evaluate.report.sections import ci, fmt, header_section, paper_section
from raviso.evaluate.report.tables import metrics_section, table1_section, tissue_section
from raviso.evaluate.report.verdict import leaderboard_section
from raviso.evaluate.results import pair_tests, reliability_counts, summarise

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
    heads = ["# raviso", "## What this means", "## Leaderboard", "## Table 1", "## Other metrics",
             "## Pairwise tests", "## Folds", "## Trials", "## Appendix: every pair",
             "## Appendix: per-fold"]
    out = render(doc)
    assert [out.index(h) for h in heads] == sorted(out.index(h) for h in heads)
    assert out.split("\n## ")[1].startswith("What this means")      # the first section


def test_a_trial_metric_is_declared_once(monkeypatch):
    from raviso.evaluate import results

    monkeypatch.setattr(results, "TRIAL_METRICS",
                        results.TRIAL_METRICS + (("attempts", "attempts made", None),))
    doc = make_doc({"share_net": 0.0, "mean": 0.2})
    assert doc["summary"]["share_net"]["attempts_mean"] == 1.0
    assert "attempts made" in text(metrics_section(doc))


def test_per_fold_p_values_are_one_row_per_comparison_in_the_appendix():
    doc = make_doc({"share_net": 0.0, "gene_ffnn": 0.02, "mean": 0.05}, k=5)
    assert "PSEUDO-REPLICATED" not in text(table1_section(doc))    # moved out of Table 1
    app = text(fold_tests_section(doc))
    assert "PSEUDO-REPLICATED" in app and "only 4 donors" in app
    pair = next(t for t in doc["tests"] if {t["a"], t["b"]} == {"share_net", "mean"})
    rows = [ln for ln in app.splitlines() if ln.startswith("| share_net vs ")]
    assert len(rows) == 2                                       # rank 1 vs each, not per fold
    row = next(ln for ln in rows if ln.startswith("| share_net vs mean |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == ", ".join(fmt(f["paired_t"]["p"], 3) for f in pair["per_fold"])
    assert cells[2] == ", ".join(fmt(f["donor"]["paired_t"]["p"], 3) for f in pair["per_fold"])
    assert cells[3:] == [fmt(pair["donor_pooled"]["paired_t"]["p"]), "20",
                         str(pair["donor_pooled"]["a_better"])]
    assert len(cells) == 6                                      # not 2 columns per fold
    # one sample per donor: nothing clusters, no pseudo-replication warning
    single = make_doc({"share_net": 0.0, "mean": 0.05}, donors=12, per_donor=1)
    assert "PSEUDO-REPLICATED" not in text(fold_tests_section(single))


def test_the_donor_level_test_pools_folds_of_one_donor():
    """6 folds of one donor each: every per-fold donor test is "–", the pooled one pairs all 6
    donor means (recomputed here from the per-sample errors make_doc drew)."""
    shifts = {"recommended": 0.0, "isoform_fraction_tissue": 0.03, "mean": 0.2}
    doc = make_doc(shifts, k=6, donors=1, per_donor=4, noise=0.02, seed=4)
    rng = np.random.default_rng(4)                              # make_doc's draws, replayed
    means = {v: [] for v in shifts}
    for _ in range(6):
        base = rng.gamma(4.0, 0.1, 4)
        for v in shifts:
            means[v].append((base + shifts[v] + rng.normal(0, 0.02, 4)).mean())
    ref = stats.paired_t(means["recommended"], means["isoform_fraction_tissue"])
    pair = next(t for t in doc["tests"]
                if {t["a"], t["b"]} == {"recommended", "isoform_fraction_tissue"})
    assert [f["donor"]["paired_t"]["p"] for f in pair["per_fold"]] == [None] * 6
    assert pair["donor_pooled"]["n_donors"] == 6
    assert pair["donor_pooled"]["paired_t"]["p"] == pytest.approx(ref["p"], rel=1e-9)
    body = text(pairs_section(doc))
    assert f"| recommended vs isoform_fraction_tissue | {fmt(ref['mean_diff'])}" \
        in body and f"| {fmt(ref['p'])} | 6 |" in body
    app = text(fold_tests_section(doc))
    assert "–, –, –, –, –, –" in app and "the pooled donor-level test pairs every donor" in app


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
    assert "`raviso fit` ships **recommended**, which this run did not score (add it: " \
        "`--variants recommended,...`); of the variants scored, the best is the baseline " \
        "tissue_mean" in lead
    assert paper_section(doc).lines == []
    assert "## The paper's Table 1" not in render(doc)
    doc["data"]["origin"] = COURSE
    assert "## The paper's Table 1" in text(paper_section(doc))
    won = make_doc({"share_net": 0.0, "mean": 0.3})
    won["saved_model"] = {"variant": "share_net", "note": "saved the winner, share_net (rank 1)"}
    assert "For prediction: this run saved **share_net**: MSE " in text(leaderboard_section(won))


def with_trust(doc: dict, v: str, coverage: float) -> dict:
    """`doc` with hand-made results.json ``reliability`` and ``intervals`` blocks for `v`."""
    doc["reliability"] = {v: {"n_isoforms": 5000, "n_reliable": 1234, "n_no_r2": 3,
                              "min_r2": 0.5, "median_r2": 0.21}}
    doc["intervals"] = {v: {"0.8": {"coverage": coverage - 0.1, "mean_halfwidth": 0.3},
                            "0.9": {"coverage": coverage, "mean_halfwidth": 0.42}}}
    return doc


def _row(doc: dict, v: str) -> dict:
    return next(r for r in board(doc) if r["variant"] == v)


def test_what_this_means_says_plainly_when_a_baseline_is_as_good():
    """6 donors in 3 folds, recommended tied with the best baseline, intervals under-covering."""
    doc = with_trust(make_doc({"recommended": 0.0, "share_net": 0.002,
                               "isoform_fraction_tissue": 0.001, "mean": 0.2},
                              donors=2, noise=0.03), "recommended", 0.812)
    rec, base = _row(doc, "recommended"), _row(doc, "isoform_fraction_tissue")
    vs = rec["vs_best_baseline"]
    assert vs["baseline"] == "isoform_fraction_tissue" and vs["p_holm"] >= 0.05   # the case
    first = text(meaning_section(doc))
    plain = (f"no better than isoform_fraction_tissue; a baseline is as good here "
             f"(isoform_fraction_tissue's {base['mse_mean']:.4g}; difference "
             f"{vs['mean_diff']:+.4g}, {100 * vs['mean_diff'] / base['mse_mean']:+.1f}%, "
             f"Holm-corrected p {vs['p_holm']:.3g})")
    assert first.startswith("## What this means\n")
    assert ("**The model that ships: recommended** (what `raviso fit` ships). On donors it never "
            f"saw its mean squared error is {rec['mse_mean']:.4g} (log2(TPM+1) scale; 95% CI "
            f"{ci(rec['mse_ci95'])}): **{plain}**.") in first
    pair = next(t for t in doc["tests"]
                if {t["a"], t["b"]} == {"recommended", "isoform_fraction_tissue"})
    wins = pair["donor_pooled"]["a_better" if pair["a"] == "recommended" else "b_better"]
    assert f"Paired over the 6 donors (each donor's held-out error averaged, all folds pooled), " \
           f"its error was lower for {wins} of them" in first
    assert "**1,234 of 5,000 isoforms (24.7%) are `reliable`** (out-of-fold R^2 >= 0.5; median " \
           "R^2 0.21)" in first and "3 barely vary out of fold" in first
    assert "**90% prediction intervals covered 0.812**" in first and "under-cover" in first
    assert "With 6 donors use `--fold-scheme logo` (leave-one-donor-out: 6 folds, each trained " \
           "on 5 donors)" in first
    assert "Expect predictions no better than isoform_fraction_tissue's" in first
    assert "`raviso predict --interval 0.95`" in first
    assert (f"For prediction: `raviso fit` ships **recommended**: MSE {rec['mse_mean']:.4g} "
            f"(95% CI {ci(rec['mse_ci95'])}) on donors it never saw, {plain}.") \
        in text(leaderboard_section(doc))


def test_what_this_means_when_the_model_wins():
    doc = with_trust(make_doc({"recommended": 0.0, "pca_tissue_ridge": 0.08, "mean": 0.3},
                              k=5, noise=0.01), "recommended", 0.903)
    doc["grouping"]["scheme"] = "kfold"
    rec, base = _row(doc, "recommended"), _row(doc, "pca_tissue_ridge")
    vs = rec["vs_best_baseline"]
    assert vs["p_holm"] < 0.05 and vs["mean_diff"] < 0                          # the case
    first = text(meaning_section(doc))
    better = (f"better than the best baseline, pca_tissue_ridge (pca_tissue_ridge's "
              f"{base['mse_mean']:.4g}; difference {vs['mean_diff']:+.4g}, "
              f"{100 * vs['mean_diff'] / base['mse_mean']:+.1f}%, Holm-corrected p "
              f"{vs['p_holm']:.3g})")
    assert f"**{better}**." in first
    assert "held their nominal level" in first and "under-cover" not in first
    assert "a baseline is as good" not in first and "--fold-scheme logo" not in first
    assert "With 20 donors" not in first                        # 20 donors, 4 per fold
    assert "read single isoforms only where `reliable` is true" in first
    assert f"on donors it never saw, {better}." in text(leaderboard_section(doc))


def test_what_this_means_when_a_baseline_predicts_better():
    doc = make_doc({"isoform_fraction_tissue": 0.0, "recommended": 0.08, "mean": 0.3}, k=5,
                   noise=0.01)
    vs = _row(doc, "recommended")["vs_best_baseline"]
    assert vs["p_holm"] < 0.05 and vs["mean_diff"] > 0                          # the case
    first = text(meaning_section(doc))
    assert "**worse than the best baseline, isoform_fraction_tissue (" in first
    assert "a baseline predicts better here**" in first
    assert "Expect predictions worse than isoform_fraction_tissue's" in first
    assert "A baseline better than the trained model means" in text(leaderboard_section(doc))


def test_what_this_means_when_the_model_fit_ships_was_not_scored():
    doc = make_doc({"share_net": 0.0, "isoform_fraction_tissue": 0.05, "mean": 0.3})
    first = text(meaning_section(doc))
    assert "**The model that ships, recommended** (what `raviso fit` ships), **was not " \
           "scored** by this run" in first
    assert f"the best is share_net, MSE {_row(doc, 'share_net')['mse_mean']:.4g}" in first
    assert "`raviso cv STORE --variants recommended,isoform_fraction_tissue`" in first
    assert "not recorded (it was not scored)" in first and "not measured for recommended" in first
    assert "`raviso fit` ships **recommended**, which this run did not score" in \
        text(leaderboard_section(doc))


def test_reliability_counts_say_how_many_isoforms_predict_would_flag():
    from raviso.trust.reliability import OofAccumulator

    rng = np.random.default_rng(2)
    oof = {}
    for f in range(3):
        Y = np.stack([rng.normal(5, 1, 10), rng.normal(3, 1, 10), np.full(10, 2.0),
                      rng.normal(1, 1, 10)], axis=1)
        pred = np.stack([Y[:, 0] + rng.normal(0, 0.1, 10), rng.normal(3, 1, 10),
                         np.full(10, 2.0), 0.9 * Y[:, 3]], axis=1)
        acc = OofAccumulator(np.zeros(4))
        acc.add(pred, Y)
        oof[(f, "share_net")] = acc.result()
        if f < 2:
            oof[(f, "partial")] = acc.result()                 # a fold missing: not counted
    out = reliability_counts(oof, ["share_net", "partial", "mean"], 3)
    assert list(out) == ["share_net"]
    got = out["share_net"]
    # isoforms 0 and 3 are predicted well, 1 is noise (R^2 < 0), 2 does not vary (no R^2)
    assert {k: got[k] for k in ("n_isoforms", "n_reliable", "n_no_r2", "min_r2")} == \
        {"n_isoforms": 4, "n_reliable": 2, "n_no_r2": 1, "min_r2": 0.5}
    assert 0.9 < got["median_r2"] < 1.0


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
    assert report.split("\n## ")[1].startswith("What this means")
    rel = doc["reliability"]["gene_ffnn"]                    # from the trials' out-of-fold arrays
    assert rel["n_isoforms"] == doc["data"]["n_isoforms"] and 0 <= rel["n_reliable"] <= \
        rel["n_isoforms"] - rel["n_no_r2"]
    assert f"**{rel['n_reliable']:,} of {rel['n_isoforms']:,} isoforms" in report
    assert "x held-out-donor floor" not in report and "## Floors" not in report
    assert "## The paper's Table 1" not in report and "3-fold CV" in report
