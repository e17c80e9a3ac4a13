"""What the leaderboard says, in sentences under it: whether rank 1 is told apart from rank 2, which
columns are optimistic (tuned on this very store), what the order means for predicting new
samples, and which model `cv --save-model` saved.
"""

from __future__ import annotations

from ..stats.leaderboard import best_baseline


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


def prediction_lines(rows: list[dict]) -> list[str]:
    """One sentence on what the order means for predicting new samples of this kind."""
    fair = [r for r in rows if r["mse_mean"] is not None and not r.get("optimistic")]
    if not fair:
        return []
    top = fair[0]
    if top["is_baseline"]:
        return [f"For prediction: the baseline {top['variant']} is the best predictor here; a "
                "baseline winning means no trained model learned more from the genes than this "
                "simple rule on data of this size, so its predictions are as good as any here "
                "(more samples, or other inputs, are what could change that).", ""]
    best = best_baseline(rows)
    return [f"For prediction: {top['variant']} is the best predictor here (MSE "
            f"{top['mse_mean']:.4g}" + (f" against {best}'s {_mse(rows, best):.4g}, the best "
                                        "baseline" if best else "") + ").", ""]


def _mse(rows, v):
    return next(r["mse_mean"] for r in rows if r["variant"] == v)


def saved_lines(doc: dict) -> list[str]:
    saved = doc.get("saved_model")
    return [f"`--save-model`: {saved['note']} (CV/model).", ""] if saved else []


def verdict_lines(doc: dict, rows: list[dict]) -> list[str]:
    return (top_lines(rows) + optimistic_lines(doc, rows) + prediction_lines(rows)
            + saved_lines(doc))
