"""The report's tables of numbers: Table 1 (MSE per fold; its per-fold tests are in the appendix),
per tissue, where the errors are, the other metrics and the training curves; each a `Section`.
"""

from __future__ import annotations

from ...core.metrics import LEVELS
from ..engine.scoring import ROLES
from ..stats.leaderboard import best_baseline, board
from .plots import (CURVES_PLOT, FOLD_PLOT, TISSUE_PLOT, mse_grid, plot_curves, plot_folds,
    plot_tissues)
from .sections import Section, Where, ci, table
from .. import results


def donors_cluster(doc: dict) -> bool:
    """Whether some fold holds several validation samples of one donor (samples not independent)."""
    return any(f.get("n_donors") and f["n_donors"] < f["n_test"] for f in doc["folds"])


def table1_section(doc: dict, where: Where = Where()) -> Section:
    summ = doc["summary"]
    variants, rows = mse_grid(doc)
    out = ["## Table 1: validation MSE per fold", ""]
    out += table(["fold"] + variants, rows + [["mean"] + [summ[v]["mse_mean"] for v in variants],
                                              ["sd"] + [summ[v]["mse_sd"] for v in variants]])
    if len(variants) > 1:
        out += ["The per-fold paired tests (the paper's per-fold t-test, per sample and on "
                "donor-averaged errors) are in the appendix, one row per comparison.", ""]
    figs = [plot_folds(doc, where.cv_dir / FOLD_PLOT)] if where.cv_dir else []
    return Section(out, figs)


def _spread_lines(doc: dict, pt: dict) -> list[str]:
    rows = board(doc)
    shown = [v for v in dict.fromkeys([rows[0]["variant"], best_baseline(rows)])
             if v and any((e.get("spread") or {}).get(v) for e in pt.values())]
    if not shown:
        return []
    unit = next(e["spread"][shown[0]]["unit"] for e in pt.values() if e.get("spread"))
    body = [[t, e["n"], e.get("n_donors")] + [x for v in shown for x in (
        e["mse"].get(v), e["spread"][v]["sd"], ci(e["spread"][v]["ci95"]))]
        for t, e in sorted(pt.items(), key=lambda kv: (-kv[1]["n"], kv[0])) if e.get("spread")]
    return ([f"Spread of the leader and the best baseline per tissue: sd of the per-sample MSE "
             f"and a 95% t-interval of the tissue's MSE over its {unit}s"
             + (" (a donor's samples averaged first)" if unit == "donor" else "")
             + "; with few samples the interval is wide and tissues are not told apart.", ""]
            + table(["tissue", "n", "donors"] + [h for v in shown
                                                 for h in (v, f"{v} sd", f"{v} 95% CI")], body))


def tissue_section(doc: dict, where: Where = Where()) -> Section:
    pt = doc.get("per_tissue")
    if not pt:
        return Section([])
    plot = plot_tissues(doc, where.cv_dir / TISSUE_PLOT) if where.cv_dir else None
    order = [r["variant"] for r in board(doc) if r["mse_mean"] is not None]
    order = [v for v in order if any(v in e["mse"] for e in pt.values())]
    has_floor = any(e.get("floor_heldout_donor") is not None for e in pt.values())
    head = ["tissue", "n"] + (["held-out floor"] if has_floor else []) + order
    rows = [[t, e["n"]] + ([e.get("floor_heldout_donor")] if has_floor else [])
            + [e["mse"].get(v) for v in order]
            for t, e in sorted(pt.items(), key=lambda kv: (-kv[1]["n"], kv[0]))]
    return Section(["## Per tissue", "",
                    "Validation MSE per tissue (every validation sample of the tissue, all "
                    "folds), variants in leaderboard order, tissues by size."
                    + (f" ![per tissue]({plot.name})" if plot else ""), ""]
                   + table(head, rows) + _spread_lines(doc, pt), [plot] if plot else [])


def breakdown_section(doc: dict, where: Where = Where()) -> Section:
    summ = doc["summary"]
    order = [r["variant"] for r in board(doc) if r["mse_mean"] is not None]
    if not any((summ.get(v) or {}).get("mse_by_level") for v in order):
        return Section([])
    counts_l, counts_r = {}, {}
    for t in doc["trials"]:
        b = t.get("breakdown") or {}
        counts_l = counts_l or b.get("isoforms_by_level") or {}
        counts_r = counts_r or b.get("isoforms_by_role") or {}
    lv = [f"MSE {x} (n={counts_l.get(x, '–')})" for x in LEVELS]
    rl = [f"MSE {x} (n={counts_r.get(x, '–')})" for x in ROLES if counts_r.get(x)]
    roles = [x for x in ROLES if counts_r.get(x)]
    rows = [[v, summ[v].get("within_tissue_median_r_mean"), summ[v].get("median_pearson_mean")]
            + [(summ[v].get("mse_by_role") or {}).get(x) for x in roles]
            + [(summ[v].get("mse_by_level") or {}).get(x) for x in LEVELS] for v in order]
    return Section(["## Where the errors are", "",
                    "Within-tissue r: per-isoform Pearson r after centring on each tissue's "
                    "validation mean (the pooled r mostly measures how well tissues are told "
                    "apart). Roles: the isoform with the highest training mean of its gene is "
                    "dominant, the others minor, a gene's only isoform single. Levels: bins of the "
                    "training-fold mean log2(TPM+1). Means over folds; n = isoforms in the first "
                    "trial's bins.", ""]
                   + table(["variant", "within-tissue median r", "pooled median r"] + rl + lv,
                           rows))


def metrics_section(doc: dict, where: Where = Where()) -> Section:
    summ, variants = doc["summary"], doc["config"]["variants"]
    keys = [(k, title) for k, title, needs in results.TRIAL_METRICS
            if needs is None or doc.get(needs)]
    return Section(["## Other metrics (mean over folds)", ""]
                   + table(["variant"] + [t for _, t in keys],
                           [[v] + [summ[v].get(f"{k}_mean") for k, _ in keys] for v in variants]))


def curves_section(doc: dict, where: Where = Where()) -> Section:
    hist: dict = {}
    for t in doc["trials"]:
        if t.get("history"):
            hist.setdefault(t["variant"], []).append(t["history"])
    if not hist:
        return Section([])
    plot = plot_curves(doc, where.cv_dir / CURVES_PLOT) if where.cv_dir else None
    rows = []
    for v, hs in hist.items():
        last_t = [h["train_loss"][-1] for h in hs]
        last_v = [h["val_loss"][-1] for h in hs if h.get("val_loss")]
        best_v = [min(h["val_loss"]) for h in hs if h.get("val_loss")]
        rows.append([v, sum(len(h["train_loss"]) for h in hs) / len(hs),
                     sum(last_t) / len(last_t), sum(last_v) / len(last_v) if last_v else None,
                     sum(best_v) / len(best_v) if best_v else None])
    return Section(["## Training curves", "",
                    "Per-epoch training loss and, where the model holds out an inner donor split "
                    "for early stopping, its loss on it (never the validation fold), mean over "
                    "folds." + (f" ![training curves]({plot.name})" if plot else ""), ""]
                   + table(["variant", "epochs run (mean)", "last train loss",
                            "last inner-val loss", "best inner-val loss"], rows),
                   [plot] if plot else [])
