"""Sample sheets (for `raviso import` and `raviso predict --samples`): read with delimiter sniffing
and BOM handling, and checked for what would otherwise spoil a CV silently (a file listed twice, ids
with tabs, donors). Details: docs/formats.md."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RavisoError
from ..data.folds import donor_of

SAMPLE_COLS = ("sample", "sample_id")
PATH_COLS = ("path", "quant", "file")
GENE_PATH_COLS = ("gene_quant",)
DONOR_COLS = ("donor", "group")
SAMPLE_SETS = ("exact", "intersect")
BAD_ID_CHARS = {"\t": "a tab", "\n": "a line break", "\r": "a line break"}


@dataclass
class SheetRow:
    sample_id: str
    path: Path | None
    label: str | None
    donor: str | None
    gene_path: Path | None = None


def header_key(name: str) -> str:
    return name.strip().lower().replace("_", "")


def _pick(header, names, sheet, required):
    """The sheet's column for one of `names`, matched ignoring case and underscores."""
    keys = {header_key(h): h for h in header}
    for n in names:
        if header_key(n) in keys:
            return keys[header_key(n)]
    if required:
        raise RavisoError(f"sample sheet needs a column named {' or '.join(names)} (columns "
                          f"found: {', '.join(header) or 'none'})", sheet)
    return None


def _read_table(path: Path):
    """(header, [(line number, fields)]) of a CSV / TSV / `;` sheet, BOM and CRLF tolerated."""
    import pandas as pd

    if path.stat().st_size == 0:
        raise RavisoError("is empty: a sample sheet needs a header line and one line per sample",
                          path)
    with open(path, "rb") as f:
        head = f.readline().decode("utf-8-sig", errors="replace")
    # a one-column sheet has no delimiter to sniff; pandas' sniffer would give up on it
    sep = None if any(c in head for c in "\t,;") else "\t"
    try:
        df = pd.read_csv(path, sep=sep, engine="python", encoding="utf-8-sig", dtype=str,
                         keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise RavisoError("sample sheet is empty (expected a header line and one line per "
                          "sample)", path) from None
    except UnicodeDecodeError as e:
        raise RavisoError(f"sample sheet is not UTF-8 text (byte {e.start + 1}); save it as "
                          "UTF-8 (Excel: CSV UTF-8)", path) from None
    except (pd.errors.ParserError, csv.Error, ValueError) as e:
        msg = str(e).strip().splitlines()
        raise RavisoError(f"cannot parse sample sheet: {msg[-1] if msg else type(e).__name__}",
                          path) from None
    header = [str(c).strip() for c in df.columns]
    rows = [(k + 2, ["" if v is None or v != v else str(v) for v in values])
            for k, values in enumerate(df.itertuples(index=False, name=None))]
    return header, [(n, r) for n, r in rows if any(c.strip() for c in r)]


def read_samplesheet(path, label: str | None = None, need_paths: bool = True) -> list[SheetRow]:
    """Rows of a sample sheet; quantification paths are relative to the sheet.

    `label` names the condition column stored as ``tissue`` (None: ``tissue`` if present).
    Duplicate sample names, missing files, two rows on one file and ids with tabs are errors
    naming the sheet line.
    """
    path = Path(path)
    if not path.is_file():
        raise RavisoError("no such sample sheet", path)
    header, rows = _read_table(path)
    if not rows:
        raise RavisoError("sample sheet has no samples (expected a header line and one line per "
                          "sample)", path)
    sample_col = _pick(header, SAMPLE_COLS, path, True)
    path_col = _pick(header, PATH_COLS, path, need_paths)
    gene_col = _pick(header, GENE_PATH_COLS, path, False)
    donor_col = _pick(header, DONOR_COLS, path, False)
    label_col = _pick(header, [label or "tissue"], path, label is not None)
    out, seen, files = [], {}, {}
    for lineno, r in rows:
        rec = dict(zip(header, (c.strip() for c in r)))
        sid = rec[sample_col]
        if not sid:
            raise RavisoError(f"line {lineno}: empty sample name", path)
        bad = next((what for ch, what in BAD_ID_CHARS.items() if ch in sid), None)
        if bad:
            raise RavisoError(f"line {lineno}: sample id {sid!r} contains {bad} (it would break "
                              "TSV outputs)", path)
        if sid in seen:
            raise RavisoError(f"line {lineno}: duplicate sample {sid!r} (first on line "
                              f"{seen[sid]})", path)
        seen[sid] = lineno

        def file_of(col):
            if col is None or not rec[col]:
                return None
            p = Path(rec[col])
            p = p if p.is_absolute() else path.parent / p
            if not p.is_file():
                raise RavisoError(f"line {lineno}: quantification file of sample {sid!r} not "
                                  f"found: {p}", path)
            return p

        qpath = file_of(path_col)
        if need_paths and qpath is None:
            raise RavisoError(f"line {lineno}: sample {sid!r} has no quantification path", path)
        if qpath is not None:
            first = files.setdefault(qpath.resolve(), (sid, lineno))
            if first[0] != sid:
                raise RavisoError(f"line {lineno}: sample {sid!r} uses the same file as sample "
                                  f"{first[0]!r} (line {first[1]}): {qpath}", path)
        donor = (rec[donor_col] or None) if donor_col else None
        out.append(SheetRow(sid, qpath, (rec[label_col] or None) if label_col else None,
                            donor or donor_of(sid), file_of(gene_col)))
    _warn_no_label(out, label_col, path)
    return out


def _warn_no_label(rows: list[SheetRow], label_col: str | None, path) -> None:
    if label_col and not any(r.label for r in rows):
        print(f"raviso: warning: {path}: column {label_col!r} is empty in every row: no tissue "
              "given: tissue-aware models and baselines are skipped", file=sys.stderr)


def select_matrix_samples(rows: list[SheetRow], matrix_samples, sample_set: str, sheet,
                          matrix, warn) -> list[SheetRow]:
    """The sheet rows a matrix has columns for. A sheet sample the matrix lacks is an error with
    ``sample_set="exact"`` (the default: a typo must not silently shrink the data set); with
    ``"intersect"`` (GTEx's annotation table lists every sample ever collected) it is dropped
    and counted."""
    if sample_set not in SAMPLE_SETS:
        raise RavisoError(f"--sample-set must be one of {', '.join(SAMPLE_SETS)} "
                          f"(got {sample_set!r})")
    have = set(matrix_samples)
    absent = [r.sample_id for r in rows if r.sample_id not in have]
    if absent and sample_set == "exact":
        raise RavisoError(f"{len(absent)} samples of the sheet are not columns of {matrix}: "
                          f"{', '.join(absent[:20])} (pass --sample-set intersect to import the "
                          "samples in both)", sheet)
    if absent:
        rows = [r for r in rows if r.sample_id in have]
        if not rows:
            raise RavisoError(f"no sample of the sheet is a column of {matrix} (e.g. "
                              f"{', '.join(absent[:5])})", sheet)
        warn(f"{len(absent)} of {len(absent) + len(rows)} samples of the sheet are not in the "
             f"matrix and are left out (--sample-set intersect), e.g. {', '.join(absent[:5])}")
    return rows


def check_same_index(names, id_sets, union_size: int, max_mismatch: float, sheet, warn) -> list:
    """Per-sample quantifications must list the same transcripts: salmon, kallisto and RSEM
    write every transcript of their index, zeros included, so a sample lacking some of the
    union was quantified against another index (another annotation release, another species)
    and its missing transcripts would silently read as 0. Above `max_mismatch` (the largest
    fraction of the union one sample may lack) that is an error reporting the counts; below, a
    warning. Returns the (sample, missing) pairs."""
    missing = [(s, union_size - len(ids)) for s, ids in zip(names, id_sets)
               if len(ids) < union_size]
    if not missing:
        return []
    worst = max(m for _, m in missing)
    shown = ", ".join(f"{s}: {m:,} of {union_size:,}" for s, m in missing[:8])
    msg = (f"{len(missing)} of {len(names)} samples lack transcripts the others list ({shown}"
           f"{' ...' if len(missing) > 8 else ''} missing)")
    if worst / union_size > max_mismatch:
        raise RavisoError(f"quantified against different indexes? {msg}; a sample lacks up to "
                          f"{worst / union_size:.1%} of the union, over --max-index-mismatch "
                          f"{max_mismatch:.1%}", sheet)
    warn(f"{msg}: set to 0 (within --max-index-mismatch {max_mismatch:.1%})")
    return missing
