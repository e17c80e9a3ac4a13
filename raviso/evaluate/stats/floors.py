"""The two floors of synthetic data (measurement noise, held-out donor), per validation fold and
per tissue, and each tissue's MSE spread, for results.json. What the floors mean and why the
held-out-donor one is the bound "x floor" figures use: docs/statistics.md. It is a bound only where
genes are measured on their own; on a world whose genes are sums of their measured isoforms (the
switch family's default; its synth.json says ``heldout_expectation: reference``) it is a reference
that a model seeing the gene can beat (docs/generators.md).
"""

from __future__ import annotations

import numpy as np

from ...core.metrics import per_sample_mse

KEYS = ("noise_floor", "floor_heldout_donor")


def per_sample_floors(data) -> dict[str, np.ndarray | None]:
    """{key: (n,) per-sample floor or None} for the labelled set."""
    noise = None if data.truth is None else per_sample_mse(data.truth, data.isoforms)
    return {"noise_floor": noise,
            "floor_heldout_donor": getattr(data, "floor_heldout", None)}


def fold_floors(floors: dict, val: np.ndarray) -> dict:
    """{key: mean over the validation rows, or None}."""
    return {k: (None if v is None else float(v[val].mean())) for k, v in floors.items()}


def add_ratios(trials: list[dict], fold_rows: list[dict]) -> None:
    """Each ok trial gets ``mse_over_floor_heldout_donor`` (MSE / its fold's floor)."""
    by_fold = {f["fold"]: f.get("floor_heldout_donor") for f in fold_rows}
    for t in trials:
        floor = by_fold.get(t["fold"])
        if t["status"] == "ok" and floor:
            t["mse_over_floor_heldout_donor"] = t["mse"] / floor


def floor_block(key: str, fold_rows: list[dict], trials: list[dict], variants) -> dict | None:
    """results.json's top-level block for one floor: per_fold, mean, over_floor (per variant, the
    mean over its ok folds of MSE / that fold's floor); None when the floor is unknown."""
    per_fold = [f.get(key) for f in fold_rows]
    if any(x is None for x in per_fold) or not per_fold:
        return None
    floor = {f["fold"]: f[key] for f in fold_rows}
    over = {}
    for v in variants:
        r = [t["mse"] / floor[t["fold"]] for t in trials
             if t["variant"] == v and t["status"] == "ok" and floor[t["fold"]] > 0]
        over[v] = float(np.mean(r)) if r else None
    return {"per_fold": per_fold, "mean": float(np.mean(per_fold)), "over_floor": over}


def per_tissue(data, folds, errors: dict, variants, floors: dict) -> dict:
    """{tissue: {n, floor_heldout_donor, noise_floor, mse: {variant: ...}}}: means over every
    validation entry of the tissue's samples (each sample once per repeat); variants that failed on
    some fold are left out."""
    k = folds.k
    complete = [v for v in variants if all((i, v) in errors for i in range(k))]
    tissue_rows = []
    for i in range(k):
        _, val = folds.split(i)
        tissue_rows.append((i, val, data.tissue[val]))
    out: dict = {}
    for t in sorted(set(data.tissue.tolist())):
        sel = [(i, val[tis == t], tis == t) for i, val, tis in tissue_rows]
        rows = np.concatenate([r for _, r, _ in sel])
        if len(rows) == 0:
            continue
        entry = {"n": int(len(set(rows.tolist())))}
        for key in KEYS:
            v = floors.get(key)
            entry[key] = None if v is None else float(v[rows].mean())
        entry["mse"] = {v: float(np.concatenate([np.asarray(errors[(i, v)])[m]
                                                 for i, _, m in sel]).mean())
                        for v in complete}
        donors = None if data.donor is None else data.donor[rows]
        entry["n_donors"] = None if donors is None else int(len(set(donors.tolist())))
        entry["spread"] = {v: spread(np.concatenate([np.asarray(errors[(i, v)])[m]
                                                     for i, _, m in sel]), rows, donors)
                           for v in complete}
        out[str(t) or "(unknown)"] = entry
    return out


def spread(err: np.ndarray, rows: np.ndarray, donors: np.ndarray | None) -> dict:
    """One tissue's per-sample errors (one entry per validation entry; `rows`: their samples,
    `donors`: their donors or None): {sd (over samples, each averaged over its repeats), ci95 (a
    95% t-interval of the MSE over donors, a donor's samples averaged first; over samples
    without donors), unit ("donor" | "sample"), n_units}."""
    from .paired import group_means, mean_ci

    _, per_sample = group_means(err, rows)
    sd = float(np.std(per_sample, ddof=1)) if len(per_sample) > 1 else None
    units = per_sample if donors is None else group_means(err, donors)[1]
    lo, hi = mean_ci(units)
    ok = len(units) > 1 and np.isfinite(lo)
    return {"sd": sd, "ci95": [float(lo), float(hi)] if ok else [None, None],
            "unit": "sample" if donors is None else "donor", "n_units": int(len(units))}

