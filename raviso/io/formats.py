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
from pathlib import Path

from ..core.errors import RavisoError
from .archs4 import Archs4H5
from .course import CourseHDF5, CourseTSV
from .gct import GCT
from .h5ad import H5adSource, is_h5ad
from .source import GZIP_MAGIC, HDF5_MAGIC, MatrixSource, first_error_line, open_h5


KINDS = ("course-hdf5", "course-tsv", "gct", "archs4-h5", "h5ad")


def _first_line(path: Path, gz: bool, limit: int = 1 << 16) -> bytes:
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            return f.readline(limit)
    except (OSError, EOFError) as e:
        raise RavisoError(f"cannot read: {first_error_line(e)}", path) from None


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


def _sniff_hdf5(path: Path) -> str:
    with open_h5(path) as f:
        if "expressions" in f:
            return "course-hdf5"
        if "data/expression" in f:
            return "archs4-h5"
        if is_h5ad(f):
            return "h5ad"
    raise RavisoError("HDF5 file has neither `expressions` (course format) nor `data/expression` "
                      "(ARCHS4 format), and is not an AnnData (X, obs, var)", path)


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
        return H5adSource(path)
    return Archs4H5(path)
