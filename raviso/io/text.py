"""Delimited text shared by the course TSV and GTEx GCT readers and the side tables: gzip detection,
header lines, and pyarrow's multithreaded streaming CSV reader with one-line errors."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .source import GZIP_MAGIC, first_error_line


CSV_BLOCK_BYTES = 64 << 20


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def header_lines(path: Path, k: int) -> list[str]:
    """The first `k` lines (decompressed), without line endings."""
    lines = []
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            for _ in range(k):
                raw = f.readline()
                if not raw:
                    break
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RavisoError(f"cannot read header: {first_error_line(e)}", path) from None
    return lines


_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_BADVALUE = re.compile(r"column #(\d+).*?invalid value '([^']{0,40})")


def csv_batches(path: Path, skip_rows: int, n_cols: int, string_cols: int, block_bytes: int):
    """pyarrow's streaming CSV reader over a tab-separated body; errors become one-line
    `RavisoError`s (pyarrow's own messages quote the whole offending row: megabytes here)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [str(k) for k in range(n_cols)]
    types = {nm: (pa.string() if k < string_cols else pa.float32()) for k, nm in enumerate(names)}
    try:
        stream = pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)
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
    return RavisoError(f"cannot parse: {first_error_line(e)[:200]}", path)


def batch_to_matrix(batch, first_col: int) -> np.ndarray:
    """The numeric columns of a record batch as one (rows, columns) float32 array, built in C++
    by `RecordBatch.to_tensor` (not a Python loop over the columns). Nulls (empty
    fields, NA) become NaN, which validation then reports."""
    num = batch.select(list(range(first_col, batch.num_columns)))
    return np.asarray(num.to_tensor(null_to_nan=True, row_major=True))
