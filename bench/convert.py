"""`raviso bench convert`: HDF5 -> Parquet conversion throughput next to its bound.

Measured side by side in one run, on one generated course-format HDF5 (ARCHS4 shape: N x 18,965
float32): a plain sequential ``read_direct`` of the HDF5 (the bound: conversion cannot beat
reading its input), `raviso.io.convert.convert` with and without the sha256 thread, the GTEx path
(columns permuted into another gene order), and the store read back by pyarrow and by Ray Data.
GB/s are of float32 payload (rows x features x 4 bytes) / wall seconds. The input was just written,
so it is (mostly) in the page cache for every reader alike; best of `reps` runs each.
Prints a table, then one JSON object as the LAST line.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

COURSE_ROWS, COURSE_GENES = 167_884, 18_965
QUICK_ROWS = 4_000          # ~0.3 GB: a few seconds per measurement


def make_input(path: Path, rows: int, genes: int, seed: int = 0) -> Path:
    """A course-format HDF5 written in slabs (never whole in memory); log-scale-like values."""
    from raviso.io.course import write_course_hdf5

    rng = np.random.default_rng(seed)
    slab = max(1, (256 << 20) // (4 * genes))

    def slabs():
        for s in range(0, rows, slab):
            X = rng.random((min(slab, rows - s), genes), dtype=np.float32)
            X *= 12
            X[X < 3.6] = 0          # ~30% zeros, as real expression
            yield X
    return write_course_hdf5(path, slabs(), [f"GSM{k}" for k in range(rows)],
                             [f"G{j}" for j in range(genes)], n_rows=rows)


def h5_read(path: Path, slab_rows: int) -> None:
    """A plain sequential read of `expressions` into a reused buffer."""
    import h5py

    with h5py.File(path, "r") as f:
        d = f["expressions"]
        n, g = d.shape
        buf = np.empty((min(slab_rows, n), g), np.float32)
        for s in range(0, n, slab_rows):
            e = min(n, s + slab_rows)
            d.read_direct(buf, np.s_[s:e], np.s_[0:e - s])


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one call. On a shared machine
    the wall time depends on the load; the CPU time says what the work itself costs."""
    c0, t0 = _cpu(), time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0, _cpu() - c0


def convert_once(store: Path, checksum: bool, **files) -> None:
    from raviso.io.convert import convert

    shutil.rmtree(store, ignore_errors=True)
    convert(store, checksum=checksum, **files)


def arrow_read(store: Path) -> None:
    """Stream the archs4 dataset back as numpy (pyarrow, no Ray)."""
    import pyarrow.parquet as pq

    from raviso.data import Store
    from raviso.data.reader import tensor_to_numpy

    st = Store(store)
    for f in sorted(Path(st.path_of("archs4")).glob("*.parquet")):
        for batch in pq.ParquetFile(f).iter_batches(columns=["expr"], batch_size=2048):
            tensor_to_numpy(batch.column(0))


def start_ray(address=None):
    """Ray up and its workers warm (a one-row read), so start-up is not counted in the read."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray.data

    from raviso.core.ray_session import init_ray

    ray = init_ray(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    return ray


def raydata_read(store: Path) -> None:
    """Stream the archs4 dataset through Ray Data as numpy batches (as training consumes it)."""
    from raviso.data import Store

    ds = Store(store).ray_dataset("archs4", columns=["expr"])
    for _ in ds.iter_batches(batch_size=1024, batch_format="numpy"):
        pass


def run(quick: bool = False, rows: int | None = None, workdir=None, src=None,
        reps: int | None = None, ray: bool = True, address=None, echo=print) -> dict:
    rows = rows or (QUICK_ROWS if quick else COURSE_ROWS)
    reps = reps or (3 if quick else 1)
    base = Path(tempfile.mkdtemp(prefix="raviso-bench-convert-", dir=workdir))
    try:
        t0 = time.perf_counter()
        h5 = Path(src) if src else make_input(base / "archs4.hdf5", rows, COURSE_GENES)
        import h5py

        with h5py.File(h5, "r") as f:
            rows, genes = f["expressions"].shape
            names = [n.decode() for n in f["col_names"][()]]
        gen_s = time.perf_counter() - t0
        gb = rows * genes * 4 / 1e9
        from raviso.data import Store
        from raviso.data.store import rows_per_group

        slab = rows_per_group(genes)
        # a small ARCHS4 file in another gene order makes the big file the permuted GTEx side
        perm = [names[j] for j in np.random.default_rng(1).permutation(genes)]
        small = base / "archs4_small.hdf5"
        from raviso.io.course import write_course_hdf5

        write_course_hdf5(small, np.ones((8, genes), np.float32), [f"GSM{k}" for k in range(8)],
                          perm)
        store = base / "store"
        import pyarrow.parquet  # noqa: F401  (imports are not part of any measure)

        import raviso.io.convert  # noqa: F401

        load0 = os.getloadavg()[0]
        perm = base / "store_perm"
        steps = {
            "h5_read": lambda: h5_read(h5, slab),
            "convert": lambda: convert_once(store, True, archs4=h5),
            "convert_nochecksum": lambda: convert_once(store, False, archs4=h5),
            "arrow_read": lambda: arrow_read(store),
        }
        if ray:
            steps["raydata_read"] = lambda: raydata_read(store)
        # last, after `store` is deleted: two full-size stores never sit on disk at once
        steps["convert_permuted"] = lambda: convert_once(perm, False, archs4=small, gtex_gene=h5)
        if ray:
            start_ray(address)
            convert_once(store, False, archs4=h5)
            Store(store).ray_dataset("archs4", columns=["expr"]).take_batch(1)   # warm workers
        t: dict[str, list] = {k: [] for k in steps}
        for _ in range(reps):   # interleaved, so machine noise hits every measure alike
            for k, fn in steps.items():
                if k == "convert_permuted":
                    shutil.rmtree(store, ignore_errors=True)
                t[k].append(timed(fn))
            shutil.rmtree(perm, ignore_errors=True)
        best = {k: min(v) for k, v in t.items()}       # (wall, cpu) of the fastest wall
        res = {f"{k}_gbps": round(gb / v[0], 3) for k, v in best.items()}
        res["ratio"] = round(best["h5_read"][0] / best["convert"][0], 3)
        res["convert_cpu_gbps"] = round(gb / best["convert"][1], 3)
        res.update(rows=rows, features=genes, input_gb=round(gb, 3), reps=reps,
                   generate_s=round(gen_s, 1), cpus=os.cpu_count(),
                   loadavg=[round(load0, 1), round(os.getloadavg()[0], 1)], quick=quick)
        echo(f"input: {rows} x {genes} float32 = {gb:.2f} GB ({h5.name}); best of {reps}; "
             f"{os.cpu_count()} CPUs, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
        echo(f"{'measure':<34}{'wall s':>8}{'GB/s':>7}{'CPU s':>8}{'GB/CPU-s':>10}")
        labels = {"h5_read": "HDF5 sequential read (bound)", "convert": "convert HDF5->Parquet",
                  "convert_nochecksum": "convert, --no-checksum",
                  "convert_permuted": "convert, GTEx gene permutation",
                  "arrow_read": "store read back: pyarrow",
                  "raydata_read": "store read back: Ray Data"}
        for k, (wall, cpu) in best.items():
            per_cpu = f"{gb / cpu:>10.2f}" if k != "raydata_read" else f"{'(workers)':>10}"
            echo(f"{labels[k]:<34}{wall:>8.2f}{gb / wall:>7.2f}{cpu:>8.2f}{per_cpu}")
        echo(f"ratio convert/read = {res['ratio']:.2f}")
        if ray:
            import ray as _ray

            _ray.shutdown()
        echo(json.dumps(res))
        return res
    finally:
        shutil.rmtree(base, ignore_errors=True)
