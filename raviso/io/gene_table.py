"""Gene tables as the field writes them, for `raviso predict`: TSV/CSV/GCT/Parquet, genes x samples
or samples x genes, TPM or log2(TPM+1). Orientation is the side whose labels match more model genes,
scale comes from the value range; both can be forced. See docs/formats.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .text import is_gzip
from .tx2gene import strip_version

ORIENTATIONS = ("genes-by-samples", "samples-by-genes")
SCALES = ("tpm", "log2tpm")
TPM_ABOVE = 30.0      # log2(TPM+1) tops out near 20 (TPM 1e6); a larger value means TPM
PARQUET_MAGIC = b"PAR1"


@dataclass
class GeneTable:
    """A table read whole: `values` (rows, value columns), `row_labels` (one list per leading text
    column: gene ids, maybe symbols), `col_labels` (headers of the value columns)."""

    values: np.ndarray
    row_labels: list[list[str]]
    col_labels: list[str]
    gct: bool = False


@dataclass
class Oriented:
    """Samples x model genes on log2(TPM+1), and how it got there."""

    X: np.ndarray
    sample_ids: list[str]
    missing: list[str]
    orientation: str
    scale: str
    labels: str


def match_index(labels, genes, symbols=None) -> np.ndarray:
    """Position in `labels` of each model gene (-1: absent), matched as `raviso import` matches:
    the exact id, else the id without its Ensembl version on both sides, else the model's symbol."""
    exact: dict[str, int] = {}
    stripped: dict[str, int] = {}
    for k, name in enumerate(labels):
        exact.setdefault(str(name), k)
        stripped.setdefault(strip_version(name), k)
    idx = np.full(len(genes), -1, np.int64)
    for j, g in enumerate(genes):
        k = exact.get(g, stripped.get(strip_version(g), -1))
        if k < 0 and symbols and symbols[j]:
            k = exact.get(symbols[j], -1)
        idx[j] = k
    return idx


def check_unique(labels, idx: np.ndarray, source=None) -> None:
    """A model gene matched by a label that occurs twice is ambiguous: an error naming it."""
    from collections import Counter

    used = [str(labels[k]) for k in idx[idx >= 0]]
    counts = Counter(str(x) for x in labels)
    dups = sorted({u for u in used if counts[u] > 1})
    if dups:
        raise RavisoError(f"duplicate genes: {', '.join(dups[:20])}", source)


def read_gene_table(path) -> GeneTable:
    """Any delimited (tab or comma, gzip, BOM) or Parquet table; GCT's two header lines skipped."""
    import pandas as pd

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head == PARQUET_MAGIC:
            df = pd.read_parquet(path)
            df = df.reset_index() if df.index.name is not None else df
            gct = False
        else:
            first = _first_text_line(path)
            gct = first.startswith("#1.2")
            sep = "\t" if gct or "\t" in first else ","
            df = pd.read_csv(path, sep=sep, skiprows=2 if gct else 0, encoding="utf-8-sig",
                             compression="gzip" if is_gzip(path) else None,
                             dtype={0: str, 1: str} if gct else None)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RavisoError(f"cannot read table: {str(e).splitlines()[0][:200]}", path) from None
    return _split_columns(df, path, gct)


def _first_text_line(path: Path) -> str:
    from .text import header_lines

    lines = header_lines(path, 1)
    return lines[0].lstrip("\ufeff") if lines else ""


def _split_columns(df, path, gct) -> GeneTable:
    """Leading text columns are labels; the rest must be numbers."""
    import pandas as pd

    n_text = 2 if gct else 0
    while not gct and n_text < df.shape[1] and not pd.api.types.is_numeric_dtype(
            df.dtypes.iloc[n_text]):
        n_text += 1
    if n_text == 0 or n_text >= df.shape[1]:
        raise RavisoError("expected label column(s) then numeric columns (a gene id column and "
                          "one column per sample, or a sample id column and one per gene)", path)
    num = df.iloc[:, n_text:]
    bad = [c for c in num.columns if not pd.api.types.is_numeric_dtype(num[c])]
    if bad:
        raise RavisoError(f"column {bad[0]!r} holds non-numeric values after the label columns",
                          path)
    V = num.to_numpy(np.float32)
    if not np.isfinite(V).all():
        r, c = np.argwhere(~np.isfinite(V))[0]
        raise RavisoError(f"empty, NA or infinite value in column {num.columns[c]!r}, row {r + 1}",
                          path)
    return GeneTable(V, [df.iloc[:, k].astype(str).tolist() for k in range(n_text)],
                     [str(c) for c in num.columns], gct)


def orient(t: GeneTable, genes, symbols=None, orientation=None, scale=None, source=None
           ) -> Oriented:
    """`t` as samples x model genes, log2(TPM+1); absent genes are NaN columns."""
    rows = [(match_index(lab, genes, symbols), k) for k, lab in enumerate(t.row_labels)]
    by_rows, k = max(rows, key=lambda r: ((r[0] >= 0).sum(), -r[1]))
    by_cols = match_index(t.col_labels, genes, symbols)
    orientation = _orientation(int((by_rows >= 0).sum()), int((by_cols >= 0).sum()),
                               orientation, genes, source)
    if orientation == ORIENTATIONS[0]:
        V, idx, ids = t.values.T, by_rows, t.col_labels
        labels = (["Name", "Description"][k] if t.gct else f"label column {k + 1}")
    elif orientation == ORIENTATIONS[1]:
        V, idx, ids, labels = t.values, by_cols, t.row_labels[0], "column headers"
    else:
        raise RavisoError(f"--orientation must be one of {', '.join(ORIENTATIONS)} "
                          f"(got {orientation!r})")
    check_unique(t.col_labels if orientation == ORIENTATIONS[1] else t.row_labels[k], idx, source)
    scale = scale or detect_scale(V, source)
    X = np.full((V.shape[0], len(genes)), np.nan, np.float32)
    X[:, idx >= 0] = V[:, idx[idx >= 0]]
    missing = [g for g, i in zip(genes, idx) if i < 0]
    return Oriented(to_log2(X, scale, source), list(ids), missing, orientation, scale, labels)


def _orientation(n_rows: int, n_cols: int, forced, genes, source) -> str:
    """The side whose labels match more model genes, or the forced one if it matches any."""
    if max(n_rows, n_cols) == 0:
        raise RavisoError(f"none of the model's {len(genes)} genes (e.g. {genes[0]}) is a row "
                          "or column label of this table", source)
    if forced is None:
        return ORIENTATIONS[0] if n_rows > n_cols else ORIENTATIONS[1]
    if forced in ORIENTATIONS and (n_rows, n_cols)[ORIENTATIONS.index(forced)] == 0:
        raise RavisoError(f"--orientation {forced}: none of the model's {len(genes)} genes is "
                          f"there; the other side has {max(n_rows, n_cols)} of them", source)
    return forced


def detect_scale(V: np.ndarray, source=None) -> str:
    """"tpm" when any value exceeds `TPM_ABOVE`, else "log2tpm"; negative values are an error."""
    if V.size and np.nanmin(V) < 0:
        raise RavisoError(f"negative value {np.nanmin(V):g}: expected TPM or log2(TPM+1)", source)
    return "tpm" if V.size and np.nanmax(V) > TPM_ABOVE else "log2tpm"


def to_log2(X: np.ndarray, scale: str, source=None) -> np.ndarray:
    if scale not in SCALES:
        raise RavisoError(f"--scale must be one of {', '.join(SCALES)} (got {scale!r})")
    if scale == "tpm":
        np.log1p(X, out=X)
        X /= np.float32(np.log(2.0))
    return X


def describe(o: Oriented, n_genes: int, gct: bool = False) -> str:
    """The one-line report: layout, scale, samples, model genes found."""
    layout = "genes x samples" if o.orientation == ORIENTATIONS[0] else "samples x genes"
    scale = "TPM -> log2(TPM+1)" if o.scale == "tpm" else "log2(TPM+1)"
    found = n_genes - len(o.missing)
    return (f"input: {layout}{' (GCT)' if gct else ''}, {scale}, {len(o.sample_ids):,} samples, "
            f"{found:,}/{n_genes:,} model genes (matched on {o.labels})")
