"""The leaderboard section and what it says in sentences under it: whether rank 1 is told apart
from rank 2, which columns are optimistic (tuned on this very store), what the order means for
predicting new samples (the model that ships, against the best baseline) and which model `cv
--save-model` saved.
"""

from __future__ import annotations

from ..stats.leaderboard import best_baseline, board
from .sections import Section, Where, ci, k_folds, table


def _p(x) -> str:
    return "–" if x is None else (f"{x:.2e}" if x < 1e-3 else f"{x:.3g}")


def top_lines(rows: list[dict]) -> list[str]:
    """Rank 1 with the outcome of its test against the runner-up (or the best baseline)."""
    fair = [r for r in rows if r["mse_mean"] is not None and not r.get("optimistic")]
    if len(fair) < 2:
        return []
    top, second = fair[0], fair[1]
    test = top.get("vs_runner_up") or (top.get("vs_best_baseline") if second["is_baseline"]
                                       else None)
    if test is None:
        return [f"Rank 1 ({top['variant']}) is a baseline: no trained variant beat it on mean MSE "
                "(its margins: the p column).", ""]
    p = test.get("p_holm")
    verdict = ("better than" if p is not None and p < 0.05 and (test["mean_diff"] or 0) < 0
               else "NOT significantly better than")
    return [f"**{top['variant']}** is {verdict} rank 2, {second['variant']}: MSE difference "
            f"{test['mean_diff']:.4g}, corrected test p {_p(test['p'])}, Holm-adjusted "
            f"{_p(p)} (in the same family as the tests against the best baseline)"
            + ("; the top two are not told apart by these folds." if "NOT" in verdict else "."),
            ""]


def optimistic_lines(doc: dict, rows: list[dict]) -> list[str]:
    """The tuned-config columns: optimistic when best.json says it was tuned on this store."""
    origin = doc["tuned_origin"] if "tuned_origin" in doc else None
    if origin is None:
        from ..stats.leaderboard import tuned_origin

        origin = tuned_origin(doc["config"])
    if not origin:
        return []
    col = origin.get("column") or "the tuned column"
    if origin["same_store"]:
        return [f"**{col} is optimistic**: its config ({origin['best_json']}) was tuned on this "
                "same store, so the search saw these validation folds. It is ranked but left out "
                "of the significance family and of the rank-1 test.", ""]
    if origin["same_store"] is None:
        return [f"Where {col}'s config ({origin['best_json']}) was tuned is not recorded (or the "
                "file is gone): if it was this store, its estimate is optimistic.", ""]
    return [f"{col}'s config was tuned on another store ({origin['tuned_on']}).", ""]


FIT_MODEL = "recommended"     # what `raviso fit` trains without --variant (raviso/serve/fit.py)
ALPHA = 0.05


def shipped(doc: dict, rows: list[dict]) -> dict:
    """The model these results stand behind: the one this run saved (``saved_model``: `cv
    --save-model`, or `raviso fit`'s own CV), else the one `raviso fit` trains by default. With
    its leaderboard row (None: not scored), the best baseline's row, its test against it, and the
    outcome: better | as_good | worse | no_baseline | unscored."""
    saved = doc.get("saved_model") or {}
    name = saved.get("variant") or FIT_MODEL
    by = {r["variant"]: r for r in rows if r["mse_mean"] is not None}
    base = best_baseline(rows)
    out = {"variant": name, "saved": bool(saved), "row": by.get(name),
           "baseline": by.get(base) if base else None, "test": None, "p": None}
    row = out["row"]
    if row is None:
        return {**out, "outcome": "unscored"}
    if base is None or name == base:
        return {**out, "outcome": "no_baseline" if base is None else "as_good"}
    test = row.get("vs_best_baseline") or {}
    p = test.get("p_holm") if test.get("p_holm") is not None else test.get("p")
    diff = test.get("mean_diff")
    if diff is None and row["is_baseline"]:          # another baseline: behind the best one
        diff = row["mse_mean"] - out["baseline"]["mse_mean"]
    sig = p is not None and p < ALPHA
    outcome = "better" if sig and diff < 0 else ("worse" if sig and diff > 0 else "as_good")
    return {**out, "test": test, "p": p, "diff": diff, "outcome": outcome}


def versus_baseline(s: dict) -> str:
    """How the shipped model stands against the best baseline, in words a user can act on."""
    b = s["baseline"]
    if s["outcome"] == "no_baseline":
        return ("no baseline was scored, so whether it beats a simple rule is not known here "
                "(add `isoform_fraction_tissue,pca_tissue_ridge` to `--variants`)")
    if s["variant"] == b["variant"]:
        return "it is itself the best baseline"
    held = (f"{b['variant']}'s {b['mse_mean']:.4g}; difference {s['diff']:+.4g}, "
            f"{100 * s['diff'] / b['mse_mean']:+.1f}%" if s.get("diff") is not None
            else f"{b['variant']}'s {b['mse_mean']:.4g}")
    p = f", Holm-corrected p {_p(s['p'])}" if s["p"] is not None else ""
    return {"better": f"better than the best baseline, {b['variant']} ({held}{p})",
            "worse": f"worse than the best baseline, {b['variant']} ({held}{p}): a baseline "
                     "predicts better here",
            "as_good": f"no better than {b['variant']}; a baseline is as good here "
                       f"({held}{p})"}[s["outcome"]]


def _who(s: dict) -> str:
    return (f"this run saved **{s['variant']}**" if s["saved"]
            else f"`raviso fit` ships **{s['variant']}**")


def prediction_lines(doc: dict, rows: list[dict]) -> list[str]:
    """What the order means for predicting new samples: the model that ships, its measured MSE
    and CI against the best baseline, said plainly when a baseline is as good."""
    fair = [r for r in rows if r["mse_mean"] is not None and not r.get("optimistic")]
    if not fair:
        return []
    s, top = shipped(doc, rows), fair[0]
    if s["outcome"] == "unscored":
        best = (f"the baseline {top['variant']} (MSE {top['mse_mean']:.4g}): no trained model "
                "here beat a simple rule" if top["is_baseline"]
                else f"{top['variant']} (MSE {top['mse_mean']:.4g})")
        return [f"For prediction: {_who(s)}, which this run did not score (add it: `--variants "
                f"{s['variant']},...`); of the variants scored, the best is {best}.", ""]
    r = s["row"]
    line = (f"For prediction: {_who(s)}: MSE {r['mse_mean']:.4g} (95% CI "
            f"{ci(r.get('mse_ci95'))}) on donors it never saw, {versus_baseline(s)}.")
    if top["variant"] != s["variant"] and not top["is_baseline"]:
        line += f" The leaderboard's best is {top['variant']} (MSE {top['mse_mean']:.4g})."
    if s["outcome"] in ("as_good", "worse") and s["variant"] != (s["baseline"] or {}).get(
            "variant"):
        line += (f" A baseline {'as good as' if s['outcome'] == 'as_good' else 'better than'} "
                 "the trained model means it learned no more from the genes than this simple "
                 "rule on data of this size; more labelled donors, or other inputs, are what "
                 "could change that.")
    return [line, ""]


def saved_lines(doc: dict) -> list[str]:
    saved = doc.get("saved_model")
    return [f"`--save-model`: {saved['note']} (CV/model).", ""] if saved else []


def verdict_lines(doc: dict, rows: list[dict]) -> list[str]:
    return (top_lines(rows) + optimistic_lines(doc, rows) + prediction_lines(doc, rows)
            + saved_lines(doc))


def _board_rows(rows: list[dict], best: str | None, has_floor: bool) -> list[list]:
    body = []
    for r in rows:
        vs = r.get("vs_best_baseline") or {}
        name = f"**{r['variant']}**" if r["rank"] == 1 else r["variant"]
        body.append([r["rank"], name + (" (optimistic)" if r.get("optimistic") else ""),
                     r["kind"], r["mse_mean"], ci(r.get("mse_ci95"))]
                    + ([r.get("x_floor_heldout_donor")] if has_floor else [])
                    + ["reference" if r["variant"] == best else vs.get("mean_diff"), vs.get("p"),
                       "not in family" if r.get("optimistic") and vs else vs.get("p_holm")])
    return body


def leaderboard_section(doc: dict, where: Where = Where()) -> Section:
    rows = board(doc)
    best = best_baseline(rows)
    reps = (doc.get("grouping") or {}).get("repeats") or 1
    test = ("corrected repeated k-fold t-test (Bouckaert & Frank 2004) over all "
            f"{reps} x {k_folds(doc)} folds" if reps > 1
            else "Nadeau-Bengio corrected resampled t-test across folds")
    has_floor = any(r.get("x_floor_heldout_donor") for r in rows)
    head = (["#", "variant", "kind", "MSE", "95% CI"]
            + (["x held-out-donor floor"] if has_floor else [])
            + [f"diff vs {best or 'best baseline'}", "p", "p Holm"])
    out = ["## Leaderboard", "",
           "Mean validation MSE (log2(TPM+1)) over the folds, best first, with a 95% interval "
           "whose variance is corrected for the folds' overlapping training sets. "
           + ("\"x floor\" is MSE / the held-out-donor floor (below). " if has_floor else "")
           + f"Each non-baseline variant is tested against the best baseline ({best or 'none'}) "
           f"with the {test}, Holm-adjusted over those comparisons"
           + (" and rank 1 vs rank 2 (below)" if rows and rows[0].get("vs_runner_up") else "")
           + "; a negative difference means the variant predicts better.", ""]
    return Section(out + table(head, _board_rows(rows, best, has_floor)) + verdict_lines(doc, rows))
