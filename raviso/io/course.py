"""The course's own formats: HDF5 (``expressions`` samples x features float32, ``row_names``,
``col_names``, GTEx files also ``tissue``) and TSV(.gz) (header row, first column the sample id),
both already log2(TPM+1); and writers of both (benchmarks and tests make inputs with them)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .source import Chunk, MatrixSource, first_error_line, H5Source, read_names, buffer_ring, take_columns_into
from .text import CSV_BLOCK_BYTES, batch_to_matrix, csv_batches, header_lines
from .validate import UniqueIds, check_names, check_values


class CourseHDF5(H5Source):
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
        self.features = check_names(read_names(f, "col_names", path), path, "feature names")
        ids = read_names(f, "row_names", path)
        if len(self.features) != g or len(ids) != n:
            raise RavisoError(f"`expressions` is {n} x {g} but there are {len(ids)} row_names and "
                              f"{len(self.features)} col_names", path)
        self.sample_ids = check_names(ids, path, "sample ids")
        if "tissue" in f:
            self.tissue = read_names(f, "tissue", path)
            if len(self.tissue) != n:
                raise RavisoError(f"`tissue` has {len(self.tissue)} entries for {n} rows", path)

    def chunks(self, rows, take=None, ring=1):
        n, g = self.dset.shape
        raws = buffer_ring(ring, (min(rows, n), g))
        outs = raws if take is None else buffer_ring(ring, (min(rows, n), len(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            raw, out = raws[k % ring], outs[k % ring]
            try:
                self.dset.read_direct(raw, np.s_[s:e], np.s_[0:e - s])
            except (OSError, RuntimeError) as err:
                raise RavisoError(f"cannot read rows {s + 1}-{e} (truncated or corrupt HDF5?): "
                                  f"{first_error_line(err)}", self.path) from None
            X = raw[:e - s]
            check_values(X, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         features=self.features)
            if take is not None:
                X = take_columns_into(X, take, out[:e - s])
            yield Chunk(X, self.sample_ids[s:e], s)

    def close(self):
        self.f.close()


class CourseTSV(MatrixSource):
    """Course TSV(.gz): samples x features, header row, first column the sample id."""

    kind = "course-tsv"

    def __init__(self, path):
        super().__init__(path)
        lines = header_lines(self.path, 1)
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
        for batch in csv_batches(self.path, 1, d + 1, 1, self._block):
            if batch.num_rows == 0:
                continue
            sid = batch.column(0).to_pylist()
            ids.add(sid)
            X = batch_to_matrix(batch, 1)
            check_values(X, self.path, row0=row0, sample_ids=sid, features=self.features)
            if take is not None:
                X = take_columns_into(X, take, np.empty((len(X), len(take)), np.float32))
            yield Chunk(X, sid, row0)
            row0 += len(sid)
        if row0 == 0:
            raise RavisoError("no data rows (header only)", self.path)
        self.sample_ids = ids.ids


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
