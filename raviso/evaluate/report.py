"""`raviso report CV [--pretrain RUN]`: results.json -> report.md, table1.csv and PNG plots.

Read first to last: the leaderboard (best first, MSE with a corrected CI, x the held-out-donor
floor, the corrected test against the best baseline, Holm-adjusted), the floors, the paper's own
Table 1 numbers beside ours, the paper's Table 1 layout (validation MSE per fold per variant and
its per-fold paired t-test p-values against the first variant), per tissue, where the errors are
(within-tissue r, by expression level, dominant vs minor isoform), the other metrics, training
curves, the pairwise tests that matter (each variant vs the best baseline and vs `mean`, with the
donor-averaged per-fold tests), how the folds were made (donor grouping, pooled rare tissues),
which trials had to be retried, and every pair in an appendix
(`raviso.evaluate.report_sections`). It reads only ``results.json`` (and the run directory for the
pretraining curves), so it can be re-run at any time without Ray.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..core.atomic import atomic_file
from ..core.errors import RavisoError
from ..core.plots import new_figure
from .report_sections import fmt as _fmt, table as _table
from .results import read_results

REPORT = "report.md"
TABLE1 = "table1.csv"
FOLD_PLOT = "mse_per_fold.png"


def mse_grid(doc: dict) -> tuple[list[str], list[list]]:
    """(variants, rows): one row per fold ``[fold, mse per variant...]`` (None where failed)."""
    variants = doc["config"]["variants"]
    by = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    rows = []
    for f in doc["folds"]:
        rows.append([f["fold"] + 1] + [by.get((f["fold"], v), {}).get("mse") for v in variants])
    return variants, rows


def write_table1(doc: dict, path: Path) -> Path:
    variants, rows = mse_grid(doc)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fold"] + variants)
        for row in rows:
            w.writerow([row[0]] + ["" if x is None else f"{x:.6g}" for x in row[1:]])
        w.writerow(["mean"] + ["" if doc["summary"][v]["mse_mean"] is None
                               else f"{doc['summary'][v]['mse_mean']:.6g}" for v in variants])
    return path


def plot_folds(doc: dict, path: Path) -> Path:
    variants, rows = mse_grid(doc)
    fig = new_figure(figsize=(max(5, 1 + 0.9 * len(variants)), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(rows))
    for k, row in enumerate(rows):
        xs = [j + (k - (len(rows) - 1) / 2) * width for j in range(len(variants))]
        ax.bar(xs, [math.nan if v is None else v for v in row[1:]], width, label=f"fold {row[0]}")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("validation MSE, log2(TPM+1)")
    for key, label, style in (("floor_heldout_donor", "held-out-donor floor", "-"),
                              ("noise_floor", "measurement floor", "--")):
        floor = (doc.get(key) or {}).get("mean")
        if floor:
            ax.axhline(floor, color="k", ls=style, lw=1, label=label)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Validation MSE per fold")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def _pair_lookup(doc: dict) -> dict:
    return {(t["a"], t["b"]): t for t in doc.get("tests") or []}


def per_fold_p(doc: dict, a: str, b: str) -> list:
    """The paper's per-fold paired t-test p-values of a vs b (same validation samples)."""
    pair = _pair_lookup(doc).get((a, b)) or _pair_lookup(doc).get((b, a))
    if pair is None:
        return [None] * len(doc["folds"])
    return [f["paired_t"]["p"] for f in pair["per_fold"]]


def _tests_section(doc: dict) -> list[str]:
    tests = doc.get("tests") or []
    if not tests:
        return ["Fewer than two variants succeeded on every fold: no pairwise tests.", ""]
    rows = []
    for t in tests:
        c = t["corrected"]
        ci = c.get("ci95") or [None, None]
        rows.append([f"{t['a']} vs {t['b']}", c["mean_diff"], f"[{_fmt(ci[0])}, {_fmt(ci[1])}]",
                     c["p"], c.get("p_holm"), (t.get("corrected_repeated") or {}).get("p_holm"),
                     t.get("cohens_dz_pooled"),
                     max((f["paired_t"]["p"] for f in t["per_fold"] if f["paired_t"]["p"]
                          is not None), default=None),
                     max((f["wilcoxon"]["p"] for f in t["per_fold"] if f["wilcoxon"]["p"]
                          is not None), default=None)])
    head = ["pair (A vs B)", "mean MSE diff A-B", "95% CI (corrected)", "p corrected (NB)",
            "p Holm", "p B&F Holm", "d_z (pooled)", "max p paired t", "max p Wilcoxon"]
    return (["Differences are A - B in per-sample MSE: negative means A predicts better. "
             "\"corrected\" is the Nadeau-Bengio resampled t-test across folds (variance factor "
             f"1/k + n_test/n_train = {_fmt(tests[0]['corrected']['var_factor'])}), Holm-adjusted "
             "over all pairs (B&F: the corrected repeated k-fold test over every repeat's folds); "
             "the per-fold paired t and Wilcoxon tests pair the same validation samples and the "
             "largest p over folds is shown.", ""] + _table(head, rows))


def render(doc: dict, plots: list[Path], pretrain_plots: list[Path],
           figures: dict | None = None) -> str:
    from . import report_sections as sec
    from .nested import tuning_section

    cfg, data, summ = doc["config"], doc["data"], doc["summary"]
    figures = figures or {}
    variants, rows = mse_grid(doc)
    reps = cfg.get("repeats") or 1
    out = ["# raviso cross-validation report", "",
           f"Store `{cfg['store']}`: {data['n_samples']} labelled samples, "
           f"{data['n_genes']} genes, "
           f"{data['n_isoforms']} isoforms, {data['n_tissues']} tissues"
           + (f", {data['n_donors']} donors" if data.get("n_donors") else "") + ". "
           f"{cfg['folds']}-fold CV" + (f" x {reps} repeats" if reps > 1 else "")
           + f", seed {cfg['seed']}, epochs {cfg.get('epochs') or 'default'}.", ""]
    out += sec.leaderboard_section(doc) + sec.floors_section(doc) + sec.paper_section(doc)
    out += ["## Table 1: validation MSE per fold", ""]
    mean_row = ["mean"] + [summ[v]["mse_mean"] for v in variants]
    sd_row = ["sd"] + [summ[v]["mse_sd"] for v in variants]
    out += _table(["fold"] + variants, rows + [mean_row, sd_row])
    if len(variants) > 1:
        first = variants[0]
        ps = {v: per_fold_p(doc, first, v) for v in variants[1:]}
        out += [f"Per-fold paired t-test p-values, {first} vs each variant (the paper's test, "
                "done on the same validation samples):", ""]
        out += _table(["fold"] + [f"{first} vs {v}" for v in variants[1:]],
                      [[f["fold"] + 1] + [ps[v][i] for v in variants[1:]]
                       for i, f in enumerate(doc["folds"])])
    out += sec.tissue_section(doc, figures.get("tissues")) + sec.breakdown_section(doc)
    out += ["## Other metrics (mean over folds)", ""]
    keys = [("r2_mean", "R2 vs train mean"), ("median_pearson_mean", "median isoform r"),
            ("frac_r_gt_05_mean", "frac r > 0.5"), ("seconds_mean", "trial s")]
    if doc.get("floor_heldout_donor"):
        keys.append(("mse_over_floor_heldout_donor_mean", "x held-out-donor floor"))
    if doc.get("noise_floor"):
        keys.append(("mse_over_noise_floor_mean", "x measurement floor"))
    out += _table(["variant"] + [k[1] for k in keys],
                  [[v] + [summ[v].get(k[0]) for k in keys] for v in variants])
    out += sec.curves_section(doc, figures.get("curves"))
    out += tuning_section(doc)          # nested --tune / --config: chosen configs per fold
    out += sec.pairs_section(doc)
    g = doc["grouping"]
    out += ["## Folds", "",
            f"Stratified by tissue; grouped by {g['grouped_by']}"
            + (" (every donor's samples in one fold)" if g["grouped_by"] == "donor" else "") + ". "
            + (f"Rare tissues (fewer samples than folds, pooled into one stratum): "
               f"{', '.join(g['rare_tissues'])}." if g["rare_tissues"] else "No rare tissues.")
            + (f" Fold scheme: {g['scheme']} with k = {g['k']} (asked for {g['requested_k']}): "
               f"{g['reason']}." if g.get("scheme") else ""), ""]
    out += _table(["fold", "n_train", "n_test", "tissues", "donors"],
                  [[f["fold"] + 1, f["n_train"], f["n_test"], len(f["tissues"]), f["n_donors"]]
                   for f in doc["folds"]])
    out += ["## Trials", ""]
    t = doc["tune"]
    out += [f"Ray Tune: {len(doc['trials'])} trials, up to {t['max_concurrent_trials']} at once, "
            f"wall {_fmt(t['wall_seconds'], 1)} s, busy {_fmt(t['trial_seconds_sum'], 1)} s "
            f"(parallel efficiency {_fmt(t['parallel_efficiency'], 2)}); matrices shared "
            f"zero-copy from the object store: {'yes' if t['all_zero_copy'] else 'NO'}.", ""]
    out += [("Retried trials: " + "; ".join(doc["retried_trials"]) + ".")
            if doc["retried_trials"] else "No trial was retried.", ""]
    if doc["failed_trials"]:
        out += ["**Failed trials** (excluded from the tests): " + "; ".join(doc["failed_trials"])
                + ".", ""]
    out += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    out += [f"![{p.stem}]({p.relative_to(p.parents[1]).as_posix()})" for p in pretrain_plots]
    out += ["", "## Appendix: every pair of variants", ""] + _tests_section(doc)
    return "\n".join(out) + "\n"


def has_curves(run_dir) -> bool:
    """Whether `run_dir` is a pretraining run with per-epoch metrics to plot."""
    from ..core.plots import read_metrics

    if not run_dir:
        return False
    try:
        return bool(read_metrics(run_dir))
    except RavisoError:
        return False


def write_report(cv_dir, pretrain=None) -> Path:
    """Write report.md, table1.csv and the plots into `cv_dir`; return report.md's path."""
    cv_dir = Path(cv_dir)
    doc = read_results(cv_dir)
    from .report_plots import CURVES_PLOT, TISSUE_PLOT, plot_curves, plot_tissues

    plots = [plot_folds(doc, cv_dir / FOLD_PLOT)]
    figures = {k: p.name for k, p in (("tissues", plot_tissues(doc, cv_dir / TISSUE_PLOT)),
                                      ("curves", plot_curves(doc, cv_dir / CURVES_PLOT))) if p}
    pretrain_plots: list[Path] = []
    if pretrain is not None:
        if not Path(pretrain).is_dir():
            raise RavisoError("no such pretraining run directory", pretrain)
        from ..core.plots import plot_pretraining

        pdir = cv_dir / "pretraining"
        pdir.mkdir(exist_ok=True)
        pretrain_plots = [Path(p) for p in plot_pretraining(Path(pretrain), pdir)]
    write_table1(doc, cv_dir / TABLE1)
    with atomic_file(cv_dir / REPORT) as tmp:
        Path(tmp).write_text(render(doc, plots, pretrain_plots, figures))
    return cv_dir / REPORT
