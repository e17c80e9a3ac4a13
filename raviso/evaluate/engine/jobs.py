"""Which Tune trials `raviso cv` runs, and in what order: one per (fold, variant), longest first,
except that on a small store a fold's baselines share ONE trial (a batch).

Why batches: on a small store a baseline's work is a second or less, below what Tune spends on
each trial (scheduling, report, checkpoint: seconds on 2 busy cores), so seven baselines x five
folds paid that cost 35 times (bench/README.md, "cv per-trial profile"). A batch runs its members
one after another in one worker, each into its own part of the trial's checkpoint, and reports
once; every member keeps its own results row, errors, out-of-fold arrays and --resume record. A
member that raises is retried in place up to --max-failures times (as Tune would have retried
its trial) and then recorded as failed, while its siblings still run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np

BATCH_BELOW = 500          # labelled samples: a store this small batches its baselines
MEMBER_FILE = "member.json"       # a member's attempts here, and its error if it failed


def trial_order(variants, k: int) -> list[list]:
    """Grid of [fold, variant], longest trials first (neural on genes, then neural on a latent,
    then the baselines): Tune starts trials in this order, so the short ones fill the gaps at the
    end instead of one long trial leaving a core idle (longest-processing-time-first)."""
    from ...models.variants import BASELINES, variant_needs

    def cost_rank(v):
        return 2 if v in BASELINES else (0 if "genes" in variant_needs(v) else 1)

    ranked = sorted(variants, key=lambda v: (cost_rank(v), list(variants).index(v)))
    return [[f, v] for v in ranked for f in range(k)]


def batch_jobs(jobs: list[list], n_samples: int) -> list[list]:
    """`jobs` ([fold, variant]) with, below `BATCH_BELOW` samples, each fold's plain baselines as
    one [fold, [variant, ...]] job where its first baseline was (a lone baseline stays a job)."""
    from ...models.variants import BASELINES, base_name

    if n_samples >= BATCH_BELOW:
        return [list(j) for j in jobs]
    out, batch = [], {}
    for fold, v in jobs:
        if "@" in v or base_name(v) not in BASELINES:
            out.append([fold, v])
        elif fold in batch:
            batch[fold][1].append(v)
        else:
            batch[fold] = [fold, [v]]
            out.append(batch[fold])
    return [[f, v[0]] if isinstance(v, list) and len(v) == 1 else [f, v] for f, v in out]


def members(job) -> list[str]:
    """The variants of a job: [fold, variant] or a batch [fold, [variant, ...]]."""
    return list(job[1]) if isinstance(job[1], (list, tuple)) else [job[1]]


def run_batch(trial, config: dict, data, fold_ids) -> None:
    """Run a batch job: each member as `trial(config, data, fold_ids, into=part)` (the cv
    trainable, writing its checkpoint files into `part`), then ONE report for all of them."""
    from ray import tune

    fold, names = int(config["job"][0]), members(config["job"])
    # numbers only (Tune's loggers take no strings): the members are the trial's config
    said = {"batch_mse": [], "batch_seconds": [], "batch_attempts": [], "batch_failed": []}
    with tempfile.TemporaryDirectory() as d:
        for i, v in enumerate(names):
            part = os.path.join(d, str(i))
            os.mkdir(part)
            out, attempts, error = None, 0, None
            while out is None and attempts <= int(config.get("max_failures", 0)):
                attempts += 1
                try:
                    out = trial({**config, "fold": fold, "variant": v}, data=data,
                                fold_ids=fold_ids, into=part)
                except Exception as e:  # noqa: BLE001 - retried, then recorded as failed
                    error = (f"{type(e).__name__}: {e}".strip().splitlines() or ["?"])[-1][:300]
                    shutil.rmtree(part)           # nothing half-written is taken as finished
                    os.mkdir(part)
            with open(os.path.join(part, MEMBER_FILE), "w") as f:
                json.dump({"attempts": attempts, "error": None if out else error}, f)
            said["batch_mse"].append(float("nan") if out is None else out.get("mse"))
            said["batch_seconds"].append(0.0 if out is None else out.get("seconds"))
            said["batch_attempts"].append(attempts)
            said["batch_failed"].append(int(out is None))
        tune.report(said, checkpoint=tune.Checkpoint.from_directory(d))


def collect_batch(result, recoveries: dict, keys, trials: list, errors: dict, oof: dict) -> None:
    """A batch's Tune result as one results row per member (+ its errors and arrays), as the
    rows of single trials are made (`cv._collect`)."""
    from ...trust.reliability import load_trial
    from .resume import ERRORS_FILE, TRIAL_FILE

    fold, names = int(result.config["job"][0]), members(result.config["job"])
    if result.error:
        msg = str(result.error).strip().splitlines()[-1][:300]
        for v in names:
            attempts = 1 + recoveries.get((fold, v), 0)
            trials.append({"fold": fold, "variant": v, "status": "error", "attempts": attempts,
                           "retried": attempts > 1, "error": msg})
        return
    with result.checkpoint.as_directory() as d:
        for i, v in enumerate(names):
            part = os.path.join(d, str(i))
            with open(os.path.join(part, MEMBER_FILE)) as f:
                member = json.load(f)
            attempts = member["attempts"] + recoveries.get((fold, v), 0)
            row = {"fold": fold, "variant": v, "status": "error" if member["error"] else "ok",
                   "attempts": attempts, "retried": attempts > 1, "error": member["error"]}
            trials.append(row)
            if member["error"]:
                continue
            with open(os.path.join(part, TRIAL_FILE)) as f:
                m = json.load(f)["metrics"]
            row.update({k: m[k] for k in keys if k in m})
            errors[(fold, v)] = np.load(os.path.join(part, ERRORS_FILE))
            oof[(fold, v)] = load_trial(part)


@dataclass(frozen=True)
class TrialGrid:
    """The trials of a CV: the variants (in column order), the options each is made with, and
    more trial config (a tuned column's per-fold options, test faults)."""

    variants: list
    options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def trial_options(variant_options, epochs, seed: int, gpus_per_trial: float) -> dict:
    """The options every trial's variant is made with: the user's, then --epochs, the seed and,
    with GPUs per trial, the cuda device."""
    options = dict(variant_options or {})
    if epochs is not None:
        options["epochs"] = int(epochs)
    options.setdefault("seed", seed)
    if gpus_per_trial:
        options.setdefault("device", "cuda")
    return options
