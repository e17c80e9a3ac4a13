"""Open a Parquet store: as numpy (small stores, object-store sharing), as streaming Ray Datasets,
with its tissue/donor metadata. (The cross-validation folds live in `raviso.data.folds`.)

`Store` accepts a local path or a URI that pyarrow understands (``s3://``, ``gs://``, ``file://``)
or an explicit `pyarrow.fs.FileSystem`, so workers on other nodes can read the same store.
"""

from __future__ import annotations

import contextlib
import json
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..core.errors import RavisoError
from .schema import DATASETS, EXPR, FORMAT_VERSION, ISOFORM_DATASETS, MANIFEST

REIMPORT = "re-import it (raviso import / raviso convert) or copy it again"


def resolve(path, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    if filesystem is not None:
        return filesystem, str(path)
    path = str(path)
    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
            raise RavisoError(f"cannot open filesystem: {e}", path) from None
    import os

    return pafs.LocalFileSystem(), os.path.abspath(path)


class Store:
    """A converted store. Cheap to construct: reads only the manifest."""

    def __init__(self, path, filesystem: pafs.FileSystem | None = None):
        self.uri = str(path)
        self.fs, self.root = resolve(path, filesystem)
        mpath = posixpath.join(self.root, MANIFEST)
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            raise RavisoError("no such store (run `raviso convert` first)", self.uri)
        try:
            with self.fs.open_input_stream(mpath) as f:
                self.manifest = json.loads(f.read())
        except FileNotFoundError:
            raise RavisoError(f"not a raviso store: {MANIFEST} is missing (an interrupted "
                              f"conversion leaves none; a damaged store: {REIMPORT})",
                              self.uri) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RavisoError(f"{MANIFEST} is damaged (not JSON): {REIMPORT}", self.uri) from None
        if not isinstance(self.manifest, dict):
            raise RavisoError(f"{MANIFEST} is damaged (not a JSON object): {REIMPORT}", self.uri)
        self.checked: set[str] = set()
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise RavisoError(
                f"store format {self.manifest.get('format_version')} is not supported "
                f"(this raviso reads format {FORMAT_VERSION})", self.uri)
        self.genes: list[str] = self.manifest["genes"]
        self.isoforms: list[str] | None = self.manifest.get("isoforms")
        self.isoform_gene: list[str] | None = self.manifest.get("isoform_gene")

    # -- structure ---------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.manifest["datasets"]

    def require(self, name: str) -> None:
        if name not in DATASETS:
            raise RavisoError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})",
                              self.uri)
        if not self.has(name):
            raise RavisoError(f"store has no {name} dataset", self.uri)

    def path_of(self, name: str) -> str:
        self.require(name)
        return posixpath.join(self.root, name)

    def n_rows(self, name: str) -> int:
        self.require(name)
        return int(self.manifest["datasets"][name]["rows"])

    def features(self, name: str) -> list[str]:
        self.require(name)
        return self.isoforms if name in ISOFORM_DATASETS else self.genes

    def _dataset(self, name: str) -> pq.ParquetDataset:
        with self.reading(name):
            return pq.ParquetDataset(self.path_of(name), filesystem=self.fs)

    def check_parts(self, name: str) -> None:
        """Every part file of dataset `name` the manifest lists is there with its size (stores
        written before sizes were recorded: not checked)."""
        if name in self.checked:
            return
        for rel, size in (self.manifest.get("parts") or {}).items():
            if not rel.startswith(name + "/"):
                continue
            info = self.fs.get_file_info(posixpath.join(self.root, rel))
            why = ("is missing" if info.type == pafs.FileType.NotFound else
                   f"is cut short ({info.size:,} of {size:,} bytes)" if info.size < size else
                   f"has changed ({info.size:,} bytes, {size:,} when written)"
                   if info.size != size else None)
            if why:
                raise RavisoError(f"{rel} {why}: the store is damaged; {REIMPORT}", self.uri)
        self.checked.add(name)

    @contextlib.contextmanager
    def reading(self, name: str):
        """Check dataset `name`'s parts, then turn a failed read into one line naming the part
        that fails (`damaged_part`) and the fix."""
        self.check_parts(name)
        try:
            yield
        except (pa.ArrowException, OSError) as e:
            raise RavisoError(f"{self.damaged_part(name) or name} cannot be read "
                              f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})"
                              f": the store is damaged; {REIMPORT}", self.uri) from None

    def damaged_part(self, name: str) -> str | None:
        """The first part file of dataset `name` whose Parquet footer cannot be read."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path_of(name)))
        except (pa.ArrowException, OSError):
            return None
        for info in sorted(infos, key=lambda i: i.path):
            if info.base_name.startswith(".") or info.type != pafs.FileType.File:
                continue
            try:
                with self.fs.open_input_file(info.path) as f:
                    pq.read_metadata(f)
            except (pa.ArrowException, OSError):
                return posixpath.relpath(info.path, self.root)
        return None

    # -- reading -----------------------------------------------------------------------------
    def meta(self, name: str):
        """pandas DataFrame of sample_id, tissue, donor (no expression read)."""
        with self.reading(name):
            table = self._dataset(name).read(columns=["sample_id", "tissue", "donor"])
        df = table.to_pandas().astype(object)
        return df.where(df.notna(), None)   # pandas >= 3 turns null strings into NaN

    def numpy(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """The whole (n, d) float32 matrix, filled chunk by chunk (no second full-size copy)."""
        n, d = self.n_rows(name), len(self.features(name))
        X = np.empty((n, d), np.float32) if out is None else out
        if X.shape != (n, d):
            raise ValueError(f"out has shape {X.shape}, expected {(n, d)}")
        row = 0
        with self.reading(name):
            for piece in self._dataset(name).fragments:
                for batch in piece.to_batches(columns=[EXPR]):
                    arr = tensor_to_numpy(batch.column(0))
                    X[row:row + len(arr)] = arr
                    row += len(arr)
        if row != n:
            raise RavisoError(f"{name} holds {row} rows, manifest says {n} (store damaged?)",
                              self.uri)
        return X

    def batches(self, name: str, rows: int = 2048):
        """Stream ``(X (n, d) float32, sample_ids, tissue, donor)`` in batches of at most `rows`
        samples, in store order (predict and export read stores larger than memory this way);
        unknown tissue / donor are None."""
        with self.reading(name):
            for piece in self._dataset(name).fragments:
                for b in piece.to_batches(columns=["sample_id", "tissue", "donor", EXPR],
                                          batch_size=rows):
                    yield (tensor_to_numpy(b.column(3)), b.column(0).to_pylist(),
                           b.column(1).to_pylist(), b.column(2).to_pylist())

    def ray_dataset(self, name: str, **read_kwargs):
        """A streaming `ray.data.Dataset` of the dataset's rows (columns sample_id, tissue, donor,
        expr); ``expr`` arrives in `iter_torch_batches` as an (n, d) float32 tensor."""
        import ray.data

        self.check_parts(name)
        # Ray 2.60's default Parquet reader (DataSourceV2) starts a pool of 32 footer-reading
        # actors -- 32 worker processes asked for -- on every read, to list a store dataset of a
        # few files: ~5 s of process churn per `raviso encode` on 2 cores. The V1 reader reads
        # those footers in the driver. Scoped to this call: other reads keep Ray's default.
        ctx = ray.data.DataContext.get_current()
        v2, ctx.use_datasource_v2 = ctx.use_datasource_v2, False
        try:
            return ray.data.read_parquet(self.path_of(name), filesystem=self.fs, **read_kwargs)
        finally:
            ctx.use_datasource_v2 = v2


def tensor_to_numpy(column) -> np.ndarray:
    """An Arrow fixed_shape_tensor column (array or chunked) -> (n, d) float32 numpy."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        else:
            return np.concatenate([tensor_to_numpy(c) for c in column.chunks])
    if isinstance(column, pa.ExtensionArray) and hasattr(column, "to_numpy_ndarray"):
        return column.to_numpy_ndarray()
    # plain fixed_size_list fallback
    d = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, d)
