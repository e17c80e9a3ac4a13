"""The report's reader-first sections (issue 10, item 5), each a list of Markdown lines built from
results.json alone: the leaderboard, the paper's Table 1 beside ours, per tissue, where the errors
are, the training curves, the floors, and the pairwise tests reduced to the pairs that matter.

Older results.json files (no leaderboard, kinds, floors or breakdowns) render what they have: the
leaderboard is recomputed from the trials, missing columns show "–".
"""

from __future__ import annotations

import math

from .breakdown import LEVELS, ROLES
from .leaderboard import best_baseline, leaderboard

# The DTU 02456 paper's Table 1 (mean validation MSE over its 5 folds): our variant -> its number
PAPER_TABLE1 = (("vae_ffnn", "VAE latent + FFNN", 0.321), ("gene_ffnn", "FFNN on raw genes", 0.477),
                ("mean", "mean baseline", 0.485))


def fmt(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.{digits}f}"
    return str(x)


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def board(doc: dict) -> list[dict]:
    return doc.get("leaderboard") or leaderboard(doc)


def _ci(ci) -> str:
    ci = ci or [None, None]
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def leaderboard_section(doc: dict) -> list[str]:
    rows = board(doc)
    best = best_baseline(rows)
    reps = (doc.get("grouping") or {}).get("repeats") or 1
    test = ("corrected repeated k-fold t-test (Bouckaert & Frank 2004) over all "
            f"{reps} x {doc['config']['folds']} folds" if reps > 1
            else "Nadeau-Bengio corrected resampled t-test across folds")
    has_floor = any(r.get("x_floor_heldout_donor") for r in rows)
    head = ["#", "variant", "kind", "MSE", "95% CI", "x held-out-donor floor",
            f"diff vs {best or 'best baseline'}", "p", "p Holm"]
    body = []
    for r in rows:
        vs = r.get("vs_best_baseline") or {}
        body.append([r["rank"], f"**{r['variant']}**" if r["rank"] == 1 else r["variant"],
                     r["kind"], r["mse_mean"], _ci(r.get("mse_ci95")),
                     r.get("x_floor_heldout_donor"),
                     "reference" if r["variant"] == best else vs.get("mean_diff"),
                     vs.get("p"), vs.get("p_holm")])
    out = ["## Leaderboard", "",
           "Mean validation MSE (log2(TPM+1)) over the folds, best first, with a 95% interval "
           "whose variance is corrected for the folds' overlapping training sets. "
           + ("\"x floor\" is MSE / the held-out-donor floor (below). " if has_floor else "")
           + f"Each non-baseline variant is tested against the best baseline ({best or 'none'}) "
           f"with the {test}, Holm-adjusted over those comparisons; a negative difference means "
           "the variant predicts better.", ""]
    return out + table(head, body)


def floors_section(doc: dict) -> list[str]:
    held, noise = doc.get("floor_heldout_donor"), doc.get("noise_floor")
    if not held and not noise:
        return []
    out = ["## Floors (synthetic data)", ""]
    if held:
        out += [f"- **Held-out-donor floor {fmt(held['mean'])}** (per fold "
                + ", ".join(fmt(x) for x in held["per_fold"]) + "): the generator's best "
                "prediction of the observed isoforms for a donor that no model has seen "
                "(`raviso.synth.heldout`: it knows the sample's tissue, state, true gene "
                "expression and depth, not its donor's isoform-share effect nor the measurement "
                "noise). No predictor of unseen donors beats it in expectation; "
                "x floor near 1 means nothing learnable is left."]
        if (doc.get("grouping") or {}).get("grouped_by") != "donor":
            out += ["  These folds are NOT grouped by donor, so a model may learn a validation "
                    "donor's effects from its other samples and beat this floor."]
    if noise:
        out += [f"- Measurement floor {fmt(noise['mean'])} (MSE of the noise-free truth against "
                "the observations): the truth still holds the validation donor's own isoform-share "
                "effect, which donor-grouped CV cannot know, so it is not a bound any model is "
                "expected to reach (and with dropouts in log space the noise is not centred on the "
                "truth, so it is not strictly a lower bound either)."]
    return out + [""]


def paper_section(doc: dict) -> list[str]:
    summ = doc["summary"]
    rows = [[f"{label} (`{v}`)", ref, (summ.get(v) or {}).get("mse_mean")]
            for v, label, ref in PAPER_TABLE1]
    return (["## The paper's Table 1 beside this run", ""]
            + table(["model", "paper (mean MSE, 5 folds)", "this run"], rows)
            + ["Not comparable as numbers: the paper's come from the real GTEx set under the seed "
               "project's pipeline (gene columns not aligned by name, a mean not fitted on the "
               "training fold, \"epochs\" of 101 batches), ours from this store with "
               "donor-grouped folds, so only the ordering within each column can be compared.",
               ""])


def tissue_section(doc: dict, plot: str | None) -> list[str]:
    pt = doc.get("per_tissue")
    if not pt:
        return []
    order = [r["variant"] for r in board(doc) if r["mse_mean"] is not None]
    order = [v for v in order if any(v in e["mse"] for e in pt.values())]
    has_floor = any(e.get("floor_heldout_donor") is not None for e in pt.values())
    head = ["tissue", "n"] + (["held-out floor"] if has_floor else []) + order
    rows = [[t, e["n"]] + ([e.get("floor_heldout_donor")] if has_floor else [])
            + [e["mse"].get(v) for v in order]
            for t, e in sorted(pt.items(), key=lambda kv: (-kv[1]["n"], kv[0]))]
    return (["## Per tissue", "",
             "Validation MSE per tissue (every validation sample of the tissue, all folds), "
             "variants in leaderboard order, tissues by size."
             + (f" ![per tissue]({plot})" if plot else ""), ""] + table(head, rows))


def breakdown_section(doc: dict) -> list[str]:
    summ = doc["summary"]
    order = [r["variant"] for r in board(doc) if r["mse_mean"] is not None]
    if not any((summ.get(v) or {}).get("mse_by_level") for v in order):
        return []
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
    return (["## Where the errors are", "",
             "Within-tissue r: per-isoform Pearson r after centring on each tissue's validation "
             "mean (the pooled r mostly measures how well tissues are told apart). Roles: the "
             "isoform with the highest training mean of its gene is dominant, the others minor, "
             "a gene's only isoform single. Levels: bins of the training-fold mean "
             "log2(TPM+1). Means over folds; n = isoforms in the first trial's bins.", ""]
            + table(["variant", "within-tissue median r", "pooled median r"] + rl + lv, rows))


def curves_section(doc: dict, plot: str | None) -> list[str]:
    hist: dict = {}
    for t in doc["trials"]:
        if t.get("history"):
            hist.setdefault(t["variant"], []).append(t["history"])
    if not hist:
        return []
    rows = []
    for v, hs in hist.items():
        last_t = [h["train_loss"][-1] for h in hs]
        last_v = [h["val_loss"][-1] for h in hs if h.get("val_loss")]
        best_v = [min(h["val_loss"]) for h in hs if h.get("val_loss")]
        rows.append([v, sum(len(h["train_loss"]) for h in hs) / len(hs),
                     sum(last_t) / len(last_t), sum(last_v) / len(last_v) if last_v else None,
                     sum(best_v) / len(best_v) if best_v else None])
    return (["## Training curves", "",
             "Per-epoch training loss and, where the model holds out an inner donor split for "
             "early stopping, its loss on it (never the validation fold), mean over folds."
             + (f" ![training curves]({plot})" if plot else ""), ""]
            + table(["variant", "epochs run (mean)", "last train loss", "last inner-val loss",
                     "best inner-val loss"], rows))


def pairs_section(doc: dict) -> list[str]:
    """Each variant vs the best baseline and vs `mean` (the full table is the appendix)."""
    tests = {(t["a"], t["b"]): t for t in doc.get("tests") or []}
    if not tests:
        return ["## Pairwise tests", "", "Fewer than two variants succeeded on every fold: no "
                "pairwise tests.", ""]
    best = best_baseline(board(doc))
    rows, seen = [], set()
    for ref in [x for x in (best, "mean") if x]:
        for r in board(doc):
            v = r["variant"]
            pair = tests.get((v, ref)) or tests.get((ref, v))
            if v == ref or pair is None or frozenset((v, ref)) in seen:
                continue
            seen.add(frozenset((v, ref)))
            sign = 1 if pair["a"] == v else -1
            c, cr = pair["corrected"], pair.get("corrected_repeated") or pair["corrected"]
            donor = [f["donor"] for f in pair["per_fold"] if f.get("donor")]
            rows.append([f"{v} vs {ref}", None if cr["mean_diff"] is None
                         else sign * cr["mean_diff"], c["p"], cr["p"], cr.get("p_holm"),
                         max((d["paired_t"]["p"] for d in donor if d["paired_t"]["p"]
                              is not None), default=None),
                         min((d["n_donors"] for d in donor), default=None)])
    return (["## Pairwise tests (each variant vs the best baseline and vs mean)", "",
             "Difference = variant - reference in MSE (negative: the variant is better). p NB: "
             "Nadeau-Bengio corrected t-test across the first repeat's folds; p B&F: corrected "
             "repeated k-fold t-test across all folds (the same test when there is one repeat), "
             "Holm-adjusted over all pairs; the per-fold paired t-test on DONOR-averaged errors "
             "(a donor's samples are not independent) shows its largest p over folds. Every pair: "
             "the appendix.", ""]
            + table(["pair", "mean MSE diff", "p NB", "p B&F", "p B&F Holm",
                     "max p per fold (donor-averaged t)", "donors per fold (min)"], rows))
