"""The one registry of input formats: each `Format` record says how it is recognised by content
(never by name), what it can hold and how it is opened. `raviso convert`, `import` and `predict`
all resolve a file through `detect`; the layouts themselves are described in docs/formats.md."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from ..core.errors import RavisoError
from .source import GZIP_MAGIC, MatrixSource, first_error_line, open_h5

PARQUET_MAGIC = b"PAR1"


class Probe:
    """What detection looks at, each read at most once: the first bytes, HDF5-ness (the superblock
    may sit at 0, 512, 1024, ... bytes: h5py decides), the HDF5 keys and the first text line."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise RavisoError("no such file", self.path)
        if self.path.is_dir():
            raise RavisoError("is a directory, expected a file", self.path)
        with open(self.path, "rb") as f:
            self.head = f.read(8)
        if not self.head:
            raise RavisoError("empty file", self.path)
        self.gz = self.head.startswith(GZIP_MAGIC)

    @cached_property
    def hdf5(self) -> bool:
        import h5py

        return bool(h5py.is_hdf5(self.path))

    @cached_property
    def h5_kind(self) -> str | None:
        from .h5ad import is_h5ad

        with open_h5(self.path) as f:
            if "expressions" in f:
                return "course-hdf5"
            if "data/expression" in f:
                return "archs4-h5"
            return "h5ad" if is_h5ad(f) else None

    @cached_property
    def line(self) -> bytes:
        opener = gzip.open if self.gz else open
        try:
            with opener(self.path, "rb") as f:
                line = f.readline(1 << 16)
        except (OSError, EOFError) as e:
            raise RavisoError(f"cannot read: {first_error_line(e)}", self.path) from None
        if not line.strip():
            raise RavisoError("empty file" + (" (after decompression)" if self.gz else ""),
                              self.path)
        return line.lstrip(b"\xef\xbb\xbf")


def _open(module: str, cls: str) -> Callable:
    def opener(path, **kw):
        import importlib

        return getattr(importlib.import_module(f"raviso.io.{module}"), cls)(path, **kw)
    return opener


@dataclass(frozen=True)
class Format:
    """One input format. `holds`: "matrix" (samples x features, already log2, streamed by `open`
    as a `MatrixSource`) or "table" (a gene table of either orientation and scale, read whole by
    `raviso.io.gene_table`); `commands`: who accepts it."""

    name: str
    detect: Callable[[Probe], bool]
    holds: str
    commands: frozenset
    open: Callable | None = None
    describe: str = ""


ALL = frozenset({"convert", "import", "predict"})
FORMATS = (
    Format("course-hdf5", lambda p: p.hdf5 and p.h5_kind == "course-hdf5", "matrix",
           frozenset({"convert", "predict"}), _open("course", "CourseHDF5"), "course HDF5"),
    Format("archs4-h5", lambda p: p.hdf5 and p.h5_kind == "archs4-h5", "matrix",
           frozenset({"convert", "predict"}), _open("archs4", "Archs4H5"), "ARCHS4 H5"),
    Format("h5ad", lambda p: p.hdf5 and p.h5_kind == "h5ad", "matrix", ALL,
           _open("h5ad", "H5adSource"), "AnnData .h5ad"),
    Format("parquet", lambda p: p.head.startswith(PARQUET_MAGIC), "table",
           frozenset({"predict"}), None, "Parquet"),
    Format("gct", lambda p: not p.hdf5 and p.line.startswith(b"#1.2"), "table", ALL,
           _open("gct", "GCT"), "GTEx GCT"),
    Format("course-tsv", lambda p: not p.hdf5 and b"\t" in p.line and b"\x00" not in p.line,
           "table", ALL, _open("course", "CourseTSV"), "TSV(.gz)"),
    Format("csv", lambda p: not p.hdf5 and b"," in p.line and b"\x00" not in p.line, "table",
           frozenset({"predict"}), None, "CSV(.gz)"),
)
KINDS = tuple(f.name for f in FORMATS if "convert" in f.commands)
BY_NAME = {f.name: f for f in FORMATS}


def detect(path, command: str = "convert") -> Format:
    """The file's `Format` by content, among those `command` accepts; else a one-line error."""
    p = Probe(path)
    if p.hdf5 and p.h5_kind is None:
        raise RavisoError("HDF5 file has neither `expressions` (course format) nor "
                          "`data/expression` (ARCHS4 format), and is not an AnnData (X, obs, var)",
                          p.path)
    for fmt in FORMATS:
        if command in fmt.commands and fmt.detect(p):
            return fmt
    known = ", ".join(f.describe for f in FORMATS if command in f.commands)
    raise RavisoError(f"unknown format (expected {known})", p.path)


def is_hdf5(path) -> bool:
    """True for an HDF5 file (wherever its superblock sits); False for anything else or no file."""
    try:
        return Probe(path).hdf5
    except (RavisoError, OSError):
        return False


def sniff(path) -> str:
    """The file's kind by content (never by name): one of `KINDS`."""
    return detect(path, "convert").name


def open_matrix(path, tmpdir=None) -> MatrixSource:
    """Open any expression matrix `raviso convert` reads (kind detected by content)."""
    fmt = detect(path, "convert")
    return fmt.open(path, tmpdir=tmpdir) if fmt.name == "gct" else fmt.open(path)


def fmt_of(path) -> Format:
    """The `Format` of a `raviso predict` input."""
    return detect(path, "predict")


def open_transcripts(path, tx_col=None, gene_col=None):
    """A transcripts x samples matrix for `raviso import --matrix`: an AnnData .h5ad when the file
    is HDF5, else a TSV/GCT table (plain or gzipped) read by `raviso.io.quant.Matrix`."""
    if is_hdf5(path):
        from .h5ad import H5adMatrix

        return H5adMatrix(path, tx_col, gene_col)
    from .quant import Matrix

    return Matrix(path, tx_col, gene_col)
