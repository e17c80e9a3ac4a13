"""Nested cross-validation for `raviso cv --tune N` and a fixed tuned config for `--config FILE`.
Design notes: docs/stages.md."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import RavisoError
from .space import default_space, default_spaces, read_best

TUNED = "@tuned"


DEFAULT_MAX_EPOCHS = 100     # the FFNN regressors' default epochs: the search's budget


@dataclass
class Plan:
    variants: list[str] = field(default_factory=list)        # extra columns: "<variant>@tuned"
    fold_options: dict[str, dict] = field(default_factory=dict)   # "fold/column" -> options
    record: dict | None = None                               # results.json "tuning"

    def final_model(self, variant: str, options: dict, progress=None) -> tuple[str, dict]:
        """(variant, options) for ``--save-model`` when cv picked `variant`: a fixed config is
        saved as tuned; nested tuning chose one config per fold and none for all rows, so the
        variant is saved with its defaults (a tuned final model: raviso tune, then raviso fit
        --config)."""
        if variant not in self.variants:
            return variant, options
        base = variant[:-len(TUNED)]
        if self.record["mode"] == "config":
            return base, self.fold_options[f"0/{variant}"]
        if progress:
            progress(f"--save-model: nested tuning has no config for all rows; saving {base} "
                     "with its defaults (raviso tune + raviso fit --config for a tuned model)")
        return base, options


def check_tuning(tune: int, config) -> None:
    """Fail fast (before loading data) on conflicting or bad tuning options."""
    if tune and config:
        raise RavisoError("--tune and --config exclude each other (search, or reuse a config)")
    if tune < 0:
        raise RavisoError(f"--tune takes a number of trials >= 1 (got {tune})")
    if config:
        read_best(config)


def tuning_plan(data, folds, variants, cfg, out_dir, storage, options: dict, *,
                progress=None) -> Plan:
    """The plan `raviso cv` (its `CvConfig` `cfg`) follows: nested search (--tune N), fixed config
    (--config) or none."""
    if cfg.tuned_config:
        return config_plan(cfg.tuned_config, folds, options)
    if cfg.tune:
        return nested_plan(data, folds, variants, cfg, out_dir, storage, base_options=options,
                           progress=progress)
    return Plan()


def inner_search_config(cfg, variant: str, fold: int):
    """The `TuneConfig` of the search inside outer fold `fold` of a nested `raviso cv`."""
    from ..config import TuneConfig

    return TuneConfig(variant=variant, trials=cfg.tune,
                      max_epochs=cfg.epochs or DEFAULT_MAX_EPOCHS, inner_folds=cfg.inner_folds,
                      seed=cfg.seed + fold, group_by=cfg.group_by, fold_scheme=cfg.fold_scheme,
                      cpus_per_trial=cfg.cpus_per_trial, gpus_per_trial=cfg.gpus_per_trial,
                      max_failures=cfg.max_failures)


def tuned_name(variant: str) -> str:
    return f"{variant}{TUNED}"


def options_for(fold_options: dict, fold: int, variant: str) -> dict:
    """The options a cv trial of `variant` on `fold` adds to the shared ones."""
    return dict(fold_options.get(f"{int(fold)}/{variant}", {}))


def nested_plan(data, folds, variants, cfg, out_dir, storage, *, base_options: dict,
                progress=None) -> Plan:
    """Search every tunable variant inside every outer fold; write each search's best.json,
    trials.parquet and search.png to ``out_dir/tuning/fold<i>_<variant>/``."""
    from .search import SearchRun, search, write_search

    tunable = [v for v in variants if v in default_spaces()]
    if not tunable:
        raise RavisoError(f"--tune: none of {', '.join(variants)} has a search space (tunable: "
                          f"{', '.join(sorted(default_spaces()))})")
    plan = Plan(variants=[tuned_name(v) for v in tunable])
    per_fold, t0 = [], time.perf_counter()
    for v in tunable:
        space = default_space(v)
        for f in range(folds.k):
            train, _ = folds.split(f)
            if progress:
                progress(f"outer fold {f}: tuning {v} on its {len(train)} training rows")
            out = search(data, train, space, inner_search_config(cfg, v, f),
                         SearchRun(storage, name=f"search-fold{f}-{v}"),
                         base_options=base_options, progress=progress)
            where = Path(out_dir) / "tuning" / f"fold{f}_{v}"
            where.mkdir(parents=True)
            write_search(where, out)
            plan.fold_options[f"{f}/{tuned_name(v)}"] = out.best["options"]
            s = out.best["search"]
            per_fold.append({"fold": f, "variant": v, "options": out.best["options"],
                             "inner_val_mse": out.best["inner_val_mse"],
                             "best_epoch": out.best["best_epoch"], "trials": s["trials"],
                             "stopped_early": s["stopped_early"], "failed": s["failed"],
                             "epochs_trained": s["epochs_trained"],
                             "seconds": s["wall_seconds"]})
    plan.record = {"mode": "nested", "trials": cfg.tune, "inner_folds": cfg.inner_folds,
                   "max_epochs": cfg.epochs or DEFAULT_MAX_EPOCHS, "algorithm": s["algorithm"],
                   "scheduler": s["scheduler"],
                   "spaces": {v: default_space(v) for v in tunable},
                   "per_fold": per_fold, "seconds": time.perf_counter() - t0}
    return plan


def config_plan(path, folds, base_options: dict) -> Plan:
    """One fixed tuned config (best.json) for every fold, as ``<variant>@tuned``."""
    variant, options = read_best(path)
    name = tuned_name(variant)
    opts = {**base_options, **options}
    return Plan(variants=[name],
                fold_options={f"{f}/{name}": opts for f in range(folds.k)},
                record={"mode": "config", "config_file": str(path), "variant": variant,
                        "options": options})

