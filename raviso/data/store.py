"""Writing the Parquet store (layout: `raviso.data.schema`): ~128 MiB row groups, files rotated so Ray
Data has several read tasks, built in a hidden temporary directory and committed by rename."""

from __future__ import annotations

import datetime as _dt
import json
import os
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..core.atomic import remove_path, replace_path, tmp_sibling, check_writable_target
from ..core.inventory import sizes
from ..core.errors import RavisoError
from .schema import (DATASETS, EXPR, FORMAT_VERSION, ISOFORM_DATASETS, MANIFEST, schema,
                     tensor_array)

ROW_GROUP_BYTES = 128 << 20
ROW_GROUPS_PER_FILE = 8
# Floats per chunk handed to the Parquet encoder: its level buffers (2 x int16 per float) stay in
# cache (see DatasetWriter).
ENCODE_CHUNK_VALUES = 1 << 16
# Background encoder threads per dataset being written, and group buffers (ROW_GROUP_BYTES each)
# per thread.
WRITE_THREADS = 0 if (os.cpu_count() or 1) <= 2 else 2
BUFFERS_PER_THREAD = 2


def rows_per_group(n_features: int) -> int:
    return max(1, ROW_GROUP_BYTES // (4 * n_features))


def _strings(values, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.string())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


class _Part:
    """One ``part-NNNNN.parquet`` file. Only the lane (thread) that owns the file touches it."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: pq.ParquetWriter | None = None


class DatasetWriter:
    """Streams row slabs of one matrix into ``<dir>/part-NNNNN.parquet``.

    Slabs of any size are re-cut into row groups of `rows_per_group` rows, so the caller can read
    its input in whatever chunks are fastest for it.

    Why it looks like this (bench/README.md, convert section, has the numbers): the Parquet
    encoder of the tensor column is the bottleneck of `convert` -- it writes a repetition and a
    definition level for every float.

    - Each row group reaches the encoder as a column of small chunks (`ENCODE_CHUNK_VALUES` floats,
      zero-copy slices). Arrow builds the levels per chunk, so the level buffers stay small, warm
      in cache and reused, instead of two row-group-sized int16 buffers grown by realloc (memcpy,
      plus the kernel zeroing fresh pages). Same file, less CPU.
    - ``threads=0``: row groups are encoded in the caller's thread, straight from the caller's
      array when a slab holds whole groups (no copy); only the remainders are copied into one
      reused buffer.
    - ``threads=N``: N background lanes encode; file k belongs to lane k % N, so each file is
      written in order by one thread with its own ParquetWriter while files of other lanes are
      encoded at the same time (pyarrow releases the GIL); rows stay in order because files are
      numbered in row order. `write` copies each slab into a writer-owned group buffer (the
      caller may reuse its array as soon as `write` returns); at most ``N * BUFFERS_PER_THREAD``
      buffers exist, which bounds memory and makes a fast producer wait for the encoder (so the
      next file's lane starts once the producer is that far ahead: partial overlap with
      ROW_GROUPS_PER_FILE = 8). An exception in a lane is re-raised by the next `write` or by
      `close`.

    `WRITE_THREADS` is 0 on <= 2 cores: `convert` already reads and hashes in other threads and
    writes ARCHS4 and the labelled set in two lanes, so there the copy and the extra threads cost
    more CPU per GB than they save in wall time.

    `abort` stops the lanes and closes the files (StoreBuilder then removes the directory).
    """

    def __init__(self, directory: Path, n_features: int, compression: str = "none",
                 threads: int | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_features = int(n_features)
        self.schema = schema(self.n_features)
        self.group_rows = rows_per_group(self.n_features)
        self.chunk_rows = max(1, ENCODE_CHUNK_VALUES // self.n_features)
        self.compression = compression
        self.threads = max(0, WRITE_THREADS if threads is None else int(threads))
        self.max_buffers = max(1, self.threads * BUFFERS_PER_THREAD)
        self.rows = 0
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"raviso-parquet-{k}")
                       for k in range(self.threads)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._allocated = 0
        self._futures: list[Future] = []
        self._parts: list[_Part] = []
        self._groups = 0                     # row groups handed to the encoder
        self._open = False                   # the last file's last group did not close it
        self._buf: np.ndarray | None = None  # the group being filled
        self._fill = 0
        self._meta: list[list[pa.Array]] = [[], [], []]   # sample_id, tissue, donor pieces
        self._closed = False

    def write(self, X: np.ndarray, sample_ids, tissue=None, donor=None) -> None:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"slab shape {X.shape} does not match {self.n_features} features")
        n = X.shape[0]
        if n == 0:
            return
        self._raise_failed()
        meta = [_strings(sample_ids, n), _strings(tissue, n), _strings(donor, n)]
        a = 0
        while a < n:
            k = min(n - a, self.group_rows - self._fill)
            if not self._lanes and self._fill == 0 and k == self.group_rows:
                self._submit(X[a:a + k], [m.slice(a, k) for m in meta], last=False, pooled=False)
            else:
                if self._buf is None:
                    self._buf = self._take_buffer()
                np.copyto(self._buf[self._fill:self._fill + k], X[a:a + k], casting="unsafe")
                for pieces, arr in zip(self._meta, meta):
                    pieces.append(arr.slice(a, k))
                self._fill += k
                if self._fill == self.group_rows:
                    self._submit_buffer(last=False)
            a += k
        self.rows += n

    def _take_buffer(self) -> np.ndarray:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._allocated < self.max_buffers:
            self._allocated += 1
            return np.empty((self.group_rows, self.n_features), np.float32)
        buf = self._free.get()      # a lane hands it back when it has written its group
        self._raise_failed()
        return buf

    def _submit_buffer(self, last: bool) -> None:
        meta = [pa.concat_arrays(p) for p in self._meta]
        buf, n = self._buf, self._fill
        self._buf, self._fill, self._meta = None, 0, [[], [], []]
        self._submit(buf[:n], meta, last, pooled=True)

    def _submit(self, X: np.ndarray, meta, last: bool, pooled: bool) -> None:
        """Encode one row group (now, or in its file's lane); `last`: no more rows will come."""
        f, i = divmod(self._groups, ROW_GROUPS_PER_FILE)
        if i == 0:
            self._parts.append(_Part(self.dir / f"part-{f:05d}.parquet"))
        close = last or i == ROW_GROUPS_PER_FILE - 1
        self._groups += 1
        self._open = not close
        self._run(f, self._encode, self._parts[f], X, meta, close, pooled)

    def _run(self, file_index: int, fn, *args) -> None:
        if not self._lanes:
            fn(*args)
        else:
            lane = self._lanes[file_index % len(self._lanes)]
            self._futures.append(lane.submit(fn, *args))

    def _encode(self, part: _Part, X: np.ndarray, meta, close: bool, pooled: bool) -> None:
        try:
            table = pa.Table.from_arrays([*meta, tensor_array(X)], schema=self.schema)
            chunked = pa.Table.from_batches(table.to_batches(max_chunksize=self.chunk_rows),
                                            self.schema)
            if part.writer is None:
                part.writer = pq.ParquetWriter(
                    part.path, self.schema, compression=self.compression,
                    use_dictionary=["tissue", "donor"], write_statistics=["sample_id"])
            part.writer.write_table(chunked, row_group_size=len(X))
            if close:
                _close_part(part)
        finally:
            if pooled:
                self._free.put(X.base if X.base is not None else X)

    def _raise_failed(self) -> None:
        """Re-raise the first exception of a finished lane job; forget the finished ones."""
        for f in self._futures:
            if f.done() and f.exception() is not None:
                raise f.exception()
        self._futures = [f for f in self._futures if not f.done()]

    def close(self) -> dict:
        if not self._closed:
            if self._fill:
                self._submit_buffer(last=True)
            elif self._open:
                self._run(len(self._parts) - 1, _close_part, self._parts[-1])
            self._open = False
            for lane in self._lanes:
                lane.shutdown(wait=True)
            self._closed = True
            self._release()
            self._raise_failed()
        return {"rows": self.rows, "features": self.n_features, "dtype": "float32",
                "row_group_rows": self.group_rows, "files": len(self._parts)}

    def abort(self) -> None:
        """Stop the lanes (queued groups are dropped) and close any open file."""
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)
        for part in self._parts:
            try:
                _close_part(part)
            except Exception:   # already failing; StoreBuilder removes the directory next
                pass
        self._closed = True
        self._futures = []
        self._release()

    def _release(self) -> None:
        self._buf = None
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                return


def _close_part(part: _Part) -> None:
    if part.writer is not None:
        writer, part.writer = part.writer, None
        writer.close()


class StoreBuilder:
    """Builds a store in a temporary sibling directory; `commit` renames it into place.

    Use as a context manager: leaving the block by an exception (or a kill, since nothing is ever
    renamed) leaves no store behind.

        with StoreBuilder(path, genes=genes, isoforms=iso, isoform_gene=iso_gene) as sb:
            w = sb.dataset("archs4")
            for X, ids in chunks: w.write(X, ids)
            sb.add_source("archs4", src_path, kind="course-hdf5", sha256=...)
        # committed here
    """

    def __init__(self, path, genes, isoforms=None, isoform_gene=None, overwrite=False,
                 compression="none", units="log2(TPM+1)", threads: int | None = None):
        self.path = check_writable_target(path, overwrite)
        self.genes = [str(g) for g in genes]
        self.isoforms = None if isoforms is None else [str(i) for i in isoforms]
        self.isoform_gene = None if isoform_gene is None else [str(g) for g in isoform_gene]
        _check_unique(self.genes, "gene", path)
        if self.isoforms is not None:
            _check_unique(self.isoforms, "isoform", path)
            if self.isoform_gene is None or len(self.isoform_gene) != len(self.isoforms):
                raise ValueError("isoform_gene must give one gene per isoform")
        self.compression = compression
        self.threads = threads          # DatasetWriter's encoder lanes (None: WRITE_THREADS)
        self.units = units
        self.tmp = tmp_sibling(self.path)
        self.tmp.mkdir()
        self._writers: dict[str, DatasetWriter] = {}
        self._sources: list[dict] = []
        self.extra: dict = {}

    def dataset(self, name: str) -> DatasetWriter:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
        if name in self._writers:
            return self._writers[name]
        if name in ISOFORM_DATASETS:
            if self.isoforms is None:
                raise ValueError("store has no isoform names")
            d = len(self.isoforms)
        else:
            d = len(self.genes)
        w = DatasetWriter(self.tmp / name, d, self.compression, self.threads)
        self._writers[name] = w
        return w

    def discard(self, name: str) -> None:
        """Drop dataset `name` and everything written to it so far; `dataset(name)` then starts it
        afresh. (convert uses it when a streamed file turns out to list its samples in another
        order than the gene matrix, and rewrites the dataset re-ordered.)"""
        w = self._writers.pop(name, None)
        if w is not None:
            w.abort()
            remove_path(w.dir)

    def add_source(self, dataset: str, path, kind: str, **info) -> None:
        self._sources.append({"dataset": dataset, "path": str(path), "kind": kind, **info})

    def commit(self) -> Path:
        try:
            return self._commit()
        except BaseException:   # e.g. the last row group failed to encode: leave no store
            self.abort()
            raise

    def _commit(self) -> Path:
        datasets = {name: w.close() for name, w in self._writers.items()}
        manifest = {
            "format_version": FORMAT_VERSION,
            "raviso_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "units": self.units,
            "dtype": "float32",
            "expr_column": EXPR,
            "genes": self.genes,
            "isoforms": self.isoforms,
            "isoform_gene": self.isoform_gene,
            "datasets": datasets,
            "sources": self._sources,
            "parts": sizes(self.tmp),        # every part's bytes: `Store` names a damaged one
            **self.extra,
        }
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        replace_path(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        for w in self._writers.values():
            w.abort()
        remove_path(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def _check_unique(names, what, path):
    if len(set(names)) != len(names):
        seen, dups = set(), []
        for n in names:
            if n in seen:
                dups.append(n)
            seen.add(n)
        raise RavisoError(f"duplicate {what} names: {', '.join(dups[:10])}", path)


def write_store(path, genes, *, isoforms=None, isoform_gene=None, overwrite=False, extra=None,
                **datasets) -> Path:
    """Write a whole (small) store from in-memory arrays; tests and `import` use this.

    Each dataset (``archs4``, ``gtex_gene``, ``gtex_isoform``, ``truth``, ``truth_heldout``) is a
    keyword: a dict with ``X`` (n, d) and ``sample_id``, optionally ``tissue`` and ``donor``.
    """
    order = ("archs4", "gtex_gene", "gtex_isoform", "truth", "truth_heldout")
    unknown = sorted(set(datasets) - set(order))
    if unknown:
        raise TypeError(f"write_store: unknown dataset(s) {', '.join(unknown)}")
    with StoreBuilder(path, genes, isoforms, isoform_gene, overwrite=overwrite) as sb:
        sb.extra.update(extra or {})
        for name in order:
            part = datasets.get(name)
            if part is not None:
                sb.dataset(name).write(part["X"], part["sample_id"], part.get("tissue"),
                                       part.get("donor"))
    return Path(path)
