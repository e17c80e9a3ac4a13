"""`raviso bench cv --profile`: where one CV trial's wall time goes on a small-n / wide store.

The store is what a new user brings: 24 samples of 6 donors x ~58k genes x 200k transcripts
(`wide_store`: `raviso synth` at 6 donors' worth of GTEx rows, then 4 samples per donor kept, then
`raviso convert`). Each variant of the default list runs fold 0 as `raviso cv` runs a trial
(`cv.run_trial` with the trial's out-of-fold accumulator, 1 torch thread), in this process, with
timers on the code each phase is made of; a timer's time excludes the phases timed inside it:

  start-up     a fresh Ray worker ready to run a trial (actor start, torch + raviso imports, the
               labelled set unpickled from the object store): paid once per trial actor, and
               Tune's own per-trial cost (scheduling, report, checkpoint), from a mean-only run
  data read    the labelled set opened once per cv (driver), and the fold's rows read per trial
  features     the context models' PCA / latent / tissue features (fit and predict)
  fit          the rest of `model.fit`
  scoring      predicting the validation rows + the streamed metrics and breakdown
  reliability  the per-isoform out-of-fold accumulator (`trust.reliability`) and its file

Prints a table, then one JSON object as the LAST line. Figures: bench/README.md.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = dict(samples=24, donors=6, genes=58_000, isoforms=200_000, archs4=100)
QUICK_SHAPE = dict(samples=24, donors=6, genes=2_000, isoforms=8_000, archs4=50)
PHASES = ("startup", "data_read", "features", "fit", "scoring", "reliability")
ROWS_PER_DONOR = 18.3          # `raviso.synth.world`: one donor per ~18 GTEx rows


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


# -- the store ---------------------------------------------------------------------------------
def _keep_rows(sample_ids, per_donor: int) -> np.ndarray:
    """`per_donor` samples of every donor (the first by sample id), sorted."""
    from raviso.data.folds import donor_of

    by: dict = {}
    for i, s in enumerate(sample_ids):
        by.setdefault(donor_of(s), []).append(i)
    return np.sort(np.concatenate([rows[:per_donor] for rows in by.values()]))


def _subset_h5(src: Path, dst: Path, keep: np.ndarray) -> None:
    import h5py

    vlen = h5py.string_dtype("utf-8")
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g.create_dataset("expressions", data=f["expressions"][keep])
        g.create_dataset("row_names", data=f["row_names"][keep], dtype=vlen)
        g.create_dataset("col_names", data=f["col_names"][:], dtype=vlen)
        if "tissue" in f:
            g.create_dataset("tissue", data=f["tissue"][keep], dtype=vlen)


def wide_store(workdir: Path, shape: dict = SHAPE, seed: int = 0) -> Path:
    """A converted store of `shape` under `workdir` (reused when there): synth at 6 donors'
    worth of GTEx rows, `samples // donors` rows of each donor kept (the held-out truth dropped)."""
    from raviso.io.convert import convert
    from raviso.synth.generate import Preset, generate

    store = workdir / "store"
    if (store / "manifest.json").exists():
        return store
    full, small = workdir / "synth-full", workdir / "synth"
    n_gtex = int(round(shape["donors"] * ROWS_PER_DONOR))
    generate(full, preset=Preset("wide", shape["archs4"], n_gtex, shape["genes"],
                                 shape["isoforms"]), seed=seed, overwrite=True)
    import h5py

    with h5py.File(full / "gtex_gene_expression_norm_transposed.hdf5", "r") as f:
        ids = [s.decode() for s in f["row_names"][:]]
    keep = _keep_rows(ids, shape["samples"] // shape["donors"])
    small.mkdir(parents=True, exist_ok=True)
    for p in full.iterdir():
        if p.name.startswith("truth_heldout"):
            continue
        if p.suffix == ".hdf5" and not p.name.startswith("archs4"):
            _subset_h5(p, small / p.name, keep)
        else:
            shutil.copy(p, small / p.name)
    shutil.rmtree(full)
    convert(store, small, checksum=False)
    return store


# -- phase timers ------------------------------------------------------------------------------
class Clock:
    """Exclusive seconds per phase: a timed call's time minus the timed calls inside it."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.stack: list[list] = []

    def wrap(self, owner, name: str, phase: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*a, **kw):
            frame = [phase, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return original(*a, **kw)
            finally:
                self.stack.pop()
                total = time.perf_counter() - frame[1]
                self.seconds[phase] += total - frame[2]
                if self.stack:
                    self.stack[-1][2] += total
        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)


def install(clock: Clock) -> None:
    """Timers on the code of each phase (this process only; bench use)."""
    from raviso.evaluate.engine import scoring, streaming
    from raviso.models.context.recipe import ContextFeatures
    from raviso.trust import reliability

    for name in ("fit", "__call__"):
        clock.wrap(ContextFeatures, name, "features")
    clock.wrap(scoring, "evaluate_trial", "scoring")
    clock.wrap(streaming.StreamingMetrics, "add", "scoring")
    for name in ("start", "add", "result"):
        clock.wrap(reliability.OofAccumulator, name, "reliability")
    clock.wrap(reliability, "save_trial", "reliability")


def _fit_timer(clock: Clock, model) -> None:
    clock.wrap(model, "fit", "fit")


# -- one trial ---------------------------------------------------------------------------------
def profile_trial(data, fold_ids, variant: str, options: dict, clock: Clock) -> dict:
    """Fold 0 of `variant` as a cv trial does it, split into phases (seconds)."""
    from raviso.evaluate import cv
    from raviso.evaluate.engine.repeats import fold_split
    from raviso.models import variants as variants_mod
    from raviso.trust.reliability import OofAccumulator, save_trial

    clock.reset()
    train_idx, val_idx = fold_split(fold_ids, 0)
    t0 = time.perf_counter()
    rows = np.concatenate([train_idx, val_idx])
    for m in (data.genes, data.isoforms, data.truth):      # the fold's rows, as a trial reads
        if m is not None:
            np.asarray(m[rows], np.float32)
    read = time.perf_counter() - t0
    make = variants_mod.make_variant

    def made(*a, **kw):
        model = make(*a, **kw)
        _fit_timer(clock, model)
        return model
    variants_mod.make_variant = made
    try:
        t0 = time.perf_counter()
        oof = OofAccumulator()
        out = cv.run_trial(data, fold_ids, 0, variant, options, threads=1, taps=[oof])
        with tempfile.TemporaryDirectory() as d:
            save_trial(os.path.join(d, "oof.npz"), oof.result())
        wall = time.perf_counter() - t0
    finally:
        variants_mod.make_variant = make
    phases = dict(clock.seconds, data_read=read)
    return {"variant": variant, "mse": out["mse"], "seconds": round(wall + read, 3),
            **{k: round(v, 3) for k, v in phases.items()}}


# -- start-up ----------------------------------------------------------------------------------
def actor_startup(data) -> float:
    """Seconds for a fresh Ray actor to be ready to run a trial (imports + the labelled set)."""
    import ray

    @ray.remote(num_cpus=1)
    class Probe:
        def ready(self, d) -> int:
            import torch  # noqa: F401

            from raviso.evaluate import cv  # noqa: F401
            from raviso.models import variants  # noqa: F401

            return int(d.n)

    ref = ray.put(data)
    t0 = time.perf_counter()
    actor = Probe.remote()
    ray.get(actor.ready.remote(ref))
    seconds = time.perf_counter() - t0
    ray.kill(actor)
    return seconds


def tune_overhead(data, folds, storage: Path) -> dict:
    """A mean-only grid through Tune (as `raviso cv --variants mean`): per trial, the wall time
    the trial's own clock does not see, at the slots' parallelism."""
    from raviso.core.ray_session import cluster_cpus
    from raviso.evaluate.config import CvConfig
    from raviso.evaluate.cv import TrialGrid, tune_folds

    out = tune_folds(data, folds, TrialGrid(["mean"], {"seed": 0}), storage,
                     CvConfig(max_failures=0), name="profile-mean")
    own = sum(t.get("seconds") or 0 for t in out.trials)
    slots = min(int(cluster_cpus()), len(out.trials))
    return {"tune_wall_seconds": round(out.wall_seconds, 2), "tune_trials": len(out.trials),
            "per_trial_overhead_seconds": round((slots * out.wall_seconds - own)
                                                / len(out.trials), 2)}


# -- the command -------------------------------------------------------------------------------
def run_profile(workdir: Path, quick: bool = False, variants=None, address=None) -> dict:
    from raviso.core.ray_session import init_ray
    from raviso.data import make_folds
    from raviso.evaluate.engine.inputs import available_variants, load_labelled

    shape = QUICK_SHAPE if quick else SHAPE
    load_before = loadavg()
    t0 = time.perf_counter()
    store = wide_store(workdir, shape)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, data = load_labelled(store, {})
    opened = time.perf_counter() - t0
    folds = make_folds(data.tissue, data.donor, k=5, seed=0)
    names, skipped = available_variants(variants)
    clock = Clock()
    install(clock)
    rows = []
    for v in names:
        rows.append({**profile_trial(data, folds.fold, v, {"seed": 0}, clock),
                     "loadavg": loadavg()})
    init_ray(address=address, num_cpus=None if address else os.cpu_count())
    startup = actor_startup(data)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tune = tune_overhead(data, folds, Path(tmp))
    for r in rows:
        r["other"] = round(r["seconds"] - sum(r[p] for p in PHASES[1:]), 3)
    return {"bench": "cv_profile", "quick": quick, "shape": shape, "store_build_seconds":
            round(build, 1), "store_open_seconds": round(opened, 2),
            "actor_startup_seconds": round(startup, 2), **tune, "trials": rows,
            "skipped": skipped, "loadavg_1m_before": load_before, "loadavg_1m_after": loadavg(),
            "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def main(quick: bool = False, workdir: Path | None = None, variants=None,
         address: str | None = None) -> dict:
    from rich.console import Console
    from rich.table import Table

    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="raviso-cvprof-")) if own else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    try:
        res = run_profile(wd, quick=quick, variants=variants, address=address)
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)
    s = res["shape"]
    table = Table(title=f"one cv trial (fold 0 of 5), {s['samples']} samples x {s['genes']:,} "
                        f"genes x {s['isoforms']:,} isoforms: seconds by phase")
    cols = ("variant", "total", "read", "feat.", "fit", "score", "rel.", "other", "load")
    for c in cols:
        table.add_column(c, justify="left" if c == "variant" else "right", no_wrap=True)
    for r in res["trials"]:
        table.add_row(r["variant"], *(f"{r[k]:.2f}" for k in ("seconds", *PHASES[1:], "other")),
                      f"{r['loadavg']:.1f}")
    Console().print(table)
    print(f"start-up: a fresh trial actor {res['actor_startup_seconds']:.1f} s; Tune's own cost "
          f"per trial {res['per_trial_overhead_seconds']:.1f} s (mean-only grid, "
          f"{res['tune_trials']} trials, wall "
          f"{res['tune_wall_seconds']:.1f} s); store opened in {res['store_open_seconds']:.1f} s "
          f"(load average {res['loadavg_1m_before']} -> {res['loadavg_1m_after']})")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
