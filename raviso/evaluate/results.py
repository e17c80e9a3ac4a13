"""``CV/results.json``: everything a cross-validation run measured, in one documented file.

Written atomically (temp file + rename) next to ``CV/errors/fold<i>_<variant>.npy``, the per-sample
validation errors (MSE over isoforms, float64, in the order of ``folds[i].sample_id``), from which
every statistic below can be recomputed. ``raviso report`` reads only these files.

Schema (``"schema": "raviso.cv.results/1"``)::

    schema           "raviso.cv.results/1"
    created          ISO-8601 UTC time; raviso_version
    config           store, pretrained, pretrained_ae (run paths or null), variants (list, in
                     column order), folds (k), repeats (R, default 1), group_by, epochs, seed,
                     variant_options, cpus_per_trial, gpus_per_trial, max_failures
    data             n_samples, n_genes, n_isoforms, n_tissues, n_donors (null when unknown),
                     has_truth (synthetic data: a noise-free truth is known)
    grouping         k, grouped_by ("donor" | "none"), rare_tissues (tissues with fewer samples
                     than folds, pooled into one stratum), seed; with repeats > 1 also repeats,
                     n_folds (R*k) and seeds (one fold seed per repeat)
    folds            list over folds (R*k: repeat r's fold f is fold r*k+f): fold, repeat,
                     n_train, n_test, sample_id (validation ids), donor (their donors, or null),
                     tissues ({tissue: n validation samples}), n_donors (validation donors),
                     noise_floor (MSE(observed, truth) on the validation rows; null without truth),
                     floor_heldout_donor (MSE(observed, held-out-donor expectation); null
                     without ``truth_heldout``; `raviso.evaluate.floors`)
    trials           list over fold x variant: fold, variant, status ("ok" | "error"), attempts,
                     retried (attempts > 1), reused (present and true when `cv --resume` took
                     it from an earlier attempt), error (last line, or null), mse, mse_mean_baseline,
                     r2 (vs the training-fold mean), median_pearson, frac_r_gt_05, n_isoforms_r,
                     n_isoforms_excluded, n_samples, fit_seconds, seconds, n_train, n_test,
                     zero_copy (the trial's matrices were read-only object-store views),
                     max_rss_mb; with truth also noise_floor, mse_over_noise_floor, mse_excess,
                     mse_vs_truth; mse_over_floor_heldout_donor; breakdown
                     (`raviso.evaluate.breakdown`: within_tissue_median_r, mse_by_level,
                     mse_by_role, isoform counts); history ({train_loss, val_loss} per epoch, or
                     null for models without epochs)
    summary          {variant: {kind ("baseline" | "paper" | "model"), is_baseline, folds_ok,
                     mse_mean, mse_sd, mse_ci95 (corrected, `stats.mse_ci`), r2_mean,
                     median_pearson_mean, frac_r_gt_05_mean, seconds_mean,
                     mse_over_noise_floor_mean, mse_over_floor_heldout_donor_mean (or null),
                     within_tissue_median_r_mean, mse_by_level, mse_by_role (means over folds)}}
    leaderboard      `raviso.evaluate.leaderboard.leaderboard`: variants best first with kind,
                     mse_mean, mse_ci95, x_floor_heldout_donor, vs_best_baseline {baseline,
                     mean_diff, ci95, t, df, p, p_holm}
    tests            `raviso.evaluate.stats.compare_all` on the per-sample errors: per pair of
                     variants the paired t-test per fold (same validation samples), the Wilcoxon
                     signed-rank test, both again on donor-averaged errors (per_fold[i].donor), the
                     Nadeau-Bengio corrected resampled t-test across the first repeat's folds
                     (corrected) and the Bouckaert-Frank corrected repeated k-fold t-test across
                     all folds (corrected_repeated), effect sizes
    noise_floor      null, or {per_fold: [...], mean, over_floor: {variant: mean MSE / floor}}
    floor_heldout_donor  the same for the held-out-donor floor (the one "x floor" figures use)
    per_tissue       {tissue: {n, noise_floor, floor_heldout_donor, mse: {variant: mean}}}
    retried_trials   ["fold <i> <variant> (<attempts> attempts)", ...]
    failed_trials    the same for trials that never succeeded
    tune             wall_seconds, max_concurrent_trials, trial_seconds_sum, parallel_efficiency
                     (sum of trial seconds x the slots each held / (concurrency x wall)),
                     all_zero_copy, cpus_per_trial, cpus_per_variant (what each variant's trials
                     asked Ray for: `capacity.cpus_by_memory`), memory (its inputs)
    tuning           only with ``cv --tune N`` / ``--config`` (`raviso.evaluate.nested`; the tuned
                     model is the column "<variant>@tuned"): mode ("nested" | "config"); nested:
                     trials, inner_folds, max_epochs, algorithm, scheduler, spaces, seconds,
                     per_fold [{fold, variant, options (the chosen config), inner_val_mse,
                     best_epoch, trials, stopped_early, failed, epochs_trained, seconds}];
                     config: config_file, variant, options
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


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _fold_rows(data, folds, floors: dict) -> list[dict]:
    from .floors import fold_floors
    from .repeats import repeat_of

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
    from .leaderboard import variant_kind
    from .stats import mse_ci

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
                  **{f"{k}_mean": _mean([t.get(k) for t in ok])
                     for k in ("r2", "median_pearson", "frac_r_gt_05", "seconds",
                               "mse_over_noise_floor", "mse_over_floor_heldout_donor")},
                  "within_tissue_median_r_mean": _mean([b.get("within_tissue_median_r")
                                                        for b in bd]),
                  "mse_by_level": _mean_dicts([b.get("mse_by_level") for b in bd]),
                  "mse_by_role": _mean_dicts([b.get("mse_by_role") for b in bd])}
    return out


def pair_tests(errors: dict, variants, fold_rows: list[dict]) -> dict:
    """`stats.compare_all` over the variants that succeeded on every fold."""
    from .stats import compare_all

    k = len(fold_rows)
    complete = [v for v in variants if all((i, v) in errors for i in range(k))]
    if len(complete) < 2:
        return []
    per_sample = {v: {i: np.asarray(errors[(i, v)]) for i in range(k)} for v in complete}
    donors = {f["fold"]: f.get("donor") for f in fold_rows}
    return compare_all(per_sample, {f["fold"]: f["n_train"] for f in fold_rows},
                       {f["fold"]: f["n_test"] for f in fold_rows},
                       donors=donors if any(d is not None for d in donors.values()) else None,
                       repeat_of={f["fold"]: f.get("repeat", 0) for f in fold_rows})


def build_results(config: dict, data, folds, outcome) -> dict:
    """The results document (see the module docstring) from a finished Tune run."""
    from . import floors as fl
    from .leaderboard import leaderboard

    variants = list(config["variants"])
    per_sample = fl.per_sample_floors(data)
    fold_rows = _fold_rows(data, folds, per_sample)
    trials = outcome.trials
    fl.add_ratios(trials, fold_rows)
    label = lambda t: f"fold {t['fold']} {t['variant']} ({t['attempts']} attempts)"  # noqa: E731
    noise = None
    if data.truth is not None:
        per_fold = [f["noise_floor"] for f in fold_rows]
        noise = {"per_fold": per_fold, "mean": _mean(per_fold),
                 "over_floor": {v: _mean([t.get("mse_over_noise_floor") for t in trials
                                          if t["variant"] == v and t["status"] == "ok"])
                                for v in variants}}
    busy = sum(t.get("seconds", 0.0) for t in trials if t["status"] == "ok")
    # CPU-weighted: a trial that holds two of the slots' CPUs (`capacity.cpus_by_memory`) fills two
    cpus = outcome.resources.get("cpus_per_variant") or {}
    slot = min(cpus.values(), default=1.0)
    busy_slots = sum(t.get("seconds", 0.0) * cpus.get(t["variant"], slot) / slot
                     for t in trials if t["status"] == "ok")
    doc = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "raviso_version": __version__,
        "config": config,
        "data": {"n_samples": int(data.n), "n_genes": len(data.gene_names),
                 "n_isoforms": len(data.isoform_names),
                 "n_tissues": int(len(set(data.tissue.tolist()))),
                 "n_donors": None if data.donor is None else int(len(set(data.donor.tolist()))),
                 "has_truth": data.truth is not None},
        "grouping": folds.to_dict(),
        "folds": fold_rows,
        "trials": trials,
        "summary": summarise(trials, variants, fold_rows),
        "tests": pair_tests(outcome.errors, variants, fold_rows),
        "noise_floor": noise,
        "floor_heldout_donor": fl.floor_block("floor_heldout_donor", fold_rows, trials, variants),
        "per_tissue": fl.per_tissue(data, folds, outcome.errors, variants, per_sample),
        "retried_trials": [label(t) for t in trials if t.get("retried")],
        "failed_trials": [label(t) for t in trials if t["status"] != "ok"],
        "tune": {"wall_seconds": outcome.wall_seconds,
                 "max_concurrent_trials": outcome.max_concurrent,
                 "trial_seconds_sum": busy,
                 "parallel_efficiency": busy_slots / (outcome.max_concurrent
                                                      * outcome.wall_seconds)
                 if outcome.wall_seconds > 0 else None,
                 "all_zero_copy": all(t.get("zero_copy", False) for t in trials
                                      if t["status"] == "ok"),
                 **outcome.resources},
    }
    doc["leaderboard"] = leaderboard(doc)
    return doc


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
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
        Path(tmp).write_text(json.dumps(_jsonable(doc), indent=1, allow_nan=False))
    return cv_dir / RESULTS


def read_results(cv_dir) -> dict:
    path = Path(cv_dir) / RESULTS
    if not path.exists():
        raise RavisoError(f"no {RESULTS} (run `raviso cv ... --out {cv_dir}` first)", cv_dir)
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RavisoError(f"corrupt results file: {e}", path) from None
    if doc.get("schema") != SCHEMA:
        raise RavisoError(f"not a {SCHEMA} file (schema={doc.get('schema')!r})", path)
    return doc
