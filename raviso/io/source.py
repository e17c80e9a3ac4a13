"""The reader interface every input format implements (`MatrixSource` streaming `Chunk`s) and the
pieces readers share: HDF5 opening and name datasets, sums over duplicated names, log2(x+1) into
reused buffers, and the column take that puts genes in the store's order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.errors import RavisoError


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
LN2 = np.float32(np.log(2.0))


@dataclass
class Chunk:
    """`rows` samples: X (rows, features) float32 and their ids. X may be a view of a buffer the
    reader reuses for the next chunk when `MatrixSource.reuses_buffers` (copy it to keep it)."""

    X: np.ndarray
    sample_ids: list[str]
    row0: int


class MatrixSource:
    """One expression matrix in one file. Subclasses fill the attributes in `__init__` (header
    only) and stream the values in `chunks`."""

    kind = "?"
    reuses_buffers = False

    def __init__(self, path):
        self.path = Path(path)
        self.features: list[str] = []
        self.feature_gene: list[str] | None = None   # transcript GCT: gene id per transcript
        self.sample_ids: list[str] | None = None      # None: known only after streaming (TSV)
        self.tissue: list[str] | None = None
        self.role: str | None = None                  # "gene" / "isoform" when the file says
        self.gene_symbols: dict[str, str] | None = None  # gene GCT: Ensembl id -> symbol

    @property
    def n_rows(self) -> int | None:
        return None if self.sample_ids is None else len(self.sample_ids)

    def chunks(self, rows: int, take: np.ndarray | None = None, ring: int = 1) -> Iterator[Chunk]:
        """Row slabs of `rows` samples (the last may be shorter; TSV: whatever the parser
        delivers), columns in `take` order. Readers that reuse buffers cycle through `ring` of them,
        so a consumer running `ring - 1` chunks behind (a prefetch queue) never sees one
        overwritten."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _out_width(self, take):
        return len(self.features) if take is None else len(take)


def first_error_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise RavisoError(f"cannot open HDF5 (truncated or corrupt?): {first_error_line(e)}", path) from None


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_names(f, name: str, path) -> list[str]:
    if name not in f:
        raise RavisoError(f"HDF5 file has no `{name}` dataset", path)
    try:
        return _decode(f[name][()])
    except OSError as e:
        raise RavisoError(f"cannot read `{name}` (truncated or corrupt?): {first_error_line(e)}",
                          path) from None
    except UnicodeDecodeError as e:   # e.g. Latin-1 names written by another tool
        k = next(i for i, v in enumerate(f[name][()])
                 if isinstance(v, bytes) and not _is_utf8(v))
        raise RavisoError(f"`{name}` entry {k + 1} is not UTF-8 text ({e.object[:40]!r}); "
                          "re-encode the names as UTF-8", path) from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class H5Source(MatrixSource):
    """An HDF5 matrix: the file stays open while the source is read; closed if the header is bad."""

    reuses_buffers = True

    def __init__(self, path):
        super().__init__(path)
        self.f = open_h5(self.path)
        try:
            self._init()
        except BaseException:
            self.f.close()
            raise


class DuplicateSum:
    """Maps raw columns with repeated names onto unique names (first-appearance order), summing
    repeats. Identity (no work) when all names are unique."""

    def __init__(self, names: list[str]):
        pos: dict[str, int] = {}
        self.group = np.empty(len(names), np.int64)
        for k, nm in enumerate(names):
            self.group[k] = pos.setdefault(nm, len(pos))
        self.names = list(pos)
        first = np.full(len(self.names), -1, np.int64)
        dup_cols = []
        for k, u in enumerate(self.group):
            if first[u] < 0:
                first[u] = k
            else:
                dup_cols.append(k)
        self.first = first
        self.dup_cols = np.array(dup_cols, np.int64)
        self.identity = len(dup_cols) == 0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.identity:
            return raw
        out = raw[:, self.first]
        for k in self.dup_cols:
            out[:, self.group[k]] += raw[:, k]
        return out


def buffer_ring(k: int, shape) -> list[np.ndarray]:
    return [np.empty(shape, np.float32) for _ in range(k)]


def log2p1_into(X: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.log1p(X, out=out)
    out /= LN2
    return out


def take_slab(rows, take, buf):
    """Apply a column take (if any) into `buf`."""
    return rows if take is None else take_columns_into(rows, take, buf[:len(rows)])


def take_columns_into(X: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = X[:, idx]`` for the GTEx gene-column permutation, applied to every row.

    ``mode="clip"`` matters: with ``out`` and the default ``mode="raise"`` numpy gathers into a
    hidden buffer first (several times the CPU; see docs/formats.md).
    Clipping never triggers: `idx` comes from `raviso.io.align.column_index`, which rejects missing
    names instead of returning -1 here.
    """
    np.take(X, idx, axis=1, out=out, mode="clip")
    return out
