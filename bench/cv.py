"""`raviso bench cv [--quick]`: how well Ray Tune parallelises the cross-validation.

Runs the paper's 3 variants x 5 folds twice on the same in-memory labelled set: one by one in this
process (1 torch thread each, the unit of work `raviso.evaluate.cv.run_trial` times itself), then as Tune
trials (1 CPU each, as many at once as the cluster has CPUs). Prints a table and, as the LAST line,
one JSON object with ``parallel_efficiency`` = (sum of the one-by-one trial times) /
(slots x Tune wall time), where slots = concurrent trials (2 on the 2-core development machine).
Everything Tune costs on top of the work (actor start-up, torch import, putting the matrices in the
object store, result collection, idle cores at the end) lowers it. ``slot_utilisation`` = (sum of
the trials' own times inside Tune) / (slots x wall) separates that overhead from contention: on a
machine shared with other work the one-by-one and the parallel phases see different loads, so
``parallel_efficiency`` is only meaningful on an otherwise idle machine (the JSON records the load
average before and after). ``machine_two_process_efficiency`` is the control: two of the same
trials at once in two plain forked processes (no Ray), (their one-by-one times) / (2 x wall) — the
ceiling this machine, with whatever else runs on it, allows any scheduler.

The data are synthetic, shaped like the ``small`` preset's labelled set (1,500 samples, 1,750
genes, 14,490 isoforms), with fixed 64-d latents standing in for the VAE/AE encodings: the bench
measures scheduling, not the encoders. The gene FFNN costs about twice a latent FFNN here, so the 15
trials can pack evenly onto 2 cores when started longest first (as `raviso cv` does).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("gene_ffnn", "vae_ffnn", "ae_ffnn")
FOLDS = 5
FULL = dict(n=1500, genes=1750, isoforms=14490, latent=64, epochs=60)
QUICK = dict(n=400, genes=600, isoforms=4000, latent=32, epochs=5)


def synthetic_labelled(n: int, genes: int, isoforms: int, latent: int, seed: int = 0):
    """A Labelled set with tissue structure and two latent spaces (random projections)."""
    from raviso.data.labelled import Labelled

    rng = np.random.default_rng(seed)
    n_tissues, per_donor = 10, 5
    tissue = rng.integers(0, n_tissues, n)
    G = (2 + rng.normal(0, 1, (n_tissues, genes))[tissue] + rng.normal(0, 0.5, (n, genes)))
    G = G.clip(0).astype(np.float32)
    W = (rng.normal(0, 0.05, (genes, isoforms)) * (rng.random((genes, isoforms)) < 0.05))
    Y = (1 + (G - G.mean(0)) @ W + rng.normal(0, 0.3, (n, isoforms))).clip(0).astype(np.float32)
    data = Labelled(
        sample_id=np.array([f"GTEX-B{i // per_donor:04d}-{i:05d}" for i in range(n)]),
        tissue=np.array([f"T{t}" for t in tissue]),
        donor=np.array([f"GTEX-B{i // per_donor:04d}" for i in range(n)]),
        genes=G, isoforms=Y, gene_names=[f"G{j}" for j in range(genes)],
        isoform_names=[f"I{j}" for j in range(isoforms)],
        isoform_gene=np.arange(isoforms, dtype=np.int64) % genes)
    for name in ("vae", "ae"):
        P = rng.normal(0, 1 / np.sqrt(genes), (genes, latent)).astype(np.float32)
        data.latent[name] = np.ascontiguousarray(G @ P)
    return data


_FORKED = {}


def _forked_trial(job) -> float:
    fold, variant = job
    d = _FORKED
    return run_trial_seconds(d["data"], d["folds"], fold, variant, d["options"])


def run_trial_seconds(data, folds, fold, variant, options) -> float:
    from raviso.evaluate.cv import run_trial

    return run_trial(data, folds.fold, fold, variant, options, threads=1)["seconds"]


def machine_scaling(data, folds, options, sequential: dict) -> float:
    """The same two trials at once in two plain forked processes (no Ray): what this machine
    gives two single-threaded trainings in parallel, the ceiling for Tune's efficiency."""
    import multiprocessing as mp

    jobs = [(0, VARIANTS[0]), (1, VARIANTS[0])]
    _FORKED.update(data=data, folds=folds, options=options)
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_forked_trial, jobs)
    wall = time.perf_counter() - t0
    return sum(sequential[j] for j in jobs) / (2 * wall)


def slot_idle(trials, began: float, ended: float) -> dict:
    """Idle seconds of the Tune phase's actors (a trial's own clock starts in the trainable):
    ``start`` before each actor's first trial, ``between`` its trials, ``tail`` after its last."""
    by_pid: dict = {}
    for t in trials:
        if t.get("started_at") is not None:
            by_pid.setdefault(t["pid"], []).append((t["started_at"], t["finished_at"]))
    idle = {"start": 0.0, "between": 0.0, "tail": 0.0}
    for spans in by_pid.values():
        spans.sort()
        idle["start"] += spans[0][0] - began
        idle["between"] += sum(b[0] - a[1] for a, b in zip(spans, spans[1:]))
        idle["tail"] += ended - spans[-1][1]
    return {k: round(v, 2) for k, v in idle.items()} | {"actors": len(by_pid)}


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def run_bench(quick: bool = False, address: str | None = None, seed: int = 0) -> dict:
    from raviso.evaluate.config import CvConfig
    from raviso.evaluate.cv import TrialGrid, run_trial, tune_folds
    from raviso.evaluate.engine.jobs import trial_order
    from raviso.data import make_folds
    from raviso.core.ray_session import cluster_cpus, init_ray

    size = QUICK if quick else FULL
    data = synthetic_labelled(size["n"], size["genes"], size["isoforms"], size["latent"], seed)
    folds = make_folds(data.tissue, data.donor, k=FOLDS, seed=seed)
    options = {"epochs": size["epochs"], "seed": seed}
    load_before = loadavg()

    # torch's one-time start-up (first kernels) is paid here, not by the first timed trial;
    # inside Tune each actor pays it within its first trial, which is part of Tune's cost
    run_trial(data, folds.fold, 0, VARIANTS[0], {**options, "epochs": 1}, threads=1)
    sequential = {(fold, variant): run_trial_seconds(data, folds, fold, variant, options)
                  for fold, variant in trial_order(VARIANTS, FOLDS)}

    machine = machine_scaling(data, folds, options, sequential)
    init_ray(address=address, num_cpus=None if address else os.cpu_count())
    slots = int(cluster_cpus())
    from bench.memwatch import TreeSampler

    driver0 = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as tmp, TreeSampler(interval=1.0) as tree:
        began = time.time()
        outcome = tune_folds(data, folds, TrialGrid(VARIANTS, options), Path(tmp),
                             CvConfig(cpus_per_trial=1, max_failures=0), name="bench-cv")
        ended = time.time()
    driver1 = resource.getrusage(resource.RUSAGE_SELF)
    driver_cpu = (driver1.ru_utime - driver0.ru_utime) + (driver1.ru_stime - driver0.ru_stime)
    tuned = {(t["fold"], t["variant"]): t.get("seconds") for t in outcome.trials}
    tuned_cpu = {(t["fold"], t["variant"]): t.get("cpu_seconds") for t in outcome.trials}
    seq_sum = sum(sequential.values())
    return {
        "bench": "cv", "quick": quick, "folds": FOLDS, "variants": list(VARIANTS),
        "shape": {k: size[k] for k in ("n", "genes", "isoforms", "latent")},
        "epochs": size["epochs"], "slots": slots,
        "sequential_seconds": round(seq_sum, 2),
        "tune_wall_seconds": round(outcome.wall_seconds, 2),
        "tune_trial_seconds": round(sum(v for v in tuned.values() if v), 2),
        "parallel_efficiency": round(seq_sum / (slots * outcome.wall_seconds), 3),
        "machine_two_process_efficiency": round(machine, 3),
        "slot_utilisation": round(sum(v for v in tuned.values() if v)
                                  / (slots * outcome.wall_seconds), 3),
        # CPU time the trials' computing threads got / their wall time inside Tune: ~1 means
        # they were never waiting for a core (a slowdown is then the cores running slower)
        "tune_trial_cpu_share": round(sum(v for v in tuned_cpu.values() if v)
                                      / max(sum(v for v in tuned.values() if v), 1e-9), 3),
        "all_zero_copy": all(t.get("zero_copy") for t in outcome.trials),
        # where the slots' idle time went: before each actor's first trial, between trials in
        # one actor (reporting, checkpoint, the next trial's set-up), after each actor's last
        "slot_idle_seconds": slot_idle(outcome.trials, began, ended),
        # where the Tune phase's CPU went: the driver (Tune's controller loop) and
        # the whole process tree (driver, Ray daemons, trial workers) vs the trials' own seconds
        "tune_driver_cpu_seconds": round(driver_cpu, 2),
        "tune_tree_cpu_seconds": tree.result()["cpu_seconds"],
        "huge_pages": "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""),
        "failed_trials": sum(t["status"] != "ok" for t in outcome.trials),
        "loadavg_1m_before": load_before, "loadavg_1m_after": loadavg(),
        "per_trial": {f"fold{f}_{v}": [round(sequential[(f, v)], 2)] + [
            None if d.get((f, v)) is None else round(d[(f, v)], 2) for d in (tuned, tuned_cpu)]
                      for f, v in sorted(sequential)},
    }


def main(quick: bool = False, address: str | None = None) -> dict:
    from rich.console import Console
    from rich.table import Table

    t0 = time.perf_counter()
    res = run_bench(quick=quick, address=address)
    table = Table(title=f"raviso bench cv: {FOLDS} folds x {len(VARIANTS)} variants "
                        f"({'quick' if quick else 'full'})")
    for col in ("trial", "one by one (s)", "in Tune (s)", "its CPU in Tune (s)"):
        table.add_column(col, justify="right" if col != "trial" else "left")
    for name, (seq, *tun) in res["per_trial"].items():
        table.add_row(name, f"{seq:.2f}", *("-" if t is None else f"{t:.2f}" for t in tun))
    table.add_row("sum / wall", f"{res['sequential_seconds']:.1f}",
                  f"wall {res['tune_wall_seconds']:.1f} on {res['slots']} slots",
                  f"CPU share {res['tune_trial_cpu_share']:.3f}")
    Console(stderr=False).print(table)
    print(f"parallel efficiency {res['parallel_efficiency']:.3f}, slot utilisation "
          f"{res['slot_utilisation']:.3f}, two plain processes "
          f"{res['machine_two_process_efficiency']:.3f}, slot idle {res['slot_idle_seconds']} "
          f"(load average {res['loadavg_1m_before']} -> {res['loadavg_1m_after']}; "
          f"bench total {time.perf_counter() - t0:.0f} s)")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
