"""``CV/results.json``: everything a cross-validation run measured, in one documented file.

Written atomically next to ``CV/errors/fold<i>_<variant>.npy`` (the per-sample validation errors,
from which every statistic can be recomputed); ``raviso report`` reads only these. The schema
(``raviso.cv.results/1``) is documented field by field in docs/output.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from .. import __version__
from ..core.atomic import atomic_file
from ..core.errors import RavisoError

SCHEMA = "raviso.cv.results/1"
RESULTS = "results.json"
ERRORS_DIR = "errors"


def errors_path(cv_dir, fold: int, variant: str) -> Path:
    return Path(cv_dir) / ERRORS_DIR / f"fold{fold}_{variant}.npy"


# Per-trial metrics averaged into ``summary`` as ``<key>_mean`` and shown in the report's "Other
# metrics" table: (key, column title, top-level block the column needs or None). One line each.
TRIAL_METRICS = (("r2", "R2 vs train mean", None), ("median_pearson", "median isoform r", None),
                 ("frac_r_gt_05", "frac r > 0.5", None), ("seconds", "trial s", None),
                 ("mse_over_floor_heldout_donor", "x held-out-donor floor",
                  "floor_heldout_donor"),
                 ("mse_over_noise_floor", "x measurement floor", "noise_floor"))
# What a trial row keeps of its trial's reported metrics
TRIAL_KEYS = ("mse", "mse_mean_baseline", "r2", "median_pearson", "frac_r_gt_05",
              "n_isoforms_r", "n_isoforms_excluded", "n_samples", "noise_floor",
              "mse_over_noise_floor", "mse_excess", "mse_vs_truth", "fit_seconds", "seconds",
              "cpu_seconds", "threads", "started_at", "finished_at", "n_train", "n_test", "pid",
              "zero_copy", "max_rss_mb", "breakdown", "history")
TRIAL_KEYS += tuple(k for k, _, _ in TRIAL_METRICS if k not in TRIAL_KEYS)


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _fold_rows(data, folds, floors: dict) -> list[dict]:
    from .stats.floors import fold_floors
    from .engine.repeats import repeat_of

    rows = []
    for i in range(folds.k):
        train, val = folds.split(i)
        names, counts = np.unique(data.tissue[val], return_counts=True)
        rows.append({"fold": i, "repeat": repeat_of(folds, i),
                     "n_train": int(len(train)), "n_test": int(len(val)),
                     "sample_id": data.sample_id[val].tolist(),
                     "donor": None if data.donor is None else data.donor[val].tolist(),
                     "tissues": {str(t): int(c) for t, c in zip(names, counts)},
                     "n_donors": None if data.donor is None else int(len(set(data.donor[val]))),
                     **fold_floors(floors, val)})
    return rows


def _mean_dicts(dicts: list) -> dict | None:
    """Key-wise mean of dicts of numbers (None values skipped); None if there are none."""
    dicts = [d for d in dicts if d]
    if not dicts:
        return None
    return {k: _mean([d.get(k) for d in dicts]) for k in dicts[0]}


def summarise(trials: list[dict], variants, fold_rows: list[dict] | None = None) -> dict:
    from .stats.leaderboard import variant_kind
    from .stats.paired import mse_ci

    size = {f["fold"]: (f["n_train"], f["n_test"]) for f in fold_rows or []}
    out = {}
    for v in variants:
        ok = [t for t in trials if t["variant"] == v and t["status"] == "ok"]
        mses = [t["mse"] for t in ok]
        bd = [t.get("breakdown") or {} for t in ok]
        ci = [None, None]
        if len(mses) > 1 and all(t["fold"] in size for t in ok):
            ci = mse_ci(mses, [size[t["fold"]][0] for t in ok], [size[t["fold"]][1] for t in ok])
        out[v] = {"kind": variant_kind(v), "is_baseline": variant_kind(v) == "baseline",
                  "folds_ok": len(ok),
                  "mse_mean": _mean(mses),
                  "mse_sd": float(np.std(mses, ddof=1)) if len(mses) > 1 else None,
                  "mse_ci95": ci,
                  **{f"{k}_mean": _mean([t.get(k) for t in ok]) for k, _, _ in TRIAL_METRICS},
                  "within_tissue_median_r_mean": _mean([b.get("within_tissue_median_r")
                                                        for b in bd]),
                  "mse_by_level": _mean_dicts([b.get("mse_by_level") for b in bd]),
                  "mse_by_role": _mean_dicts([b.get("mse_by_role") for b in bd])}
    return out


def pair_tests(errors: dict, variants, fold_rows: list[dict], outside=()) -> list:
    """`stats.compare_all` over the variants that succeeded on every fold (`outside`: columns
    kept out of the Holm family, e.g. one tuned on this store)."""
    from .stats.paired import compare_all

    k = len(fold_rows)
    complete = [v for v in variants if all((i, v) in errors for i in range(k))]
    if len(complete) < 2:
        return []
    per_sample = {v: {i: np.asarray(errors[(i, v)]) for i in range(k)} for v in complete}
    donors = {f["fold"]: f.get("donor") for f in fold_rows}
    return compare_all(per_sample, {f["fold"]: f["n_train"] for f in fold_rows},
                       {f["fold"]: f["n_test"] for f in fold_rows},
                       donors=donors if any(d is not None for d in donors.values()) else None,
                       repeat_of={f["fold"]: f.get("repeat", 0) for f in fold_rows},
                       outside=outside)


def build_results(config: dict, data, folds, outcome) -> dict:
    """The results document (see the module docstring) from a finished Tune run."""
    from .stats import floors as fl
    from .stats.leaderboard import leaderboard, optimistic, tuned_origin

    variants = list(config["variants"])
    per_sample = fl.per_sample_floors(data)
    fold_rows = _fold_rows(data, folds, per_sample)
    trials = outcome.trials
    for f in fold_rows:   # --train-fraction: the rows each fold's trials actually trained on
        used = {t["n_train"] for t in trials if t["fold"] == f["fold"] and "n_train" in t}
        if len(used) == 1:
            f["n_train"] = used.pop()
    fl.add_ratios(trials, fold_rows)
    label = lambda t: f"fold {t['fold']} {t['variant']} ({t['attempts']} attempts)"  # noqa: E731
    noise = None
    if data.truth is not None:
        per_fold = [f["noise_floor"] for f in fold_rows]
        noise = {"per_fold": per_fold, "mean": _mean(per_fold),
                 "over_floor": {v: _mean([t.get("mse_over_noise_floor") for t in trials
                                          if t["variant"] == v and t["status"] == "ok"])
                                for v in variants}}
    doc = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "raviso_version": __version__,
        "config": config,
        "data": {"n_samples": int(data.n), "n_genes": len(data.gene_names),
                 "n_isoforms": len(data.isoform_names),
                 "n_tissues": int(len(set(data.tissue.tolist()))),
                 "n_donors": None if data.donor is None else int(len(set(data.donor.tolist()))),
                 "has_truth": data.truth is not None, "origin": store_origin(config["store"])},
        "grouping": folds.to_dict(),
        "folds": fold_rows,
        "trials": trials,
        "summary": summarise(trials, variants, fold_rows),
        "tests": pair_tests(outcome.errors, variants, fold_rows, optimistic(config)),
        "noise_floor": noise,
        "floor_heldout_donor": fl.floor_block("floor_heldout_donor", fold_rows, trials, variants),
        "per_tissue": fl.per_tissue(data, folds, outcome.errors, variants, per_sample),
        "retried_trials": [label(t) for t in trials if t.get("retried")],
        "failed_trials": [label(t) for t in trials if t["status"] != "ok"],
        "tune": _tune_block(outcome, trials),
    }
    doc["reliability"] = reliability_counts(getattr(outcome, "oof", None) or {}, variants,
                                            len(fold_rows))
    doc["tuned_origin"] = tuned_origin(config)
    doc["leaderboard"] = leaderboard(doc)
    return doc


def reliability_counts(oof: dict, variants, n_folds: int) -> dict:
    """results.json ``reliability``: per variant whose every fold shipped out-of-fold arrays, how
    many isoforms `raviso predict` would flag ``reliable`` (`trust.reliability.reliable`, its
    default rule), so the report can say it without the arrays."""
    import inspect

    from ..trust.reliability import model_arrays, per_isoform, reliable

    min_r2 = inspect.signature(reliable).parameters["min_r2"].default
    out = {}
    for v in variants:
        if sum(name == v for _, name in oof) < n_folds:
            continue
        r2 = per_isoform(model_arrays(oof, v))["oof_r2"]
        varies = np.isfinite(r2)
        out[v] = {"n_isoforms": int(len(r2)), "n_reliable": int(reliable({"oof_r2": r2}).sum()),
                  "n_no_r2": int((~varies).sum()), "min_r2": float(min_r2),
                  "median_r2": float(np.median(r2[varies])) if varies.any() else None}
    return out


def _tune_block(outcome, trials: list[dict]) -> dict:
    ok = [t for t in trials if t["status"] == "ok"]
    busy = sum(t.get("seconds", 0.0) for t in ok)
    # CPU-weighted: a trial that holds two of the slots' CPUs (`capacity.cpus_by_memory`) fills two
    cpus = outcome.resources.get("cpus_per_variant") or {}
    slot = min(cpus.values(), default=1.0)
    busy_slots = sum(t.get("seconds", 0.0) * cpus.get(t["variant"], slot) / slot for t in ok)
    return {"wall_seconds": outcome.wall_seconds, "max_concurrent_trials": outcome.max_concurrent,
            "trial_seconds_sum": busy,
            "parallel_efficiency": busy_slots / (outcome.max_concurrent * outcome.wall_seconds)
            if outcome.wall_seconds > 0 else None,
            "all_zero_copy": all(t.get("zero_copy", False) for t in ok), **outcome.resources}


def store_origin(store) -> dict | None:
    """What the labelled set was made from (the store manifest's sources): {formats (the readers
    of gtex_gene / gtex_isoform, e.g. course-hdf5, matrix:tpm), units, imported}; None when the
    store cannot be read."""
    from ..data.reader import Store

    try:
        m = Store(store).manifest
    except (RavisoError, OSError):
        return None
    kinds = sorted({str(s.get("kind")) for s in m.get("sources") or []
                    if s.get("dataset") in ("gtex_gene", "gtex_isoform")})
    return {"formats": kinds, "units": m.get("units"),
            "imported": m.get("source") in ("samplesheet", "matrix")}


def jsonable(o):
    """`o` with numpy values as plain Python and NaN/inf as None (JSON without NaN)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if math.isnan(o) or math.isinf(o) else float(o)
    return o


def write_results(cv_dir, doc: dict, errors: dict) -> Path:
    """Write ``errors/*.npy`` then ``results.json`` (each atomically)."""
    cv_dir = Path(cv_dir)
    (cv_dir / ERRORS_DIR).mkdir(exist_ok=True)
    for (fold, variant), e in errors.items():
        with atomic_file(errors_path(cv_dir, fold, variant)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(e, np.float64))
    with atomic_file(cv_dir / RESULTS) as tmp:
        Path(tmp).write_text(json.dumps(jsonable(doc), indent=1, allow_nan=False))
    return cv_dir / RESULTS


def read_results(cv_dir) -> dict:
    path = Path(cv_dir) / RESULTS
    if not path.exists():
        raise RavisoError(f"no {RESULTS} (run `raviso cv ... --out {cv_dir}` first; a damaged "
                          "CV: re-run raviso cv)", cv_dir)
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RavisoError(f"{RESULTS} is damaged ({e}): re-run raviso cv", cv_dir) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else None
        raise RavisoError(f"{RESULTS} is not a {SCHEMA} file (schema={got!r}; a damaged one: "
                          "re-run raviso cv)", cv_dir)
    return doc
