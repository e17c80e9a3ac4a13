"""Readers for transcript quantifications (salmon, kallisto, RSEM, two-column tables) recognised by
their header, and `Matrix`, a streamed transcripts x samples table. Layouts: docs/formats.md."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .text import is_gzip

# exact headers of the quantifiers' outputs (leading columns; RSEM may append posterior columns)
SALMON = ("Name", "Length", "EffectiveLength", "TPM", "NumReads")
KALLISTO = ("target_id", "length", "eff_length", "est_counts", "tpm")
RSEM_ISOFORMS = ("transcript_id", "gene_id", "length", "effective_length", "expected_count", "TPM",
                 "FPKM", "IsoPct")
RSEM_GENES = ("gene_id", "transcript_id(s)", "length", "effective_length", "expected_count", "TPM",
              "FPKM")


@dataclass(frozen=True)
class Layout:
    """Where a per-sample format keeps each quantity (column names)."""

    name: str
    header: tuple
    id_col: str
    tpm: str | None         # None: the file gives no TPM (a two-column counts table)
    counts: str | None      # None: the file gives no counts (a two-column TPM table)
    eff_length: str | None  # None: no lengths, so counts can only become CPM
    gene_col: str | None    # transcript -> gene column carried by the file itself (RSEM)
    level: str              # "transcript" or "gene"


QUANTIFIERS = ("salmon", "kallisto", "rsem-isoforms", "rsem-genes")   # always end with a newline
LAYOUTS = (
    Layout("salmon", SALMON, "Name", "TPM", "NumReads", "EffectiveLength", None, "transcript"),
    Layout("kallisto", KALLISTO, "target_id", "tpm", "est_counts", "eff_length", None,
           "transcript"),
    Layout("rsem-isoforms", RSEM_ISOFORMS, "transcript_id", "TPM", "expected_count",
           "effective_length", "gene_id", "transcript"),
    Layout("rsem-genes", RSEM_GENES, "gene_id", "TPM", "expected_count", "effective_length", None,
           "gene"),
)


# a two-column per-sample table ``<transcript id> <quantity>`` (e.g. exported from tximport)
TABLE_TPM = ("TPM", "tpm")
TABLE_COUNTS = ("counts", "count", "NumReads", "est_counts", "expected_count", "reads")


@dataclass
class Quant:
    """One sample's quantification, rows in file order."""

    ids: np.ndarray                   # (n,) str: transcript ids (gene ids for rsem-genes)
    tpm: np.ndarray | None            # (n,) float64
    counts: np.ndarray | None         # (n,) float64
    eff_length: np.ndarray | None     # (n,) float64
    gene: np.ndarray | None           # (n,) str, the file's own transcript -> gene column
    layout: Layout


def open_text(path):
    """Text handle for a plain or gzipped file (detected by magic bytes, not extension)."""
    path = Path(path)
    try:
        if is_gzip(path):
            return gzip.open(path, "rt", newline="")
        return open(path, newline="")
    except FileNotFoundError:
        raise RavisoError("no such file", path) from None
    except IsADirectoryError:
        raise RavisoError("is a directory, expected a quantification file", path) from None
    except PermissionError:
        raise RavisoError("permission denied", path) from None


TRUNCATED = ("truncated? (cut short while it was written or copied: re-copy it or re-run the "
             "quantification)")


def first_line(path) -> str:
    try:
        with open_text(path) as f:
            line = f.readline()
    except EOFError:
        raise RavisoError(f"the compressed file ends early: {TRUNCATED}", path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RavisoError(f"cannot read: {e}", path) from None
    if not line.strip():
        raise RavisoError("is empty (no header line): expected a quantification file; was it "
                          "written or copied whole?", path)
    return line.rstrip("\r\n")


def cut_short(path, header_fields: int) -> str | None:
    """Why `path` (plain text) looks cut short, or None: its last line has no newline and fewer
    fields than the header (a quantifier always ends its file with a newline)."""
    if is_gzip(path):
        return None
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
    if not tail or tail.endswith(b"\n"):
        return None
    last = tail.rsplit(b"\n", 1)[-1]
    fields = last.count(b"\t") + 1
    if fields < header_fields:
        return (f"its last line has {fields} of {header_fields} fields and no newline: "
                f"{TRUNCATED}")
    return f"its last line has no newline: {TRUNCATED}"


def short_line(path, header_fields: int) -> str | None:
    """'line N has K of M fields: truncated?' for the first such line of a plain file."""
    if is_gzip(path):
        return None
    with open(path, newline="") as f:
        for n, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").count("\t") + 1
            if n > 1 and fields < header_fields and line.strip():
                return f"line {n} has {fields} of {header_fields} fields: {TRUNCATED}"
    return None


def detect_layout(path) -> Layout:
    """The per-sample format of `path`, from its header line."""
    header = tuple(first_line(path).split("\t"))
    for layout in LAYOUTS:
        if header[:len(layout.header)] == layout.header:
            return layout
    if len(header) == 2 and header[1] in TABLE_TPM + TABLE_COUNTS:
        tpm = header[1] in TABLE_TPM
        return Layout("table-tpm" if tpm else "table-counts", header, header[0],
                      header[1] if tpm else None, None if tpm else header[1], None, None,
                      "transcript")
    if header and header[0].startswith("#1.2"):
        raise RavisoError("is a GCT transcripts x samples matrix, not a per-sample quantification "
                          "(import it with --matrix)", path)
    shown = "\t".join(header[:8])[:120]
    raise RavisoError(
        f"unknown quantification header {shown!r}; expected salmon quant.sf "
        f"({' '.join(SALMON)}), kallisto abundance.tsv ({' '.join(KALLISTO)}), RSEM "
        f"*.isoforms.results or *.genes.results, or a two-column table <id> "
        f"<{'|'.join(TABLE_TPM + TABLE_COUNTS)}>", path)


def _read_columns(path, columns, dtypes):
    import pandas as pd

    try:
        return pd.read_csv(path, sep="\t", usecols=list(columns), dtype=dtypes,
                           compression="gzip" if is_gzip(path) else None, na_filter=False,
                           engine="c")
    except FileNotFoundError:
        raise RavisoError("no such file", path) from None
    except EOFError:
        raise RavisoError(f"the compressed file ends early: {TRUNCATED}", path) from None
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        fields = len(first_line(path).split("\t"))
        why = cut_short(path, fields) or (short_line(path, fields) if isinstance(
            e, ValueError) else None)
        raise RavisoError(why or f"malformed quantification file: {msg}", path) from None


def read_ids(path, layout: Layout | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pass 1: the file's feature ids (and its own gene column, RSEM) without the values; a file
    whose last line is cut off is refused here (`cut_short`)."""
    layout = layout or detect_layout(path)
    why = cut_short(path, len(layout.header))
    if why and (layout.name in QUANTIFIERS or "fields" in why):   # a table may lack the newline
        raise RavisoError(why, path)
    cols = [layout.id_col] + ([layout.gene_col] if layout.gene_col else [])
    df = _read_columns(path, cols, {c: str for c in cols})
    ids = df[layout.id_col].to_numpy(dtype=str)
    gene = df[layout.gene_col].to_numpy(dtype=str) if layout.gene_col else None
    return ids, gene


def read_quant(path, layout: Layout | None = None) -> Quant:
    """Pass 2: one sample's ids, TPM, counts and effective lengths."""
    layout = layout or detect_layout(path)
    num = [c for c in (layout.tpm, layout.counts, layout.eff_length) if c is not None]
    ids = [layout.id_col] + ([layout.gene_col] if layout.gene_col else [])
    dtypes = {c: str for c in ids} | {c: np.float64 for c in num}
    df = _read_columns(path, ids + num, dtypes)
    values = {c: df[c].to_numpy(np.float64) for c in num}
    for c, v in values.items():
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise RavisoError(f"column {c} holds {float(v[k])} for {df[layout.id_col].iloc[k]} "
                              "(expected a finite non-negative number)", path)
    return Quant(ids=df[layout.id_col].to_numpy(dtype=str), tpm=values.get(layout.tpm),
                 counts=values.get(layout.counts), eff_length=values.get(layout.eff_length),
                 gene=df[layout.gene_col].to_numpy(dtype=str) if layout.gene_col else None,
                 layout=layout)


# -- transcripts x samples matrices ---------------------------------------------------------------
GCT_ANNOTATION = ("Description",)


class Matrix:
    """A features x samples table (TSV, or GCT ``#1.2``), plain or gzipped, read in row chunks.

    The first column holds feature ids unless `id_col` names another; `gene_col` names a column of
    gene ids (GTEx's transcript GCT has ``transcript_id gene_id``, taken automatically). Every other
    column is a sample, except GCT's ``Description``.
    """

    def __init__(self, path, id_col: str | None = None, gene_col: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise RavisoError("no such file", self.path)
        with open_text(self.path) as f:
            try:
                line = f.readline()
                self.skip = 0
                if line.startswith("#1.2"):
                    f.readline()
                    line = f.readline()
                    self.skip = 2
            except (OSError, EOFError, UnicodeDecodeError) as e:
                raise RavisoError(f"cannot read: {e}", self.path) from None
        self.columns = line.rstrip("\r\n").split("\t")
        if len(self.columns) < 2:
            raise RavisoError("not a tab-separated matrix (header has fewer than 2 columns)",
                              self.path)
        gct = self.skip == 2
        self.id_col = id_col or self.columns[0]
        if gene_col is None and gct and len(self.columns) > 1 and self.columns[1] == "gene_id":
            gene_col = "gene_id"
        self.gene_col = gene_col
        for what, col in (("--tx-col", self.id_col), ("--gene-col", gene_col)):
            if col is not None and col not in self.columns:
                raise RavisoError(f"{what} {col!r} is not a column (header starts "
                                  f"{', '.join(self.columns[:5])})", self.path)
        skip = {self.id_col, gene_col} | (set(GCT_ANNOTATION) if gct else set())
        self.samples = [c for c in self.columns if c not in skip]
        if not self.samples:
            raise RavisoError("has no sample columns", self.path)
        from collections import Counter

        dups = sorted(s for s, c in Counter(self.samples).items() if c > 1)
        if dups:
            raise RavisoError(f"duplicate sample columns: {', '.join(dups[:20])}", self.path)

    def _reader(self, usecols, dtype, chunksize=None):
        import pandas as pd

        return pd.read_csv(self.path, sep="\t", skiprows=self.skip, usecols=usecols, dtype=dtype,
                           compression="gzip" if is_gzip(self.path) else None, na_filter=False,
                           chunksize=chunksize, engine="c")

    def read_ids(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Pass 1: feature ids and the gene column (if any), reading only those columns."""
        import pandas as pd

        cols = [self.id_col] + ([self.gene_col] if self.gene_col else [])
        try:
            df = self._reader(cols, {c: str for c in cols})
        except (ValueError, pd.errors.ParserError, EOFError, OSError) as e:
            raise RavisoError(f"malformed matrix: {str(e).splitlines()[0]}", self.path) from None
        gene = df[self.gene_col].to_numpy(dtype=str) if self.gene_col else None
        return df[self.id_col].to_numpy(dtype=str), gene

    def iter_values(self, samples, chunk_rows: int = 20000):
        """Pass 2: (n_rows_chunk, len(samples)) float64 blocks of the named sample columns, in
        file row order."""
        import pandas as pd

        samples = list(samples)
        try:
            reader = self._reader(samples, {s: np.float64 for s in samples}, chunk_rows)
            for chunk in reader:
                block = chunk[samples].to_numpy(np.float64)
                bad = ~np.isfinite(block) | (block < 0)
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    raise RavisoError(f"sample {samples[c]} holds {float(block[r, c])} (expected a "
                                      "finite non-negative number)", self.path)
                yield block
        except (ValueError, pd.errors.ParserError, EOFError, OSError) as e:
            raise RavisoError(f"malformed matrix: {str(e).splitlines()[0]}", self.path) from None
