"""`raviso cv`: every (fold, variant) pair as one Ray Tune trial, run in parallel on a labelled
set held once in the object store; `run_trial` (no Ray) is the unit of work. Design notes:
docs/stages.md.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_dir, check_writable_target
from ..data.folds import Folds, TrainSubset, training_subset
from ..models.recommended import describe_selection
from ..core.errors import RavisoError
from ..data.labelled import Labelled
from .engine.repeats import fold_split, repeated_folds
from .engine.jobs import (TrialGrid, batch_jobs, collect_batch, run_batch, trial_options,
                          trial_order)
from .engine.inputs import available_variants, drop_tissue_baselines, latent_runs, load_labelled
from .config import CvConfig
from .stats.leaderboard import choose_saved_model
from .results import TRIAL_KEYS
from .engine import resume as resume_mod

ERRORS_FILE = "errors.npy"


# -- the unit of work ---------------------------------------------------------------------------
def run_trial(data: Labelled, fold_ids: np.ndarray, fold: int, variant: str,
              options: dict | None = None, *, threads: int = 1, taps=(),
              subset: TrainSubset | None = None) -> dict:
    """Fit `variant` on every fold but `fold`, predict `fold`; return metrics (+ ``per_sample``).
    `taps`: more accumulators of the validation predictions (`breakdown.evaluate_trial`).
    `subset`: fit on a fraction of the training donors (none: all of them)."""
    import torch

    from ..models.variants import make_variant
    from .engine.scoring import evaluate_trial

    torch.set_num_threads(max(1, int(threads)))
    train_idx, val_idx = fold_split(fold_ids, fold)   # (R, n) ids: the repeat holding `fold`
    if subset is not None:
        train_idx = training_subset(train_idx, data.donor, subset.fraction, subset.seed, fold)
    t0, c0 = time.perf_counter(), time.thread_time()
    model = make_variant(variant, **(options or {}))
    model.fit(data, train_idx)
    fit_s = time.perf_counter() - t0
    # predicted and scored in row chunks: never a (validation rows x isoforms) matrix in memory
    out = evaluate_trial(model, data, train_idx, val_idx, taps)  # metrics, breakdown, curves
    # cpu_seconds: CPU time of this (the computing) thread; well under `seconds` means the trial
    # waited for a core, equal means it ran all along (slower only if the core itself was slower)
    out.update(fit_seconds=fit_s, seconds=time.perf_counter() - t0,
               cpu_seconds=time.thread_time() - c0, threads=torch.get_num_threads(),
               n_train=int(len(train_idx)), n_test=int(len(val_idx)))
    return out


def _maybe_fail_once(config: dict) -> None:
    """Test hook: with ``fail_once_marker`` set, the trial matching ``fail_once_trial`` crashes on
    its first attempt (it creates the marker file, so the retry finds it and runs normally)."""
    marker = config.get("fail_once_marker")
    target = list(config.get("fail_once_trial", []))
    if not marker or [config["fold"], config["variant"]] != target:
        return
    if not os.path.exists(marker):
        Path(marker).write_text("failed once\n")
        raise RuntimeError(f"injected one-time failure of fold {config['fold']} "
                           f"{config['variant']} (fail_once_marker)")


def _tune_trial(config: dict, data: Labelled = None, fold_ids: np.ndarray = None,
                into: str | None = None) -> dict:
    """The Tune trainable: one (fold, variant); arrays arrive zero-copy from the object store.
    `into`: a batch member (`engine.jobs.run_batch`): its checkpoint files go there, no report."""
    from ray import tune

    from .tune.nested import options_for
    from ..trust.reliability import OOF_FILE, OofAccumulator, save_trial

    _maybe_fail_once(config)
    options = {**(config.get("options") or {}),          # + a tuned column's per-fold config
               **options_for(config.get("fold_options", {}), config["fold"], config["variant"])}
    started = time.time()
    oof = OofAccumulator()                                  # per-isoform out-of-fold arrays
    out = run_trial(data, fold_ids, config["fold"], config["variant"], options,
                    threads=config["threads"][config["variant"]], taps=[oof],   # `tune_folds`
                    subset=TrainSubset(config["train_fraction"], options["seed"]))
    out.update(pid=os.getpid(), started_at=started, finished_at=time.time(),
               zero_copy=not (data.genes.flags.writeable or data.isoforms.flags.writeable),
               max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # the per-sample errors travel as a checkpoint: Tune persists it to the storage path before
    # `report` returns (plain trial-dir artifacts are synced lazily: lost with reused actors)
    with tempfile.TemporaryDirectory() as d:
        resume_mod.record_trial(into or d, config["fold"], config["variant"], out)  # + errors
        save_trial(os.path.join(into or d, OOF_FILE), oof.result())
        if into is None:
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))
    return out


# -- the Tune driver ---------------------------------------------------------------------------
@dataclass
class TuneOutcome:
    """What the driver collected from Tune, ready for `raviso.evaluate.results`."""

    trials: list[dict]                              # one per (fold, variant), sorted
    errors: dict[tuple[int, str], np.ndarray]       # per-sample validation errors
    wall_seconds: float
    max_concurrent: int
    resources: dict = field(default_factory=dict)
    oof: dict = field(default_factory=dict)         # per-isoform arrays (`reliability`)


def tune_folds(data: Labelled, folds: Folds, grid: TrialGrid, storage: Path,
               cfg: CvConfig | None = None, *, name: str = "cv", progress=None,
               done: dict | None = None) -> TuneOutcome:
    """Run every (fold, variant) of `grid` as a Tune trial on the connected Ray; collect metrics
    + errors. `cfg`: its cpus/gpus per trial, max_failures, max_concurrent and train_fraction.
    `done`: trials finished by an earlier attempt (`raviso.evaluate.engine.resume`), reused as
    they are."""
    from .engine.resume import reused_trials

    cfg = cfg or CvConfig()
    variants = grid.variants

    (trials, errors), oof = reused_trials(done, TRIAL_KEYS), {}
    jobs = batch_jobs([j for j in trial_order(variants, folds.k)
                       if (j[0], j[1]) not in (done or {})], data.n)

    from ray import tune

    from .engine.capacity import TrialResources
    from .engine.trial_watch import watch_callback_class

    cpus, memory, max_concurrent = _trial_resources(data, folds, variants, cfg)
    gpu = {"gpu": cfg.gpus_per_trial} if cfg.gpus_per_trial else {}
    # one grid axis of [fold, variant] pairs (not a cross product), unpacked by `_job_trial`
    trainable = tune.with_resources(tune.with_parameters(     # (R, n) ids with --repeats
        _job_trial, data=data, fold_ids=getattr(folds, "assignments", folds.fold)),
        TrialResources(cpus, gpu))
    space = {"job": tune.grid_search(jobs),
             "options": dict(grid.options),
             "threads": {v: max(1, int(c)) for v, c in cpus.items()},
             "max_failures": cfg.max_failures,          # a batch member's retries in place
             "train_fraction": cfg.train_fraction,
             **grid.extra}
    storage = str(storage) if "://" in str(storage) else str(Path(storage).absolute())
    watch = watch_callback_class()(progress, folds.k * len(variants))
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        # reuse_actors: a trial's process (torch imported, object-store data mapped) runs the next
        # trial too, instead of paying seconds of actor start-up per (fold, variant)
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, verbose=0,
            storage_path=storage, callbacks=[watch],
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures)),
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")   # the new console output ignores verbose=0
    t0 = time.perf_counter()
    grid = tuner.fit() if jobs else []
    wall = time.perf_counter() - t0
    _collect(grid, watch, trials, errors, oof)
    trials.sort(key=lambda t: (t["fold"], list(variants).index(t["variant"])))
    return TuneOutcome(trials, errors, wall, max_concurrent,
                       {"cpus_per_trial": cfg.cpus_per_trial,
                        "gpus_per_trial": cfg.gpus_per_trial,
                        "cpus_per_variant": cpus, **({"memory": memory} if memory else {})},
                       oof={k: v for k, v in oof.items() if v is not None})


def _trial_resources(data, folds, variants, cfg: CvConfig) -> tuple[dict, dict, int]:
    """(CPUs per variant, memory per variant, trials at once)."""
    from ..core.ray_session import cluster_cpus, cluster_gpus
    from .engine.capacity import trial_cpus

    memory, cpus = {}, {v: cfg.cpus_per_trial for v in variants}
    if cfg.max_concurrent is not None:
        return cpus, memory, cfg.max_concurrent
    # each variant asks for the CPUs its memory needs (`capacity.cpus_by_memory`): Ray then
    # packs light trials by the cores and runs heavy ones with more threads, fewer at once
    cpus, memory = trial_cpus(data, folds, variants, cfg.cpus_per_trial)
    by_cpu = int(cluster_cpus() // max(min(cpus.values()), 1e-9))
    by_gpu = int(cluster_gpus() // cfg.gpus_per_trial) if cfg.gpus_per_trial else by_cpu
    return cpus, memory, max(1, min(by_cpu, by_gpu))


def _collect(grid, watch, trials: list, errors: dict, oof: dict) -> None:
    """Each finished Tune result as a trial row (+ its errors and out-of-fold arrays)."""
    from ..trust.reliability import load_trial

    for r in grid:
        fold, variant = r.config["job"]
        if isinstance(variant, list):
            collect_batch(r, watch.recoveries, TRIAL_KEYS, trials, errors, oof)
            continue
        m = dict(r.metrics or {})
        attempts = 1 + watch.recoveries.get((int(fold), variant), 0)
        row = {"fold": int(fold), "variant": variant, "status": "error" if r.error else "ok",
               "attempts": attempts, "retried": attempts > 1,
               "error": None if not r.error else str(r.error).strip().splitlines()[-1][:300]}
        if not r.error:
            row.update({k: m[k] for k in TRIAL_KEYS if k in m})
            with r.checkpoint.as_directory() as d:
                errors[(int(fold), variant)] = np.load(os.path.join(d, ERRORS_FILE))
                oof[(int(fold), variant)] = load_trial(d)
        trials.append(row)


def _job_trial(config: dict, data: Labelled = None, fold_ids: np.ndarray = None) -> None:
    fold, variant = config["job"]
    if isinstance(variant, list):           # a small store's baselines of one fold: one trial
        return run_batch(_tune_trial, config, data, fold_ids)
    _tune_trial({**config, "fold": int(fold), "variant": variant}, data=data, fold_ids=fold_ids)


# -- the command -------------------------------------------------------------------------------
# tests set {"trial": (fold, variant)} here (monkeypatch) to crash that trial once
FAULTS: dict = {}


@dataclass
class _Setup:
    """What `run_cv` loads before the first trial."""

    names: list
    skipped: dict
    runs: dict
    st: object
    data: Labelled
    fold_plan: object
    options: dict


def run_cv(store, cfg: CvConfig | None = None, *, out=None, progress=print, **options) -> Path:
    """Cross-validate `cfg.variants` on the store's labelled set; write CV (results.json, errors/,
    report.md, ...) atomically. Returns the CV directory. `options`: CvConfig fields replacing
    `cfg`'s (a Python caller's shorthand). `tune` / `tuned_config`: a nested search per outer
    fold, or a fixed best.json, as ``<variant>@tuned`` columns (`raviso.evaluate.tune.nested`).

    `storage`: where Tune persists trial results (default ``.CV.tune`` beside CV on this machine;
    on a multi-node cluster give a path every node shares, or an ``s3://``/``gs://`` URI); kept
    until CV is written whole, so `resume` reruns only the trials that did not finish
    (`raviso.evaluate.engine.resume`)."""
    from ..core.ray_session import init_ray

    cfg = CvConfig.build(cfg, **options)
    if out is None:
        raise RavisoError("--out is required")
    overwrite = cfg.overwrite or cfg.resume  # a resumed CV replaces what the failed attempt wrote
    out = check_writable_target(Path(out), overwrite)
    setup = _load(store, cfg, progress)
    init_ray(address=cfg.address, num_cpus=cfg.num_cpus)
    trial_root = resume_mod.trial_store(out, cfg.storage)
    tuned = None if not cfg.tuned_config else str(cfg.tuned_config)
    experiment, done = resume_mod.prepare(trial_root, resume_mod.fingerprint(
        {**_identity(_what(store, cfg, setup), setup.names), "target_dtype": cfg.target_dtype,
         "tune": cfg.tune, "inner_folds": cfg.inner_folds, "tuned_config": tuned},
        getattr(setup.fold_plan, "assignments", setup.fold_plan.fold)), cfg.resume, progress)
    done = {k: v for k, v in done.items() if "@" not in k[1]}   # a nested search reruns: so do they
    with atomic_dir(out, overwrite=overwrite) as tmp:
        doc = _cross_validate(store, cfg, setup, Path(tmp), trial_root, experiment, done,
                              progress)
    _check_trials(doc, trial_root, cfg.max_failures, out)
    return out


def _load(store, cfg: CvConfig, progress) -> _Setup:
    """Variants, latents, the labelled set, the folds and the trials' options."""
    from .tune.nested import check_tuning

    names, skipped = available_variants(cfg.variants, cfg.pretrained, cfg.pretrained_ae,
                                        cfg.variant_options)
    for v, why in skipped.items():
        progress(f"skipping {v}: {why}")
    check_tuning(cfg.tune, cfg.tuned_config)
    runs = latent_runs(names, cfg.pretrained, cfg.pretrained_ae, cfg.variant_options,
                       cfg.tuned_config)
    progress(f"loading labelled set from {store}")
    st, data = load_labelled(store, runs, cfg.target_dtype)
    drop_tissue_baselines(names, data.tissue, progress)     # no tissue given: not built
    fold_plan = repeated_folds(data.tissue, data.donor, k=cfg.folds, seed=cfg.seed,
                               repeats=cfg.repeats, group_by=cfg.group_by, source=st.uri,
                               scheme=cfg.fold_scheme)
    if getattr(fold_plan, "note", ""):    # fewer distinct partitions than --repeats asked
        progress(fold_plan.note)
    options = trial_options(cfg.variant_options, cfg.epochs, cfg.seed, cfg.gpus_per_trial)
    if cfg.fold_scheme == "tissue":        # a held-out tissue has no column in the one-hot
        options.setdefault("tissue", False)
    return _Setup(names, skipped, runs, st, data, fold_plan, options)


def _what(store, cfg: CvConfig, setup: _Setup) -> dict:
    return dict(store=str(store), pretrained=setup.runs.get("vae"),
                pretrained_ae=setup.runs.get("ae"), folds=cfg.folds, repeats=cfg.repeats,
                group_by=cfg.group_by, fold_scheme=cfg.fold_scheme,
                train_fraction=cfg.train_fraction, epochs=cfg.epochs,
                seed=cfg.seed, variant_options=setup.options)


def _fault_config(tmp: Path) -> dict:
    """The trial config that makes `FAULTS["trial"]` crash once (tests only)."""
    if not FAULTS.get("trial"):
        return {}
    return {"fail_once_marker": str(tmp / ".fail-once"),
            "fail_once_trial": list(FAULTS["trial"])}


def _cross_validate(store, cfg: CvConfig, setup: _Setup, tmp: Path, trial_root, experiment,
                    done, progress) -> dict:
    """Tuning plan, the trials, results.json, the model and the report into `tmp`."""
    from . import results as results_mod
    from .tune.nested import tuning_plan
    from ..trust.reliability import cv_intervals

    data, fold_plan = setup.data, setup.fold_plan
    extra = _fault_config(tmp)
    plan = tuning_plan(data, fold_plan, setup.names, cfg, tmp, trial_root, setup.options,
                       progress=progress)
    names, extra["fold_options"] = setup.names + plan.variants, plan.fold_options
    progress(f"running {fold_plan.k} folds x {len(names)} variants on Ray Tune")
    outcome = tune_folds(data, fold_plan, TrialGrid(names, setup.options, extra), trial_root,
                         cfg, name=experiment, done=done, progress=progress)
    config = {**_identity(_what(store, cfg, setup), names),
              "cpus_per_trial": cfg.cpus_per_trial, "gpus_per_trial": cfg.gpus_per_trial,
              "max_failures": cfg.max_failures,
              "target_dtype": data.mapped.dtype if data.mapped else "float32",
              "tune": cfg.tune,
              "tuned_config": None if not cfg.tuned_config else str(cfg.tuned_config)}
    doc = results_mod.build_results(config, data, fold_plan, outcome)
    if setup.skipped:
        doc["skipped_variants"] = setup.skipped
    doc["intervals"] = cv_intervals(outcome.oof, fold_plan, names)
    if plan.record:
        doc["tuning"] = plan.record
    if cfg.save_model:   # the winner, or a plain word that a baseline won; fit's: its variant
        doc["saved_model"] = choose_saved_model(doc, ship=cfg.ship)
        progress(("" if cfg.ship else "--save-model: ") + doc["saved_model"]["note"])
    results_mod.write_results(tmp, doc, outcome.errors)
    if cfg.save_model:
        _save_model(tmp / "model", doc, plan, setup, progress, outcome.oof,
                    (outcome.errors, fold_plan))
    if cfg.report:
        from .report.render import has_curves, write_report

        write_report(tmp, pretrain=cfg.pretrained if has_curves(cfg.pretrained) else None)
    return doc


def _identity(what: dict, variants: list[str]) -> dict:
    """What was cross-validated, in results.json's key order: the head of its ``config`` and of
    the --resume fingerprint (the variants differ: the fingerprint's exclude the tuned columns)."""
    keys = ("store", "pretrained", "pretrained_ae", "variants", "folds", "repeats", "group_by",
            "fold_scheme", "train_fraction", "epochs", "seed", "variant_options")
    return {k: variants if k == "variants" else what[k] for k in keys}


def _save_model(model_dir: Path, doc: dict, plan, setup: _Setup, progress,
                oof: dict | None = None, cv=None) -> None:
    """CV/model: the saved column (tuned config if it won) fitted on every row, with its
    out-of-fold reliability arrays (`raviso.trust.reliability`)."""
    from ..models.saved import ModelExtras, fit_model
    from ..trust.reliability import model_reliability

    data, runs, store_uri, options = setup.data, setup.runs, setup.st.uri, setup.options

    column = doc["saved_model"]["variant"]
    variant, fit_options = plan.final_model(column, options, progress)
    by = doc["saved_model"].get("by", "--save-model")
    progress(f"fitting {variant} on all {data.n} labelled samples ({by})")
    model = fit_model(data, variant, model_dir, runs, fit_options, store_uri,
                      extras=ModelExtras(**model_reliability(oof or {}, column, data, cv)))
    if getattr(model, "selection_", None):       # `recommended`: what it chose, and why
        progress(describe_selection(model.selection_))


def _check_trials(doc: dict, trial_root, max_failures: int, out: Path) -> None:
    """All trials ok: drop Tune's trial store. Otherwise keep it (for --resume) and fail, naming
    the first failed trials (CV itself is written: results.json records them)."""

    failed = [t for t in doc["trials"] if t["status"] != "ok"]
    if not failed:
        resume_mod.discard(trial_root)
        return
    which = ", ".join(f"fold {t['fold']} {t['variant']}" for t in failed[:5])
    raise RavisoError(f"{len(failed)} trial(s) failed after {max_failures} retries ({which}); "
                      "see results.json", out)
