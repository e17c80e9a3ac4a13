"""The small side tables of `raviso convert`: sample id -> tissue, isoform id -> gene name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .source import first_error_line
from .text import is_gzip


def _read_table(path, what: str):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise RavisoError("no such file", path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                         compression="gzip" if is_gzip(path) else None)
    except pd.errors.EmptyDataError:
        raise RavisoError(f"empty file (expected a {what})", path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as e:
        raise RavisoError(f"cannot parse {what}: {first_error_line(e)[:200]}", path) from None
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
