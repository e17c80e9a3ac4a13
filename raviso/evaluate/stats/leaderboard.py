"""The leaderboard at the top of the report: every variant best first, with the tests a reader needs
to trust the order, and which model `cv --save-model` saves.

Kinds come from results.json's ``summary`` (``baseline``, ``paper``, ``model``); the statistics
and why they are built this way are described in docs/statistics.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import paired as stats

KINDS = ("baseline", "paper", "model")


def variant_kind(name: str) -> str:
    """The variant's kind in the registry (`raviso.models.variants`); a tuned column
    ``<variant>@tuned`` keeps its variant's kind; unknown names count as ``model``."""
    from ...models.variants import BASELINES, PAPER_VARIANTS

    base = name.split("@", 1)[0]
    if base in BASELINES:
        return "baseline"
    return "paper" if base in PAPER_VARIANTS else "model"


def _kind(doc: dict, v: str) -> str:
    return (doc.get("summary", {}).get(v) or {}).get("kind") or variant_kind(v)


def _same_path(a, b) -> bool:
    norm = (lambda s: s.rstrip("/") if "://" in s else str(Path(s).resolve()))  # noqa: E731
    return norm(str(a)) == norm(str(b))


def tuned_origin(config: dict) -> dict | None:
    """Where ``cv --config best.json``'s config was tuned: {column, best_json, tuned_on,
    same_store (True / False / None when best.json is gone or does not say)}; None without it."""
    path = config.get("tuned_config")
    if not path:
        return None
    p = Path(path) / "best.json" if Path(path).is_dir() else Path(path)
    try:
        best = json.loads(p.read_text())
    except (OSError, ValueError):
        best = {}
    store = (best.get("search") or {}).get("store")
    variant = best.get("variant")
    return {"column": f"{variant}@tuned" if variant else None, "best_json": str(path),
            "tuned_on": store,
            "same_store": None if store is None else _same_path(store, config["store"])}


def optimistic(doc: dict) -> set[str]:
    """Columns tuned on this very store (their CV estimate saw the validation folds); `doc`: a
    results document, or its ``config`` alone."""
    if "config" not in doc:
        doc = {"config": doc}
    origin = doc["tuned_origin"] if "tuned_origin" in doc else tuned_origin(doc["config"])
    return {origin["column"]} if origin and origin["same_store"] and origin["column"] else set()


def _fold_mse(doc: dict) -> dict[str, dict[int, float]]:
    out: dict = {}
    for t in doc["trials"]:
        if t["status"] == "ok" and t.get("mse") is not None:
            out.setdefault(t["variant"], {})[t["fold"]] = t["mse"]
    return out


def _sizes(doc: dict, folds) -> tuple[list, list]:
    by = {f["fold"]: f for f in doc["folds"]}
    return [by[f]["n_train"] for f in folds], [by[f]["n_test"] for f in folds]


def _row(doc: dict, v: str, mse: dict, floor: dict, tuned_here: set) -> dict:
    folds = sorted(mse.get(v, {}))
    x = [mse[v][f] for f in folds]
    n_tr, n_te = _sizes(doc, folds)
    ratios = [mse[v][f] / floor[f] for f in folds if floor.get(f)]
    kind = _kind(doc, v)
    return {"variant": v, "kind": kind, "is_baseline": kind == "baseline",
            "folds_ok": len(folds), "mse_mean": float(np.mean(x)) if x else None,
            "mse_ci95": stats.mse_ci(x, n_tr, n_te) if len(x) > 1 else [None, None],
            "x_floor_heldout_donor": (float(np.mean(ratios))
                                      if ratios and len(ratios) == len(x) else None),
            "optimistic": v in tuned_here, "vs_best_baseline": None}


def _test(doc: dict, mse: dict, a: str, b: str) -> dict:
    """Corrected repeated k-fold t-test (Nadeau-Bengio with one repeat) of a - b per fold."""
    repeats = (doc.get("grouping") or {}).get("repeats") or 1
    common = sorted(set(mse[a]) & set(mse[b]))
    d = [mse[a][f] - mse[b][f] for f in common]
    n_tr, n_te = _sizes(doc, common)
    test = stats.corrected_repeated_t(d, n_tr, n_te, repeats)
    return {"mean_diff": test["mean_diff"], "ci95": test["ci95"], "t": test["t"],
            "df": test["df"], "p": test["p"]}


def leaderboard(doc: dict) -> list[dict]:
    """Rows best first; variants with no successful fold come last. Each non-baseline is tested
    against the best of ALL baselines (``vs_best_baseline``) and, when ranks 1 and 2 (columns
    tuned on this store left out) are both models, rank 1 against rank 2 (``vs_runner_up``);
    Holm over that family. A column tuned on this store is ``optimistic`` and outside it."""
    mse = _fold_mse(doc)
    floor = {f["fold"]: f.get("floor_heldout_donor") for f in doc["folds"]}
    tuned_here = optimistic(doc)
    rows = [_row(doc, v, mse, floor, tuned_here) for v in doc["config"]["variants"]]
    rows.sort(key=lambda r: (r["mse_mean"] is None, r["mse_mean"] or 0.0))
    scored = [r for r in rows if r["mse_mean"] is not None]
    family = []
    best = best_baseline(rows)
    if best:
        for r in scored:
            if not r["is_baseline"]:
                r["vs_best_baseline"] = {"baseline": best, **_test(doc, mse, r["variant"], best)}
                if not r["optimistic"]:
                    family.append(r["vs_best_baseline"])
    fair = [r for r in scored if not r["optimistic"]]
    if len(fair) > 1 and not fair[0]["is_baseline"] and not fair[1]["is_baseline"]:
        fair[0]["vs_runner_up"] = {"runner_up": fair[1]["variant"],
                                   **_test(doc, mse, fair[0]["variant"], fair[1]["variant"])}
        family.append(fair[0]["vs_runner_up"])
    for test, p in zip(family, stats.holm([t["p"] for t in family])):
        test["p_holm"] = p
    for r in scored:
        if r["optimistic"] and r["vs_best_baseline"]:
            r["vs_best_baseline"]["p_holm"] = None
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


def board(doc: dict) -> list[dict]:
    """The leaderboard, recomputed from the trials (an older results.json's stored board lacks
    the runner-up test and the optimistic flag)."""
    return leaderboard(doc)


def best_baseline(rows: list[dict]) -> str | None:
    """The best of every variant of kind ``baseline``."""
    return next((r["variant"] for r in rows if r["is_baseline"] and r["mse_mean"] is not None),
                None)


def choose_saved_model(doc: dict, savable=None, ship: str | None = None) -> dict:
    """Which column `cv --save-model` saves: the overall winner when it can be saved, else the
    best savable one, with a ``note`` that says so plainly. `savable(variant) -> bool`.
    `ship`: `raviso fit`'s variant, saved whatever its rank (the note says where it stands)."""
    from ...core.errors import RavisoError

    if ship:
        return _shipped(doc, ship)
    if savable is None:
        from ...models.saved import is_savable as savable
    rows = [r for r in board(doc) if r["mse_mean"] is not None]
    saved = next((r for r in rows if savable(r["variant"].split("@", 1)[0])), None)
    if saved is None:
        raise RavisoError("--save-model: no savable variant succeeded on every fold")
    win = rows[0]
    if saved is win:
        note = f"saved the winner, {win['variant']} (rank 1)"
    else:
        what = "a baseline" if win["is_baseline"] else "a variant that cannot be saved"
        note = (f"{what}, {win['variant']}, won (rank 1, MSE {win['mse_mean']:.4g}); it is not "
                f"saved as a MODEL, so the model saved is {saved['variant']} (rank "
                f"{saved['rank']}, MSE {saved['mse_mean']:.4g}), which predicts worse here")
    return {"variant": saved["variant"], "winner": win["variant"], "winner_kind": win["kind"],
            "note": note}


def _shipped(doc: dict, ship: str) -> dict:
    from ...core.errors import RavisoError

    rows = [r for r in board(doc) if r["mse_mean"] is not None]
    row = next((r for r in rows if r["variant"] == ship), None)
    if row is None:
        raise RavisoError(f"{ship} failed on every CV fold: no MODEL (see results.json)")
    win = rows[0]
    note = f"raviso fit ships {ship} (rank {row['rank']}, MSE {row['mse_mean']:.4g})" + (
        "" if win is row else f"; rank 1 is {win['variant']} (MSE {win['mse_mean']:.4g})")
    return {"variant": ship, "winner": win["variant"], "winner_kind": win["kind"], "note": note,
            "by": "raviso fit"}
