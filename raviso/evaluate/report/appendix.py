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


def _pooled(v: str, pair: dict) -> list:
    """[donor-level p (paired t, pooled over folds), donors, donors where v's error is lower]."""
    d = pair.get("donor_pooled")
    if not d:
        return [None, None, None]
    return [d["paired_t"]["p"], d["n_donors"], d["a_better"] if pair["a"] == v else d["b_better"]]


def _pair_row(v: str, ref: str, pair: dict) -> list:
    sign = 1 if pair["a"] == v else -1
    c, cr = pair["corrected"], pair.get("corrected_repeated") or pair["corrected"]
    return [f"{v} vs {ref}", None if cr["mean_diff"] is None else sign * cr["mean_diff"], c["p"],
            cr["p"], cr.get("p_holm")] + _pooled(v, pair)


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
                    "is one repeat), Holm-adjusted over all pairs. Donor-level: each donor's "
                    "held-out errors averaged (all folds pooled, so a fold of one donor still "
                    "counts) and paired over donors, a donor's samples not being independent; it "
                    "is not corrected for the folds' shared training rows, so the corrected "
                    "test stays the headline. Per fold: the appendix.", ""]
                   + table(["pair", "mean MSE diff", "p NB", "p B&F", "p B&F Holm",
                            "p donor-level (paired t)", "donors", "variant better for (donors)"],
                           rows))


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



def _fold_ps(pair: dict, donor: bool) -> str:
    """The per-fold paired t-test p-values of a pair, in fold order, as one cell."""
    ps = [((f.get("donor") or {}).get("paired_t") or {}).get("p") if donor else f["paired_t"]["p"]
          for f in pair["per_fold"]]
    return ", ".join(fmt(p, 3) for p in ps)


def _compared(doc: dict) -> list[dict]:
    """The pairs whose per-fold tests are listed: rank 1, and the model that ships, vs the rest."""
    from .verdict import shipped

    rows = board(doc)
    order = [r["variant"] for r in rows if r["mse_mean"] is not None]
    heads = list(dict.fromkeys(order[:1] + [shipped(doc, rows)["variant"]]))
    out, seen = [], set()
    for h in heads:
        for t in doc.get("tests") or []:
            if h in (t["a"], t["b"]) and frozenset((t["a"], t["b"])) not in seen:
                seen.add(frozenset((t["a"], t["b"])))
                out.append(t if t["a"] == h else {**t, "flip": True})
    return out


def fold_tests_section(doc: dict, where: Where = Where()) -> Section:
    """The per-fold paired tests (the paper's test), one row per comparison."""
    pairs = _compared(doc)
    if not pairs:
        return Section([])
    cluster, donors = donors_cluster(doc), any(f.get("donor") for f in doc["folds"])
    head = (["pair (A vs B)", "per-sample paired t p, per fold"
             + (" (PSEUDO-REPLICATED)" if cluster else "")]
            + (["donor-averaged paired t p, per fold", "donor-level p (all folds pooled)",
                "donors", "A better for (donors)"] if donors else []))
    rows = []
    for t in pairs:
        a, b = (t["b"], t["a"]) if t.get("flip") else (t["a"], t["b"])
        rows.append([f"{a} vs {b}", _fold_ps(t, False)]
                    + ([_fold_ps(t, True)] + _pooled(a, t) if donors else []))
    counts = sorted({f["n_donors"] for f in doc["folds"] if f.get("n_donors")})
    span = "" if not counts else (f"{counts[0]}" if counts[0] == counts[-1]
                                  else f"{counts[0]}-{counts[-1]}")
    why = (f" A fold's samples come from only {span} donor{'' if span == '1' else 's'} and a "
           "donor's samples share its "
           "effects, so the per-sample p-values are PSEUDO-REPLICATED (far too small); read the "
           "donor-level ones." if cluster else "")
    one = (" A fold of one donor has no donor-averaged test (\"–\"); the pooled donor-level "
           "test pairs every donor." if 1 in counts else "")
    return Section(["## Appendix: per-fold paired tests", "",
                    "The paper's per-fold paired t-test on the same validation samples, rank 1 "
                    "and the model that ships against each other variant, p-values listed in "
                    "fold order (1, 2, ...)." + why + one, ""] + table(head, rows))
