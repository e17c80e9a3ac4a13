"""The Parquet store: the one on-disk layout every stage after `convert`/`import` reads.

Layout::

    STORE/manifest.json          feature names, shapes, dtype, isoform->gene map, sources, version
    STORE/archs4/part-*.parquet  unlabelled compendium (genes)
    STORE/gtex_gene/part-*.parquet    labelled set, gene expression (same canonical gene order)
    STORE/gtex_isoform/part-*.parquet labelled set, isoform expression (rows match gtex_gene)
    STORE/truth/part-*.parquet   synthetic data only: noise-free isoform values (rows match)

Each row is one sample: ``sample_id`` (string), ``tissue`` and ``donor`` (string, null when unknown)
and ``expr``, the whole expression vector as ONE ``arrow.fixed_shape_tensor`` float32 column.
One column per gene is unusable at 18,965 or 156,958 features (multi-MB footers, OOM); the
Arrow-native tensor type arrives in Ray Data as an (n, d) tensor and stays readable without Ray.
Row groups are ~128 MiB to match Ray Data's block size; files rotate every few row groups so
Ray Data has several read tasks to spread over workers.

The store is built in a hidden temporary directory and renamed into place by `StoreBuilder.commit`,
so a crashed or killed conversion never leaves something that opens as a store.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .atomic import _remove, _replace, _tmp_sibling, check_writable_target
from .errors import RavisoError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EXPR = "expr"
GENE_DATASETS = ("archs4", "gtex_gene")
ISOFORM_DATASETS = ("gtex_isoform", "truth")
DATASETS = ("archs4", "gtex_gene", "gtex_isoform", "truth")
ROW_GROUP_BYTES = 128 << 20
ROW_GROUPS_PER_FILE = 8


def expr_type(n_features: int) -> pa.DataType:
    return pa.fixed_shape_tensor(pa.float32(), [n_features])


def schema(n_features: int) -> pa.Schema:
    return pa.schema(
        [
            ("sample_id", pa.string()),
            ("tissue", pa.string()),
            ("donor", pa.string()),
            (EXPR, expr_type(n_features)),
        ]
    )


def tensor_array(X: np.ndarray) -> pa.ExtensionArray:
    """(n, d) float32 -> FixedShapeTensorArray without copying when X is C-contiguous float32."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(X)


def rows_per_group(n_features: int) -> int:
    return max(1, ROW_GROUP_BYTES // (4 * n_features))


def _strings(values, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.string())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


class DatasetWriter:
    """Streams row slabs of one matrix into ``<dir>/part-NNNNN.parquet``.

    Slabs of any size are re-cut into row groups of `rows_per_group` rows, so the caller can read
    its input in whatever chunks are fastest for it.
    """

    def __init__(self, directory: Path, n_features: int, compression: str = "none"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_features = int(n_features)
        self.schema = schema(self.n_features)
        self.group_rows = rows_per_group(self.n_features)
        self.compression = compression
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file_index = 0
        self._groups_in_file = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, X: np.ndarray, sample_ids, tissue=None, donor=None) -> None:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"slab shape {X.shape} does not match {self.n_features} features")
        n = X.shape[0]
        if n == 0:
            return
        table = pa.Table.from_arrays(
            [_strings(sample_ids, n), _strings(tissue, n), _strings(donor, n), tensor_array(X)],
            schema=self.schema,
        )
        self._pending.append(table)
        self._pending_rows += n
        self.rows += n
        while self._pending_rows >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, n_rows: int) -> None:
        table = pa.concat_tables(self._pending)
        group, rest = table.slice(0, n_rows), table.slice(n_rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if self._writer is None:
            path = self.dir / f"part-{self._file_index:05d}.parquet"
            self._writer = pq.ParquetWriter(
                path, self.schema, compression=self.compression, use_dictionary=["tissue", "donor"],
                write_statistics=["sample_id"],
            )
        self._writer.write_table(group, row_group_size=n_rows)
        self._groups_in_file += 1
        if self._groups_in_file >= ROW_GROUPS_PER_FILE:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._file_index += 1
            self._groups_in_file = 0

    def close(self) -> dict:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._close_file()
        return {"rows": self.rows, "features": self.n_features, "dtype": "float32",
                "row_group_rows": self.group_rows, "files": self._file_index}

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
                 compression="none", units="log2(TPM+1)"):
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
        self.units = units
        self.tmp = _tmp_sibling(self.path)
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
        w = DatasetWriter(self.tmp / name, d, self.compression)
        self._writers[name] = w
        return w

    def add_source(self, dataset: str, path, kind: str, **info) -> None:
        self._sources.append({"dataset": dataset, "path": str(path), "kind": kind, **info})

    def commit(self) -> Path:
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
            **self.extra,
        }
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        _replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        for w in self._writers.values():
            w.abort()
        _remove(self.tmp)

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


def write_store(path, genes, *, archs4=None, gtex_gene=None, gtex_isoform=None, truth=None,
                isoforms=None, isoform_gene=None, overwrite=False, extra=None) -> Path:
    """Write a whole (small) store from in-memory arrays; tests and `import` use this.

    Each dataset argument is a dict with ``X`` (n, d) and ``sample_id``, optionally ``tissue`` and
    ``donor``.
    """
    with StoreBuilder(path, genes, isoforms, isoform_gene, overwrite=overwrite) as sb:
        sb.extra.update(extra or {})
        for name, part in (("archs4", archs4), ("gtex_gene", gtex_gene),
                           ("gtex_isoform", gtex_isoform), ("truth", truth)):
            if part is not None:
                sb.dataset(name).write(part["X"], part["sample_id"], part.get("tissue"),
                                       part.get("donor"))
    return Path(path)
