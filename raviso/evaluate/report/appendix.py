"""The report's later sections: tuning, the pairwise tests that matter, the folds, the trials, the
plots and every pair in an appendix; each a `Section`.
"""

from __future__ import annotations

from pathlib import Path

from ..stats.leaderboard import best_baseline, board
from ..tune.nested import TUNED, tuned_name
from .plots import FOLD_PLOT
from .sections import Section, Where, ci, fmt, table
from .tables import donors_cluster


def _opts(options: dict) -> str:
    skip = {"seed", "device"}
    return ", ".join(f"{k}={f'{v:.3g}' if isinstance(v, float) else v}"
                     for k, v in sorted(options.items()) if k not in skip)


def _nested_lines(doc: dict, t: dict) -> list[str]:
    out = ["## Nested tuning", "",
           f"Each `<variant>{TUNED}` column: a search of {t['trials']} trials ({t['algorithm']}, "
           f"{t['scheduler']}) on the outer fold's training rows only, scored on {t['inner_folds']}"
           f" inner donor-grouped folds of them; the best config was then trained on the outer "
           f"training rows and scored on the outer validation fold. Search time "
           f"{t['seconds']:.0f} s.", "",
           "| fold | variant | inner MSE | epochs | stopped early | config |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in t["per_fold"]:
        out.append(f"| {r['fold'] + 1} | {r['variant']} | {r['inner_val_mse']:.5g} | "
                   f"{r['best_epoch']} | {r['stopped_early']}/{r['trials']} | "
                   f"`{_opts(r['options'])}` |")
    out.append("")
    summ = doc["summary"]
    for v in sorted({r["variant"] for r in t["per_fold"]}):
        d, tu = summ.get(v, {}).get("mse_mean"), summ.get(tuned_name(v), {}).get("mse_mean")
        if d is not None and tu is not None:
            out.append(f"Outer-validation MSE, mean over folds: `{v}` with defaults {d:.5g}, "
                       f"tuned {tu:.5g} ({'lower' if tu < d else 'NOT lower'}, "
                       f"{100 * (tu - d) / d:+.1f}%).")
    out += ["", "Searches: " + ", ".join(
        f"[fold {r['fold'] + 1} {r['variant']}](tuning/fold{r['fold']}_{r['variant']}/search.png)"
        for r in t["per_fold"]) + " (curves per trial; best.json and trials.parquet beside)."]
    return out + [""]


def tuning_section(doc: dict, where: Where = Where()) -> Section:
    """What was tuned (`cv --tune N` / `--config`) and the config each fold chose."""
    t = doc.get("tuning")
    if not t:
        return Section([])
    if t["mode"] == "config":
        return Section(["## Tuned config", "",
                        f"`{t['variant']}{TUNED}` uses the fixed config from `{t['config_file']}` "
                        f"on every fold: `{_opts(t['options'])}`. It was not tuned inside these "
                        "folds, so its CV estimate is unbiased only if the config was tuned on "
                        "other data.", ""])
    return Section(_nested_lines(doc, t))


def _pair_row(v: str, ref: str, pair: dict) -> list:
    sign = 1 if pair["a"] == v else -1
    c, cr = pair["corrected"], pair.get("corrected_repeated") or pair["corrected"]
    donor = [f["donor"] for f in pair["per_fold"] if f.get("donor")]
    return [f"{v} vs {ref}", None if cr["mean_diff"] is None else sign * cr["mean_diff"], c["p"],
            cr["p"], cr.get("p_holm"),
            max((d["paired_t"]["p"] for d in donor if d["paired_t"]["p"] is not None),
                default=None),
            min((d["n_donors"] for d in donor), default=None)]


def pairs_section(doc: dict, where: Where = Where()) -> Section:
    """Each variant vs the best baseline and vs `mean` (the full table is the appendix)."""
    tests = {(t["a"], t["b"]): t for t in doc.get("tests") or []}
    if not tests:
        return Section(["## Pairwise tests", "", "Fewer than two variants succeeded on every "
                        "fold: no pairwise tests.", ""])
    rows_b = board(doc)
    best = best_baseline(rows_b)
    rows, seen = [], set()
    for ref in [x for x in (best, "mean") if x]:
        for r in rows_b:
            v = r["variant"]
            pair = tests.get((v, ref)) or tests.get((ref, v))
            if v == ref or pair is None or frozenset((v, ref)) in seen:
                continue
            seen.add(frozenset((v, ref)))
            rows.append(_pair_row(v, ref, pair))
    return Section(["## Pairwise tests (each variant vs the best baseline and vs mean)", "",
                    "Difference = variant - reference in MSE (negative: the variant is better). "
                    "p NB: Nadeau-Bengio corrected t-test across the first repeat's folds; p B&F: "
                    "corrected repeated k-fold t-test across all folds (the same test when there "
                    "is one repeat), Holm-adjusted over all pairs; the per-fold paired t-test on "
                    "DONOR-averaged errors (a donor's samples are not independent) shows its "
                    "largest p over folds. Every pair: the appendix.", ""]
                   + table(["pair", "mean MSE diff", "p NB", "p B&F", "p B&F Holm",
                            "max p per fold (donor-averaged t)", "donors per fold (min)"], rows))


def folds_section(doc: dict, where: Where = Where()) -> Section:
    g = doc["grouping"]
    out = ["## Folds", "",
           f"Stratified by tissue; grouped by {g['grouped_by']}"
           + (" (every donor's samples in one fold)" if g["grouped_by"] == "donor" else "") + ". "
           + (f"Rare tissues (fewer samples than folds, pooled into one stratum): "
              f"{', '.join(g['rare_tissues'])}." if g["rare_tissues"] else "No rare tissues.")
           + (f" Fold scheme: {g['scheme']} with k = {g['k']} (asked for {g['requested_k']}): "
              f"{g['reason']}." if g.get("scheme") else ""), ""]
    return Section(out + table(["fold", "n_train", "n_test", "tissues", "donors"],
                               [[f["fold"] + 1, f["n_train"], f["n_test"], len(f["tissues"]),
                                 f["n_donors"]] for f in doc["folds"]]))


def trials_section(doc: dict, where: Where = Where()) -> Section:
    t = doc["tune"]
    out = ["## Trials", "",
           f"Ray Tune: {len(doc['trials'])} trials, up to {t['max_concurrent_trials']} at once, "
           f"wall {fmt(t['wall_seconds'], 1)} s, busy {fmt(t['trial_seconds_sum'], 1)} s "
           f"(parallel efficiency {fmt(t['parallel_efficiency'], 2)}); matrices shared "
           f"zero-copy from the object store: {'yes' if t['all_zero_copy'] else 'NO'}.", ""]
    out += [("Retried trials: " + "; ".join(doc["retried_trials"]) + ".")
            if doc["retried_trials"] else "No trial was retried.", ""]
    if doc["failed_trials"]:
        out += ["**Failed trials** (excluded from the tests): " + "; ".join(doc["failed_trials"])
                + ".", ""]
    if doc.get("skipped_variants"):
        out += ["Not run (the store's inputs cannot feed them): "
                + "; ".join(f"{v}: {why}" for v, why in doc["skipped_variants"].items()) + ".", ""]
    return Section(out)


def plots_section(doc: dict, where: Where = Where()) -> Section:
    """The fold plot and, with a pretraining run, its curves (drawn here)."""
    figs = []
    if where.cv_dir is not None and where.pretrain is not None:
        from ...core.plots import plot_pretraining

        pdir = where.cv_dir / "pretraining"
        pdir.mkdir(exist_ok=True)
        figs = [Path(p) for p in plot_pretraining(Path(where.pretrain), pdir)]
    out = ["## Plots", ""] + ([f"![{FOLD_PLOT[:-4]}]({FOLD_PLOT})"] if where.cv_dir else [])
    out += [f"![{p.stem}]({p.relative_to(p.parents[1]).as_posix()})" for p in figs]
    return Section(out, figs)


def appendix_section(doc: dict, where: Where = Where()) -> Section:
    tests = doc.get("tests") or []
    out = ["", "## Appendix: every pair of variants", ""]
    if not tests:
        return Section(out + ["Fewer than two variants succeeded on every fold: no pairwise "
                              "tests.", ""])
    rows = []
    for t in tests:
        c = t["corrected"]
        rows.append([f"{t['a']} vs {t['b']}", c["mean_diff"], ci(c.get("ci95")), c["p"],
                     c.get("p_holm"), (t.get("corrected_repeated") or {}).get("p_holm"),
                     t.get("cohens_dz_pooled"),
                     max((f["paired_t"]["p"] for f in t["per_fold"] if f["paired_t"]["p"]
                          is not None), default=None),
                     max((f["wilcoxon"]["p"] for f in t["per_fold"] if f["wilcoxon"]["p"]
                          is not None), default=None)])
    per_sample = " (per sample: pseudo-replicated where donors cluster)"
    head = ["pair (A vs B)", "mean MSE diff A-B", "95% CI (corrected)", "p corrected (NB)",
            "p Holm", "p B&F Holm", "d_z (pooled)", "max p paired t", "max p Wilcoxon"]
    return Section(out + ["Differences are A - B in per-sample MSE: negative means A predicts "
                          "better. \"corrected\" is the Nadeau-Bengio resampled t-test across "
                          "folds (variance factor 1/k + n_test/n_train = "
                          f"{fmt(tests[0]['corrected']['var_factor'])}), Holm-adjusted over all "
                          "pairs (B&F: the corrected repeated k-fold test over every repeat's "
                          "folds); the per-fold paired t and Wilcoxon tests pair the same "
                          "validation samples and the largest p over folds is shown"
                          + (per_sample if donors_cluster(doc) else "") + ".", ""]
                   + table(head, rows))

