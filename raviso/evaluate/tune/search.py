"""`raviso tune` and nested `raviso cv --tune N`: hyperparameter search on Ray Tune.
Design notes: docs/stages.md."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.config import OptionError
from ...core.errors import RavisoError
from ..config import TuneConfig
from .space import best_doc, has_grid, plain, tune_domains

STATE_FILE = "state.pt"
METRIC = "best_val_mse"


# -- the unit of work (no Ray) ------------------------------------------------------------------
def inner_splits(data, rows, cfg: TuneConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """``cfg.inner_folds`` (train, val) splits of `rows` only (labelled-row indices), donor-grouped
    and stratified by tissue as the outer folds are (`cfg`'s seed, group_by, fold_scheme); no
    other row is looked at."""
    from ...data import make_folds

    rows = np.asarray(rows, np.int64)
    donor = None if data.donor is None else data.donor[rows]
    f = make_folds(data.tissue[rows], donor, k=cfg.inner_folds, seed=cfg.seed,
                   group_by=cfg.group_by, source="the training rows", scheme=cfg.fold_scheme)
    return [(rows[f.fold != i], rows[f.fold == i]) for i in range(f.k)]


def _pooled_mse(models, data, splits) -> float:
    from ...core.metrics import per_sample_mse

    errs = [per_sample_mse(m.predict(data, va), data.isoforms[va]) for m, (_, va) in
            zip(models, splits)]
    return float(np.concatenate(errs).mean())


def steppable(variant: str) -> bool:
    """Whether `variant` trains epoch by epoch (`fit_steps`): ASHA can stop it, it checkpoints."""
    from ...models.variants import make_variant

    return hasattr(make_variant(variant), "fit_steps")


def config_curve(data, splits, variant: str, options: dict, resume: list | None = None):
    """Yield ``(epoch, pooled inner-validation MSE, snapshot)`` after every epoch (1-based);
    ``snapshot()`` returns the per-fold training states to checkpoint. `resume`: those states
    from a checkpoint. A variant without `fit_steps` yields once, after a full fit."""
    from ...models.variants import make_variant

    models = [make_variant(variant, **options) for _ in splits]
    if not hasattr(models[0], "fit_steps"):
        for m, (tr, _) in zip(models, splits):
            m.fit(data, tr)
        yield 1, _pooled_mse(models, data, splits), None
        return
    steps = [m.fit_steps(data, tr, resume=None if resume is None else resume[i])
             for i, (m, (tr, _)) in enumerate(zip(models, splits))]
    while True:
        states = [next(s, None) for s in steps]
        if any(s is None for s in states):
            return
        yield (states[0].epoch, _pooled_mse(models, data, splits),
               lambda st=states: [s.state_dict() for s in st])


def _curve_summary(curve: list[float]) -> dict:
    best = int(np.argmin(curve))
    return {"best_val_mse": float(curve[best]), "best_epoch": best + 1}


# -- the Tune trainable -------------------------------------------------------------------------
def _search_trial(config: dict, data=None, splits=None, variant: str | None = None,
                  base: dict = None, run: dict = None) -> None:
    """One config: train the inner folds in lockstep, report every epoch, checkpoint."""
    import torch
    from ray import tune

    torch.set_num_threads(run["threads"])
    options = {**base, **{k: plain(v) for k, v in config.items()}}
    resume, curve = None, []
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            saved = torch.load(os.path.join(d, STATE_FILE), weights_only=False)
        resume, curve = saved["states"], list(saved["curve"])
    t0 = time.perf_counter()
    for epoch, score, snapshot in config_curve(data, splits, variant, options, resume):
        curve.append(score)
        metrics = {"epoch": epoch, "val_mse": score, **_curve_summary(curve),
                   "seconds": time.perf_counter() - t0}
        _maybe_fail_once(run, epoch)
        every = run["checkpoint_every"]
        if snapshot is None or not every or epoch % every or epoch >= options["epochs"]:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            torch.save({"states": snapshot(), "curve": curve}, os.path.join(d, STATE_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _maybe_fail_once(run: dict, epoch: int) -> None:
    """Test hook: with ``fail_once_marker`` set, the first trial to reach ``fail_once_epoch``
    crashes once (it leaves the marker, so the restarted trial goes on from its checkpoint)."""
    marker = run.get("fail_once_marker")
    if marker and epoch == run.get("fail_once_epoch") and not os.path.exists(marker):
        Path(marker).write_text("failed once\n")
        raise RuntimeError(f"injected one-time failure at epoch {epoch} (fail_once_marker)")


# -- the driver ---------------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    best: dict                       # the best.json document
    trials: list[dict]               # one row per trial (trials.parquet)
    wall_seconds: float
    extra: dict = field(default_factory=dict)


def _searcher(space: dict, trials: int, seed: int):
    """(search algorithm, its name): Optuna TPE when optuna is installed and the space has no
    grid; random sampling otherwise (a grid is always enumerated)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if has_grid(space):
        return BasicVariantGenerator(random_state=seed), "grid"
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        return BasicVariantGenerator(random_state=seed), "random (optuna is not installed)"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(2, min(10, trials // 3))    # TPE models the rest on these random configs
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return OptunaSearch(sampler=sampler), f"optuna TPE ({startup} random start-up trials)"


def _scheduler(kind: str, max_epochs: int, grace: int | None):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if kind == "fifo":
        return FIFOScheduler(), "fifo"
    if kind != "asha":
        raise RavisoError(f"--scheduler must be asha or fifo (got {kind!r})")
    # at least 3 epochs before a first cut: after 1-2 epochs every config still sits near the
    # mean baseline (the output bias starts there), so an earlier rung stops trials at random
    grace = grace or max(3, max_epochs // 10)
    return (ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=min(grace, max_epochs),
                          reduction_factor=3),
            f"asha (grace {min(grace, max_epochs)} epochs, reduction 3, max {max_epochs})")


@dataclass(frozen=True)
class SearchRun:
    """Where one search runs on Tune: its storage, experiment name and how often (epochs) a
    trial checkpoints."""

    storage: object
    name: str = "tune"
    checkpoint_every: int = 5


def search(data, rows, space: dict, cfg: TuneConfig, run: SearchRun, *, base_options=None,
           progress=None) -> SearchOutcome:
    """Search `space` for `cfg.variant` on `rows` of `data` (on the connected Ray); see the module
    docstring. Returns the best config (as best.json) and one row per trial."""
    if cfg.trials < 1 and not has_grid(space):
        raise OptionError("trials", f"must be at least 1 (got {cfg.trials})")
    splits = inner_splits(data, rows, cfg)
    base, scheduler = _base_options(cfg, space, base_options)
    tuner, how = _tuner(data, splits, space, cfg, base, scheduler, run)
    if progress:
        progress(f"searching {cfg.variant} over {', '.join(space)}: {cfg.trials} trials, "
                 f"{len(splits)} inner folds of "
                 f"{len(rows)} rows, {how['algorithm']}, {how['scheduler']}, "
                 f"{how['max_concurrent_trials']} at once")
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    stepped = "early_stopping" in base
    rows_out = [_trial_row(r, space, cfg.max_epochs if stepped else 1) for r in grid]
    ok = [t for t in rows_out if t["status"] != "error" and t["best_val_mse"] is not None]
    if not ok:
        raise RavisoError(f"every tuning trial of {cfg.variant} failed (first error: "
                          f"{rows_out[0]['error'] if rows_out else 'no trials'})")
    win = min(ok, key=lambda t: t["best_val_mse"])
    options = {**base, **win["config"]}
    if stepped:
        options["epochs"] = win["best_epoch"]
        options.pop("early_stopping")
    info = {"algorithm": how["algorithm"], "scheduler": how["scheduler"],
            "trials": len(rows_out), "inner_folds": len(splits), "max_epochs": cfg.max_epochs,
            "space": space, "seed": cfg.seed, "rows": int(len(rows)), "wall_seconds": wall,
            "max_concurrent_trials": how["max_concurrent_trials"],
            "stopped_early": sum(t["status"] == "stopped" for t in rows_out),
            "failed": sum(t["status"] == "error" for t in rows_out),
            "epochs_trained": int(sum(t["epochs_run"] for t in rows_out))}
    if progress:
        progress(f"best {cfg.variant}: inner MSE {win['best_val_mse']:.5g} at epoch "
                 f"{win['best_epoch']} ({info['stopped_early']} of {len(rows_out)} trials "
                 f"stopped early, {wall:.0f} s)")
    best = best_doc(cfg.variant, options, win["best_val_mse"], win["best_epoch"],
                    win["trial_id"], info)
    return SearchOutcome(best, rows_out, wall)


def _base_options(cfg: TuneConfig, space: dict, base_options) -> tuple[dict, str]:
    """(every trial's fixed options, the scheduler): a steppable variant runs each trial to the
    epoch budget (its curve picks the epochs); others report once (no ASHA)."""
    scheduler = cfg.scheduler
    if steppable(cfg.variant):
        base = {**(base_options or {}), "epochs": int(cfg.max_epochs), "early_stopping": False}
    else:
        base, scheduler = dict(base_options or {}), "fifo"
    return {k: v for k, v in base.items() if k not in space}, scheduler


def _tuner(data, splits, space: dict, cfg: TuneConfig, base: dict, scheduler: str,
           where: SearchRun):
    """(the Tuner, {algorithm, scheduler, max_concurrent_trials} as reported)."""
    from ray import tune

    from ...core.ray_session import trial_slots

    algo, algo_name = _searcher(space, cfg.trials, cfg.seed)
    sched, sched_name = _scheduler(scheduler, cfg.max_epochs, cfg.grace)
    slots = trial_slots(cfg.cpus_per_trial, cfg.gpus_per_trial)
    run = {"threads": max(1, int(cfg.cpus_per_trial)),
           "checkpoint_every": int(where.checkpoint_every), **fault_config()}
    res = {"cpu": cfg.cpus_per_trial,
           **({"gpu": cfg.gpus_per_trial} if cfg.gpus_per_trial else {})}
    trainable = tune.with_resources(tune.with_parameters(
        _search_trial, data=data, splits=splits, variant=cfg.variant, base=base, run=run), res)
    storage = (str(where.storage) if "://" in str(where.storage)
               else str(Path(where.storage).absolute()))
    tuner = tune.Tuner(
        trainable, param_space=tune_domains(space),
        tune_config=tune.TuneConfig(metric=METRIC, mode="min", search_alg=algo, scheduler=sched,
                                    num_samples=1 if has_grid(space) else int(cfg.trials),
                                    max_concurrent_trials=slots, reuse_actors=True),
        run_config=tune.RunConfig(name=where.name, verbose=0, storage_path=storage,
                                  failure_config=tune.FailureConfig(
                                      max_failures=cfg.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # keeping one checkpoint per trial forces an experiment snapshot per checkpoint (cheap here);
    # Tune warns about it on every search otherwise
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return tuner, {"algorithm": algo_name, "scheduler": sched_name,
                   "max_concurrent_trials": slots}


# tests set {"fail_once_marker": path, ...} here (monkeypatch) to crash a trial once
FAULTS: dict = {}


def fault_config() -> dict:
    return dict(FAULTS)


def _trial_row(result, space: dict, max_epochs: int) -> dict:
    """One trials.parquet row: config, curve (per epoch, a retried epoch counted once), status."""
    hist = result.metrics_dataframe
    curve: dict[int, float] = {}
    if hist is not None and "epoch" in hist:
        for e, v in zip(hist["epoch"], hist["val_mse"]):
            if e == e:                          # NaN rows: results without an epoch
                curve[int(e)] = float(v)
    values = [curve[e] for e in sorted(curve)]
    m = result.metrics or {}
    status = "error" if result.error else ("completed" if len(values) >= max_epochs
                                           else "stopped")
    summary = _curve_summary(values) if values else {"best_val_mse": None, "best_epoch": None}
    return {"trial_id": str(m.get("trial_id", Path(result.path).name)), "status": status,
            "config": {k: plain(result.config[k]) for k in space if k in result.config},
            "curve": values, "epochs_run": len(values), **summary,
            "seconds": m.get("seconds"),
            "error": None if not result.error else str(result.error).strip().splitlines()[-1][:300]}


# -- outputs ------------------------------------------------------------------------------------
def write_search(out_dir, outcome: SearchOutcome) -> None:
    """best.json, trials.parquet (config columns are JSON text: values of a choice may mix
    types) and search.png into an existing directory."""
    import json

    import pandas as pd

    out_dir = Path(out_dir)
    from ..results import jsonable

    (out_dir / "best.json").write_text(json.dumps(jsonable(outcome.best), indent=1))
    names = sorted({k for t in outcome.trials for k in t["config"]})
    table = pd.DataFrame([{"trial_id": t["trial_id"], "status": t["status"],
                           **{f"config/{k}": json.dumps(t["config"].get(k)) for k in names},
                           "curve": t["curve"], "epochs_run": t["epochs_run"],
                           "best_val_mse": t["best_val_mse"], "best_epoch": t["best_epoch"],
                           "seconds": t["seconds"], "error": t["error"]}
                          for t in outcome.trials])
    table.to_parquet(out_dir / "trials.parquet", index=False)
    plot_search(outcome, out_dir / "search.png")


def plot_search(outcome: SearchOutcome, path) -> None:
    """Left: every trial's inner-validation curve (stopped trials grey, the best bold). Right:
    the best MSE so far over the trials, in Tune's trial order."""
    from ...core.plots import new_figure

    fig = new_figure(figsize=(10, 3.8))
    a, b = fig.subplots(1, 2)
    best_id = outcome.best["trial_id"]
    for t in outcome.trials:
        if not t["curve"]:
            continue
        x = np.arange(1, len(t["curve"]) + 1)
        style = dict(lw=2.2, color="C3", zorder=3, label="best") if t["trial_id"] == best_id \
            else dict(lw=0.8, color="C0" if t["status"] == "completed" else "0.6")
        a.plot(x, t["curve"], marker="." if len(x) == 1 else None, **style)
    a.set(xlabel="epoch", ylabel="inner-validation MSE", title="trials (grey: stopped by ASHA)")
    done = [t for t in outcome.trials if t["best_val_mse"] is not None]
    running = np.minimum.accumulate([t["best_val_mse"] for t in done]) if done else []
    b.plot(np.arange(1, len(running) + 1), running, marker="o")
    b.set(xlabel="trials", ylabel="best inner-validation MSE so far", title="search")
    a.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)

