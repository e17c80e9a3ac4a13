"""The leaderboard at the top of the report: every variant best first, with what a reader needs to
trust the order.

Per variant: its kind (``baseline``, ``paper`` model, or ``model``: raviso's own), the mean
validation MSE over all folds (and repeats) with a corrected 95% interval (`stats.mse_ci`), MSE /
the held-out-donor floor (synthetic data), and the test against the BEST BASELINE (the baseline with
the lowest mean MSE): the corrected repeated k-fold t-test (Bouckaert & Frank; Nadeau-Bengio when
there is one repeat) on the per-fold MSE differences, Holm-adjusted over the family "every
non-baseline variant vs the best baseline". A fold's MSE difference is the mean of the per-sample
differences on the same validation samples, so this needs only results.json's trials: the
leaderboard of an older results.json is computed the same way.
"""

from __future__ import annotations

import numpy as np

from . import stats

KINDS = ("baseline", "paper", "model")


def variant_kind(name: str) -> str:
    """``baseline`` (fitted means, shares, PCA+ridge), ``paper`` (the paper's three FFNNs) or
    ``model`` (everything else raviso trains)."""
    from ..models.variants import REGISTRY, base_name

    rec = REGISTRY.get(base_name(name))   # "<variant>@tuned" / "<variant>[...]" keep its kind
    return rec.kind if rec is not None else "model"


def _kind(doc: dict, v: str) -> str:
    return (doc.get("summary", {}).get(v) or {}).get("kind") or variant_kind(v)


def _fold_mse(doc: dict) -> dict[str, dict[int, float]]:
    out: dict = {}
    for t in doc["trials"]:
        if t["status"] == "ok" and t.get("mse") is not None:
            out.setdefault(t["variant"], {})[t["fold"]] = t["mse"]
    return out


def _sizes(doc: dict, folds) -> tuple[list, list]:
    by = {f["fold"]: f for f in doc["folds"]}
    return [by[f]["n_train"] for f in folds], [by[f]["n_test"] for f in folds]


def leaderboard(doc: dict) -> list[dict]:
    """Rows best first (see the module docstring); variants with no successful fold come last."""
    variants = list(doc["config"]["variants"])
    mse = _fold_mse(doc)
    repeats = (doc.get("grouping") or {}).get("repeats") or 1
    floor = {f["fold"]: f.get("floor_heldout_donor") for f in doc["folds"]}
    rows = []
    for v in variants:
        folds = sorted(mse.get(v, {}))
        x = [mse[v][f] for f in folds]
        n_tr, n_te = _sizes(doc, folds)
        ratios = [mse[v][f] / floor[f] for f in folds if floor.get(f)]
        kind = _kind(doc, v)
        rows.append({"variant": v, "kind": kind, "is_baseline": kind == "baseline",
                     "folds_ok": len(folds), "mse_mean": float(np.mean(x)) if x else None,
                     "mse_ci95": stats.mse_ci(x, n_tr, n_te) if len(x) > 1 else [None, None],
                     "x_floor_heldout_donor": (float(np.mean(ratios))
                                               if ratios and len(ratios) == len(x) else None),
                     "vs_best_baseline": None})
    rows.sort(key=lambda r: (r["mse_mean"] is None, r["mse_mean"] or 0.0))
    baselines = [r for r in rows if r["is_baseline"] and r["mse_mean"] is not None]
    if baselines:
        best = baselines[0]["variant"]
        family = [r for r in rows if not r["is_baseline"] and r["mse_mean"] is not None]
        for r in family:
            common = sorted(set(mse[r["variant"]]) & set(mse[best]))
            d = [mse[r["variant"]][f] - mse[best][f] for f in common]
            n_tr, n_te = _sizes(doc, common)
            test = stats.corrected_repeated_t(d, n_tr, n_te, repeats)
            r["vs_best_baseline"] = {"baseline": best, "mean_diff": test["mean_diff"],
                                     "ci95": test["ci95"], "t": test["t"], "df": test["df"],
                                     "p": test["p"]}
        for r, p in zip(family, stats.holm([r["vs_best_baseline"]["p"] for r in family])):
            r["vs_best_baseline"]["p_holm"] = p
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


def best_baseline(board: list[dict]) -> str | None:
    return next((r["variant"] for r in board if r["is_baseline"] and r["mse_mean"] is not None),
                None)
