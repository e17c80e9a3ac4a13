"""A sampler thread for `raviso bench scale`: memory, disk bytes and CPU of a process tree.

What it adds up, every `interval` seconds, over the root process and ALL its descendants (a stage
command, the local Ray it starts -- gcs, raylet, workers, Tune trials, Ray Data tasks):

- ``pss``: proportional set size (/proc/PID/smaps_rollup via psutil). A page shared by k processes
  counts 1/k in each, so the sum counts every page ONCE: memory-mapped labelled matrices that every
  trial maps, and Ray's shared-memory object store, are not multiplied by the number of trials (a
  plain RSS sum would count them once per process). Private pages count fully.
- ``rss``: the plain sum of RSS, for reference (over-counts shared pages).
- ``object store``: the allocated bytes of each raylet's plasma file in /dev/shm (`plasma_bytes`).
- disk ``read_bytes``/``write_bytes`` from /proc/PID/io (storage-level: a read served by the page
  cache is not counted), summed per process over its life (the last sample of a process that exits
  between samples is kept, so at most one interval of its I/O is missed).
- CPU seconds of the tree (user + system), same rule.

I/O and CPU are what the tree did WHILE the sampler ran: a process already alive at the start (the
bench's own driver, a local Ray's gcs/raylet/workers kept across stages) counts from its counters
at that moment, not from its birth, so consecutive stages on one Ray give per-stage figures.

psutil comes with Ray (``ray/thirdparty_files``), so no new dependency: importing ray makes it
importable.
"""

from __future__ import annotations

import os
import threading
import time


def _psutil():
    try:
        import psutil
    except ImportError:                       # Ray ships it in ray/thirdparty_files
        import ray  # noqa: F401

        import psutil
    return psutil


def plasma_bytes(pid: int) -> int:
    """Allocated bytes of the Ray object store file a raylet holds open. Plasma maps a file in
    /dev/shm that it unlinks at once, so it is found through the raylet's open descriptors; its
    allocated blocks are the store's high-water mark (the allocator keeps freed pages)."""
    total = 0
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                if "plasma" in os.readlink(fd.path):
                    total += os.stat(fd.path).st_blocks * 512
            except OSError:
                pass
    except OSError:
        pass
    return total


class TreeSampler:
    """Peak PSS / RSS / object store and summed I/O and CPU of a process tree, in a thread."""

    def __init__(self, root_pid: int | None = None, interval: float = 0.5,
                 include_root: bool = True):
        self.ps = _psutil()
        self.root = self.ps.Process(root_pid or os.getpid())
        self.interval = interval
        self.include_root = include_root
        self.peak_pss = self.peak_rss = self.peak_shm = 0
        self.peak_workers_pss = 0
        self.samples = 0
        self._io: dict[int, tuple[int, int]] = {}
        self._cpu: dict[int, float] = {}
        self._base_io: dict[int, tuple[int, int]] = {}     # counters at the start (`__enter__`)
        self._base_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="raviso-memwatch")

    def processes(self):
        try:
            kids = self.root.children(recursive=True)
        except self.ps.Error:
            kids = []
        return ([self.root] if self.include_root else []) + kids

    def sample(self) -> None:
        pss = rss = workers = shm = 0
        for p in self.processes():
            try:
                with p.oneshot():
                    mem = p.memory_full_info()
                    io = p.io_counters()
                    cpu = p.cpu_times()
                    name = p.name()
            except (self.ps.Error, OSError):
                continue
            pss += getattr(mem, "pss", mem.rss)
            rss += mem.rss
            if p.pid != self.root.pid and ("ray::" in name or "default_worker" in name):
                workers += getattr(mem, "pss", mem.rss)
            if name == "raylet":
                shm += plasma_bytes(p.pid)
            self._io[p.pid] = (io.read_bytes, io.write_bytes)
            self._cpu[p.pid] = cpu.user + cpu.system
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_workers_pss = max(self.peak_workers_pss, workers)
        self.peak_shm = max(self.peak_shm, shm)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeSampler":
        self.sample()                  # the baseline: what the live processes had already done
        self._base_io, self._base_cpu = dict(self._io), dict(self._cpu)
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self._t0

    def result(self) -> dict:
        gb = 1e9
        return {"seconds": round(getattr(self, "seconds", 0.0), 2),
                "peak_memory_gb": round(self.peak_pss / gb, 3),
                "peak_rss_sum_gb": round(self.peak_rss / gb, 3),
                "peak_workers_gb": round(self.peak_workers_pss / gb, 3),
                "object_store_peak_gb": round(self.peak_shm / gb, 3),
                "read_gb": round(sum(r - self._base_io.get(pid, (0, 0))[0]
                                     for pid, (r, _) in self._io.items()) / gb, 3),
                "written_gb": round(sum(w - self._base_io.get(pid, (0, 0))[1]
                                        for pid, (_, w) in self._io.items()) / gb, 3),
                "cpu_seconds": round(sum(c - self._base_cpu.get(pid, 0.0)
                                         for pid, c in self._cpu.items()), 1),
                "samples": self.samples}
