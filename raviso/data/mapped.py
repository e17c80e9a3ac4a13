"""The labelled matrices as memory-mapped ``.npy`` files: one copy per machine, shared read-only by
every CV trial (`Labelled` pickles as the cache's address). Built once from the store, keyed by its
manifest and the target dtype. Layout, dtype choice and measurements: docs/internals.md."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .reader import Store, tensor_to_numpy
from ..core.atomic import replace_path, tmp_sibling
from ..core.config import TARGET_DTYPE
from ..core.errors import RavisoError

TARGET_DTYPES = ("auto", "float32", "float16")
AUTO_FLOAT16_BYTES = 4 << 30          # float32 isoforms above 4 GB -> float16 under "auto"
FILES = {"gtex_gene": "genes.npy", "gtex_isoform": "isoforms.npy", "truth": "truth.npy"}
INFO = "cache.json"


def choose_dtype(store: Store, target_dtype: str = TARGET_DTYPE) -> str:
    if target_dtype not in TARGET_DTYPES:
        raise RavisoError(f"--target-dtype must be one of {', '.join(TARGET_DTYPES)}, "
                          f"got {target_dtype!r}")
    if target_dtype != "auto":
        return target_dtype
    n, m = store.n_rows("gtex_isoform"), len(store.features("gtex_isoform"))
    return "float16" if n * m * 4 > AUTO_FLOAT16_BYTES else "float32"


def cache_root(store: Store) -> Path:
    """STORE/cache for a local writable store, else $RAVISO_CACHE or ~/.cache/raviso."""
    if "://" not in store.uri and os.access(store.root, os.W_OK):
        return Path(store.root) / "cache"
    return Path(os.environ.get("RAVISO_CACHE") or Path.home() / ".cache" / "raviso")


def cache_key(store: Store, dtype: str) -> str:
    h = hashlib.sha256(json.dumps(store.manifest, sort_keys=True).encode())
    h.update(dtype.encode())
    return f"labelled-{h.hexdigest()[:16]}-{dtype}"


def _stream_into(store: Store, name: str, path: Path, dtype: str) -> None:
    """Write dataset `name` as an .npy of `dtype`, one Parquet batch at a time (never the whole
    matrix in memory)."""
    import pyarrow.parquet as pq

    n, d = store.n_rows(name), len(store.features(name))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=(n, d))
    row = 0
    for piece in pq.ParquetDataset(store.path_of(name), filesystem=store.fs).fragments:
        for batch in piece.to_batches(columns=["expr"], batch_size=256):
            arr = tensor_to_numpy(batch.column(0))
            out[row:row + len(arr)] = arr
            row += len(arr)
    out.flush()
    del out
    if row != n:
        raise RavisoError(f"{name} holds {row} rows, manifest says {n} (store damaged?)",
                          store.uri)


def ensure_cache(store: Store, dtype: str, root: Path | None = None) -> Path:
    """The cache directory for (store, dtype), built if missing; safe when several processes on
    one machine ask at once (the first builds, the others wait on the lock)."""
    root = Path(root) if root is not None else cache_root(store)
    final = root / cache_key(store, dtype)
    if (final / INFO).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / (final.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / INFO).exists():
            return final
        # host + boot id + pid in the name: what a killed build left (GBs) is removed here, and a
        # build by another host on a shared disk is never touched (`raviso.core.atomic`)
        tmp = tmp_sibling(final)
        tmp.mkdir()
        try:
            for name, fname in FILES.items():
                if store.has(name):
                    _stream_into(store, name, tmp / fname,
                                 "float32" if name == "gtex_gene" else dtype)
            (tmp / INFO).write_text(json.dumps({
                "store": store.uri, "dtype": dtype,
                "rows": store.n_rows("gtex_gene"), "genes": len(store.genes),
                "isoforms": len(store.isoforms or [])}, indent=1))
            replace_path(tmp, final)                  # fsynced, then renamed
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


class MappedSource:
    """Where a `Labelled`'s matrices live: picklable (a few strings), re-opened in each process."""

    def __init__(self, store_uri: str, dtype: str, path: str):
        self.store_uri, self.dtype, self.path = store_uri, dtype, path

    def open(self) -> dict[str, np.ndarray | None]:
        path = Path(self.path)
        if not (path / INFO).exists():     # another node: build its own copy from the store
            path = ensure_cache(Store(self.store_uri), self.dtype)
        out = {}
        for name, fname in FILES.items():
            f = path / fname
            out[name] = np.load(f, mmap_mode="r") if f.exists() else None
        return out

    def __repr__(self):
        return f"MappedSource({self.path!r}, {self.dtype})"


def open_mapped(store: Store, target_dtype: str = TARGET_DTYPE) -> tuple[MappedSource, dict]:
    dtype = choose_dtype(store, target_dtype)
    src = MappedSource(store.uri, dtype, str(ensure_cache(store, dtype)))
    return src, src.open()
