"""Streaming readers for every expression format `raviso convert` accepts, detected by content.

Each reader is a `MatrixSource`: feature names (and sample ids when the format has them up front),
plus `chunks(rows, take)` yielding row slabs of samples x features as float32 on the store's scale
(log2(x+1)), with the columns already permuted by `take` (the canonical gene order). Nothing reads a
whole matrix into memory except the GCT transpose, which goes through a disk-backed buffer when
large.

Formats
- course HDF5 (`*.hdf5`): ``expressions`` float32 samples x features, unchunked; ``row_names`` /
  ``col_names`` vlen UTF-8 (h5py gives bytes); GTEx files also ``tissue``. Read in contiguous row
  slabs with ``read_direct`` into reused buffers (the fast path: ~5 GB per CPU-second here).
- course TSV / TSV.gz: tab-separated, header row, first column the sample id; values already
  log2(TPM+1). Parsed by pyarrow's multithreaded streaming CSV reader, each batch turned into one
  float32 matrix in C++ (`RecordBatch.to_tensor`); ~10x the CPU of HDF5 (bench/README.md).
- GTEx portal GCT (``#1.2``; ``rows cols``; ``Name Description <samples>`` for genes or
  ``transcript_id gene_id <samples>`` for transcripts): features x samples TPM, NOT logged.
  Transposed on the way in (in RAM up to 2 GiB, else through a temporary file next to the store,
  removed when done) and written as log2(TPM+1), the course's scale. Gene GCTs are named by their
  ``Description`` (the gene symbol, as the course matrices are); symbols that occur more than once
  (GTEx has a few, e.g. Y_RNA) are summed in TPM space, which is what TPM of the union means.
- public ARCHS4 H5 (``data/expression`` genes x samples integer counts, ``meta/genes/symbol``,
  ``meta/samples/geo_accession``): normalised to **log2(CPM+1)**. ARCHS4's gene file carries no gene
  lengths, so TPM (which divides by length) cannot be computed from it; CPM is the same
  library-size normalisation without the length term. The library size is the sample's total over
  ALL genes in the file (before any gene subsetting), duplicated symbols are summed as counts.
  Note that log2(CPM+1) of ARCHS4 and log2(TPM+1) of GTEx differ in scale per gene (by the gene's
  length relative to the mean): the VAE sees ARCHS4 as a shifted domain, as it does with the
  course's own batch effect.
"""

from __future__ import annotations

import gzip
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.errors import RavisoError
from .validate import UniqueIds, check_names, check_values

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
LN2 = np.float32(np.log(2.0))
CSV_BLOCK_BYTES = 64 << 20
# GCT transposes bigger than this go through a temporary file instead of RAM.
GCT_MEMORY_BYTES = 2 << 30

KINDS = ("course-hdf5", "course-tsv", "gct", "archs4-h5", "h5ad")


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


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------
def _first_line(path: Path, gz: bool, limit: int = 1 << 16) -> bytes:
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            return f.readline(limit)
    except (OSError, EOFError) as e:
        raise RavisoError(f"cannot read: {_first(e)}", path) from None


def sniff(path) -> str:
    """The file's kind by content (never by name): one of `KINDS`."""
    path = Path(path)
    if not path.exists():
        raise RavisoError("no such file", path)
    if path.is_dir():
        raise RavisoError("is a directory, expected a file", path)
    with open(path, "rb") as f:
        head = f.read(8)
        if not head:
            raise RavisoError("empty file", path)
        magic_at = [off for off in (0, 512, 1024, 2048) if (f.seek(off) or f.read(8)) == HDF5_MAGIC]
    if magic_at:
        return _sniff_hdf5(path)
    gz = head.startswith(GZIP_MAGIC)
    line = _first_line(path, gz)
    if not line.strip():
        raise RavisoError("empty file" + (" (after decompression)" if gz else ""), path)
    if line.startswith(b"#1.2"):
        return "gct"
    if b"\t" in line and b"\x00" not in line:
        return "course-tsv"
    raise RavisoError("unknown format (expected course HDF5, TSV(.gz), GTEx GCT or ARCHS4 H5)",
                      path)


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise RavisoError(f"cannot open HDF5 (truncated or corrupt?): {_first(e)}", path) from None


def _sniff_hdf5(path: Path) -> str:
    with _open_h5(path) as f:
        if "expressions" in f:
            return "course-hdf5"
        if "data/expression" in f:
            return "archs4-h5"
        from .h5ad import is_h5ad

        if is_h5ad(f):
            return "h5ad"
    raise RavisoError("HDF5 file has neither `expressions` (course format) nor `data/expression` "
                      "(ARCHS4 format), and is not an AnnData (X, obs, var)", path)


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def open_matrix(path, tmpdir=None) -> MatrixSource:
    """Open any supported expression matrix (kind detected by content)."""
    kind = sniff(path)
    if kind == "course-hdf5":
        return CourseHDF5(path)
    if kind == "course-tsv":
        return CourseTSV(path)
    if kind == "gct":
        return GCT(path, tmpdir=tmpdir)
    if kind == "h5ad":
        from .h5ad import H5adSource   # imports this module: a late import

        return H5adSource(path)
    return Archs4H5(path)


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _read_names(f, name: str, path) -> list[str]:
    if name not in f:
        raise RavisoError(f"HDF5 file has no `{name}` dataset", path)
    try:
        return _decode(f[name][()])
    except OSError as e:
        raise RavisoError(f"cannot read `{name}` (truncated or corrupt?): {_first(e)}",
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


# --------------------------------------------------------------------------------------------
# course HDF5
# --------------------------------------------------------------------------------------------
class _H5Source(MatrixSource):
    """An HDF5 matrix: the file stays open while the source is read; closed if the header is bad."""

    reuses_buffers = True

    def __init__(self, path):
        super().__init__(path)
        self.f = _open_h5(self.path)
        try:
            self._init()
        except BaseException:
            self.f.close()
            raise


class CourseHDF5(_H5Source):
    kind = "course-hdf5"

    def _init(self):
        f, path = self.f, self.path
        d = f["expressions"]
        if d.ndim != 2:
            raise RavisoError(f"`expressions` has {d.ndim} dimensions, expected 2", path)
        if d.dtype.kind != "f":
            raise RavisoError(f"`expressions` has dtype {d.dtype}, expected float", path)
        n, g = d.shape
        if n == 0 or g == 0:
            raise RavisoError(f"empty matrix ({n} x {g})", path)
        self.dset = d
        self.features = check_names(_read_names(f, "col_names", path), path, "feature names")
        ids = _read_names(f, "row_names", path)
        if len(self.features) != g or len(ids) != n:
            raise RavisoError(f"`expressions` is {n} x {g} but there are {len(ids)} row_names and "
                              f"{len(self.features)} col_names", path)
        self.sample_ids = check_names(ids, path, "sample ids")
        if "tissue" in f:
            self.tissue = _read_names(f, "tissue", path)
            if len(self.tissue) != n:
                raise RavisoError(f"`tissue` has {len(self.tissue)} entries for {n} rows", path)

    def chunks(self, rows, take=None, ring=1):
        n, g = self.dset.shape
        raws = _ring(ring, (min(rows, n), g))
        outs = raws if take is None else _ring(ring, (min(rows, n), len(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            raw, out = raws[k % ring], outs[k % ring]
            try:
                self.dset.read_direct(raw, np.s_[s:e], np.s_[0:e - s])
            except (OSError, RuntimeError) as err:
                raise RavisoError(f"cannot read rows {s + 1}-{e} (truncated or corrupt HDF5?): "
                                  f"{_first(err)}", self.path) from None
            X = raw[:e - s]
            check_values(X, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         features=self.features)
            if take is not None:
                X = take_columns_into(X, take, out[:e - s])
            yield Chunk(X, self.sample_ids[s:e], s)

    def close(self):
        self.f.close()


# --------------------------------------------------------------------------------------------
# delimited text (course TSV and the body of GCT files)
# --------------------------------------------------------------------------------------------
def _is_gz(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _header_lines(path: Path, k: int) -> list[str]:
    """The first `k` lines (decompressed), without line endings."""
    lines = []
    opener = gzip.open if _is_gz(path) else open
    try:
        with opener(path, "rb") as f:
            for _ in range(k):
                raw = f.readline()
                if not raw:
                    break
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RavisoError(f"cannot read header: {_first(e)}", path) from None
    return lines


_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_BADVALUE = re.compile(r"column #(\d+).*?invalid value '([^']{0,40})")


def _csv_batches(path: Path, skip_rows: int, n_cols: int, string_cols: int, block_bytes: int):
    """pyarrow's streaming CSV reader over a tab-separated body; errors become one-line
    `RavisoError`s (pyarrow's own messages quote the whole offending row: megabytes here)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [str(k) for k in range(n_cols)]
    types = {nm: (pa.string() if k < string_cols else pa.float32()) for k, nm in enumerate(names)}
    try:
        stream = pa.input_stream(str(path), compression="gzip" if _is_gz(path) else None)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(skip_rows=skip_rows, column_names=names,
                                           block_size=block_bytes, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
        for batch in reader:
            yield batch
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError) as e:
        raise _csv_error(e, path, n_cols) from None


def _csv_error(e, path, n_cols) -> RavisoError:
    msg = str(e)
    m = _RAGGED.search(msg)
    if m:
        return RavisoError(f"ragged row: expected {m.group(1)} tab-separated fields, got "
                           f"{m.group(2)}", path)
    m = _BADVALUE.search(msg)
    if m:
        return RavisoError(f"non-numeric value '{m.group(2)}' in column {int(m.group(1)) + 1}",
                           path)
    if "straddling" in msg or "straddles" in msg:
        return RavisoError("a row is longer than the read block (file corrupt?)", path)
    return RavisoError(f"cannot parse: {_first(e)[:200]}", path)


def _batch_to_matrix(batch, first_col: int) -> np.ndarray:
    """The numeric columns of a record batch as one (rows, columns) float32 array, built in C++
    by `RecordBatch.to_tensor` (80x faster than a Python loop over 18,965 columns). Nulls (empty
    fields, NA) become NaN, which validation then reports."""
    num = batch.select(list(range(first_col, batch.num_columns)))
    return np.asarray(num.to_tensor(null_to_nan=True, row_major=True))


class CourseTSV(MatrixSource):
    """Course TSV(.gz): samples x features, header row, first column the sample id."""

    kind = "course-tsv"

    def __init__(self, path):
        super().__init__(path)
        lines = _header_lines(self.path, 1)
        if not lines or not lines[0].strip():
            raise RavisoError("empty file", self.path)
        header = lines[0].split("\t")
        if len(header) < 2:
            raise RavisoError("header has no feature columns", self.path)
        self.features = check_names(header[1:], self.path, "feature names")
        self._block = max(CSV_BLOCK_BYTES, 16 * len(lines[0]))

    def chunks(self, rows=None, take=None, ring=1):
        d = len(self.features)
        ids = UniqueIds(self.path)
        row0 = 0
        for batch in _csv_batches(self.path, 1, d + 1, 1, self._block):
            if batch.num_rows == 0:
                continue
            sid = batch.column(0).to_pylist()
            ids.add(sid)
            X = _batch_to_matrix(batch, 1)
            check_values(X, self.path, row0=row0, sample_ids=sid, features=self.features)
            if take is not None:
                X = take_columns_into(X, take, np.empty((len(X), len(take)), np.float32))
            yield Chunk(X, sid, row0)
            row0 += len(sid)
        if row0 == 0:
            raise RavisoError("no data rows (header only)", self.path)
        self.sample_ids = ids.ids


# --------------------------------------------------------------------------------------------
# helpers for public sources: duplicate names summed in linear space, log2(x+1)
# --------------------------------------------------------------------------------------------
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


def _ring(k: int, shape) -> list[np.ndarray]:
    return [np.empty(shape, np.float32) for _ in range(k)]


def _log2p1(X: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.log1p(X, out=out)
    out /= LN2
    return out


def _slab_out(rows, take, buf):
    """Apply a column take (if any) into `buf`."""
    return rows if take is None else take_columns_into(rows, take, buf[:len(rows)])


def take_columns_into(X: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = X[:, idx]`` for the GTEx gene-column permutation, applied to every row.

    ``mode="clip"`` matters: with ``out`` and the default ``mode="raise"`` numpy gathers into a
    hidden buffer first (4.5x the CPU, measured on 1,769 x 18,965 slabs; fancy indexing is 8x).
    Clipping never triggers: `idx` comes from `raviso.io.align.column_index`, which rejects missing
    names instead of returning -1 here.
    """
    np.take(X, idx, axis=1, out=out, mode="clip")
    return out


# --------------------------------------------------------------------------------------------
# GTEx portal GCT
# --------------------------------------------------------------------------------------------
class GCT(MatrixSource):
    """GCT 1.2, features x samples TPM. The transpose is built once (in RAM, or in a temporary
    file under `tmpdir` when larger than GCT_MEMORY_BYTES) and then streamed as sample rows."""

    kind = "gct"
    reuses_buffers = True

    def __init__(self, path, tmpdir=None):
        super().__init__(path)
        lines = _header_lines(self.path, 3)
        if len(lines) < 3 or lines[0].split("\t")[0].strip() != "#1.2":
            raise RavisoError("GCT header incomplete (expected `#1.2`, `rows cols`, column names)",
                              self.path)
        try:
            self.n_features, n_samples = (int(v) for v in lines[1].split("\t")[:2])
        except ValueError:
            raise RavisoError(f"GCT line 2 should be `rows<TAB>cols`, got {lines[1][:60]!r}",
                              self.path) from None
        header = lines[2].split("\t")
        if len(header) != n_samples + 2:
            raise RavisoError(f"GCT header names {len(header) - 2} samples, line 2 says "
                              f"{n_samples}", self.path)
        self.sample_ids = check_names(header[2:], self.path, "sample ids")
        first = header[0].strip().lower()
        self.role = "isoform" if first in ("transcript_id", "transcript") else "gene"
        self.tmpdir = tmpdir
        self._T = None
        self._load()

    def _load(self):
        """Read the body (features x samples) into the transposed buffer T (samples x features)."""
        n_s, n_f = len(self.sample_ids), self.n_features
        if n_f == 0:
            raise RavisoError("GCT has 0 feature rows", self.path)
        nbytes = 4 * n_s * n_f
        if nbytes > GCT_MEMORY_BYTES:
            self._tmpfile = tempfile.NamedTemporaryFile(dir=self.tmpdir, prefix=".gct-",
                                                        suffix=".f32")
            T = np.memmap(self._tmpfile.name, np.float32, "w+", shape=(n_s, n_f))
        else:
            T = np.empty((n_s, n_f), np.float32)
        names, genes, f0 = [], [], 0
        block = max(CSV_BLOCK_BYTES, 64 * n_s)
        for batch in _csv_batches(self.path, 3, n_s + 2, 2, block):
            b = batch.num_rows
            if f0 + b > n_f:
                raise RavisoError(f"GCT has more than the {n_f} feature rows line 2 declares",
                                  self.path)
            names.extend(batch.column(0).to_pylist())
            genes.extend(batch.column(1).to_pylist())
            T[:, f0:f0 + b] = _batch_to_matrix(batch, 2).T
            f0 += b
        if f0 != n_f:
            raise RavisoError(f"GCT has {f0} feature rows, line 2 declares {n_f} (truncated?)",
                              self.path)
        if self.role == "isoform":
            self.features = check_names(names, self.path, "transcript ids")
            self.feature_gene = [str(g) for g in genes]
            self._dups = DuplicateSum(self.features)
        else:
            # gene GCT: Name = Ensembl id, Description = symbol (what course matrices use)
            symbols = [str(s) if str(s).strip() else str(n) for n, s in zip(names, genes)]
            self.gene_symbols = dict(zip(map(str, names), symbols))   # Ensembl id -> symbol
            self._dups = DuplicateSum(symbols)
            self.features = self._dups.names
        self._T = T

    def chunks(self, rows, take=None, ring=1):
        T = self._T
        n = T.shape[0]
        logbufs = _ring(ring, (min(rows, n), len(self.features)))
        outbufs = _ring(ring if take is not None else 0, (min(rows, n), self._out_width(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            logbuf, outbuf = logbufs[k % ring], outbufs[k % ring] if outbufs else None
            raw = np.asarray(T[s:e])
            check_values(raw, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         features=self.features if self._dups.identity else None,
                         log_scale=False)
            X = _log2p1(self._dups.apply(raw), logbuf[:e - s])
            yield Chunk(_slab_out(X, take, outbuf), self.sample_ids[s:e], s)

    def close(self):
        self._T = None
        tmp = getattr(self, "_tmpfile", None)
        if tmp is not None:
            tmp.close()


# --------------------------------------------------------------------------------------------
# public ARCHS4 H5
# --------------------------------------------------------------------------------------------
class Archs4H5(_H5Source):
    kind = "archs4-h5"

    def _init(self):
        f, path = self.f, self.path
        d = f["data/expression"]
        symbols = _read_names(f, "meta/genes/symbol", path)
        ids = _read_names(f, "meta/samples/geo_accession", path)
        if d.ndim != 2 or sorted(d.shape) != sorted((len(symbols), len(ids))):
            raise RavisoError(f"`data/expression` is {d.shape}, but there are {len(symbols)} genes "
                              f"and {len(ids)} samples", path)
        if d.dtype.kind not in "iuf":
            raise RavisoError(f"`data/expression` has dtype {d.dtype}, expected counts", path)
        self.genes_first = d.shape[0] == len(symbols) and not (
            d.shape[0] == len(ids) and d.shape[1] == len(symbols) and len(ids) != len(symbols))
        self.dset = d
        symbols = [s if s.strip() else f"<empty symbol {k}>" for k, s in enumerate(symbols)]
        self._dups = DuplicateSum(symbols)
        self.features = self._dups.names
        self.sample_ids = check_names(ids, path, "sample ids")
        self.zero_library: list[str] = []

    def chunks(self, rows, take=None, ring=1):
        n = len(self.sample_ids)
        logbufs = _ring(ring, (min(rows, n), len(self.features)))
        outbufs = _ring(ring if take is not None else 0, (min(rows, n), self._out_width(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            logbuf, outbuf = logbufs[k % ring], outbufs[k % ring] if outbufs else None
            try:
                slab = self.dset[:, s:e].T if self.genes_first else self.dset[s:e, :]
            except (OSError, RuntimeError) as err:
                raise RavisoError(f"cannot read samples {s + 1}-{e} (truncated or corrupt HDF5?): "
                                  f"{_first(err)}", self.path) from None
            counts = np.asarray(slab, np.float64)
            check_values(counts, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         log_scale=False)
            lib = counts.sum(axis=1)
            zero = lib <= 0
            if zero.any():
                self.zero_library.extend(np.asarray(self.sample_ids[s:e])[zero].tolist())
            scale = np.where(zero, 0.0, 1e6 / np.where(zero, 1.0, lib))
            cpm = (self._dups.apply(counts) * scale[:, None]).astype(np.float32)
            X = _log2p1(cpm, logbuf[:e - s])
            yield Chunk(_slab_out(X, take, outbuf), self.sample_ids[s:e], s)

    def close(self):
        self.f.close()


# --------------------------------------------------------------------------------------------
# small side tables
# --------------------------------------------------------------------------------------------
def _read_table(path, what: str):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise RavisoError("no such file", path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                         compression="gzip" if _is_gz(path) else None)
    except pd.errors.EmptyDataError:
        raise RavisoError(f"empty file (expected a {what})", path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as e:
        raise RavisoError(f"cannot parse {what}: {_first(e)[:200]}", path) from None
    if len(df) == 0:
        raise RavisoError(f"empty {what} (header only)", path)
    return df


def _pick(df, options, path, what):
    for c in options:
        if c in df.columns:
            return c
    raise RavisoError(f"{what} needs a column named one of {', '.join(options)} "
                      f"(has {', '.join(map(str, df.columns[:6]))})", path)


def read_tissue_table(path) -> dict[str, str]:
    """sample id -> tissue from the course's gtex_annot (`sample_id tissue`), the realdata slice's
    `SampleID Tissue`, or GTEx's SampleAttributesDS (`SAMPID ... SMTSD`)."""
    df = _read_table(path, "tissue table")
    sid = _pick(df, ("sample_id", "SampleID", "SAMPID"), path, "tissue table")
    tis = _pick(df, ("tissue", "Tissue", "SMTSD"), path, "tissue table")
    table: dict[str, str] = {}
    for s, t in zip(df[sid].tolist(), df[tis].tolist()):
        if table.setdefault(s, t) != t:
            raise RavisoError(f"sample {s} listed with two tissues ({table[s]!r}, {t!r})", path)
    return table


def read_isoform_annotation(path) -> dict[str, str]:
    """isoform id -> gene name (symbol, as in the gene matrices) from
    `gtex_gene_isoform_annoation.tsv.gz` (`isoform_id gene_id gene_name`)."""
    df = _read_table(path, "isoform annotation")
    iso = _pick(df, ("isoform_id", "transcript_id"), path, "isoform annotation")
    gene = _pick(df, ("gene_name", "gene_symbol", "gene_id"), path, "isoform annotation")
    names = df[iso].tolist()
    dups = [n for n, c in zip(*np.unique(names, return_counts=True)) if c > 1]
    if dups:
        raise RavisoError(f"duplicate isoform ids: {', '.join(dups[:10])}", path)
    return dict(zip(names, df[gene].tolist()))


# --------------------------------------------------------------------------------------------
# writers of the course formats (benchmarks and tests make inputs with these)
# --------------------------------------------------------------------------------------------
def write_course_hdf5(path, X, sample_ids, features, tissue=None, n_rows: int | None = None):
    """Course HDF5: ``expressions`` float32 (unchunked, uncompressed, as the course's files),
    ``row_names`` / ``col_names`` (and ``tissue``) as vlen UTF-8. `X` is an (n, d) array or an
    iterable of row slabs (then give `n_rows`), so large files are written without holding them."""
    import h5py

    n = len(X) if n_rows is None else n_rows
    slabs = [X] if isinstance(X, np.ndarray) else X
    vlen = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        d = f.create_dataset("expressions", shape=(n, len(features)), dtype=np.float32)
        row = 0
        for slab in slabs:
            d[row:row + len(slab)] = slab
            row += len(slab)
        if row != n:
            raise ValueError(f"wrote {row} rows, expected {n}")
        f.create_dataset("row_names", data=[str(s) for s in sample_ids], dtype=vlen)
        f.create_dataset("col_names", data=[str(s) for s in features], dtype=vlen)
        if tissue is not None:
            f.create_dataset("tissue", data=[str(t) for t in tissue], dtype=vlen)
    return Path(path)


def write_course_tsv(path, X, sample_ids, features, first_column: str = "sample_id"):
    """Course TSV (gzip-compressed when `path` ends in .gz): header, then one row per sample."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt") as f:
        f.write("\t".join([first_column, *map(str, features)]) + "\n")
        for sid, row in zip(sample_ids, np.asarray(X)):
            f.write(str(sid) + "\t" + "\t".join(repr(float(v)) for v in row) + "\n")
    return path
