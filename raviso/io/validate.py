"""Checks on input chunks (finite, log scale, shapes), cheap enough for every chunk of a large
conversion; each raises one `RavisoError` line naming the file, row and column."""

from __future__ import annotations

import numpy as np

from ..core.errors import RavisoError

# log2(TPM+1) cannot exceed log2(1e6+1) ~ 19.93 (a whole library in one feature); log2(CPM+1) the
# same. Anything above this bound is linear-scale data (TPM, counts) handed in as if it were logged.
LOG_SCALE_MAX = 30.0


def _where(mask: np.ndarray, row0: int, sample_ids, features) -> str:
    r, c = np.argwhere(mask)[0]
    sid = sample_ids[r] if sample_ids is not None and r < len(sample_ids) else f"row {row0 + r + 1}"
    feat = features[c] if features is not None and c < len(features) else f"column {c + 1}"
    return f"sample {sid}, feature {feat}"


def check_values(X: np.ndarray, path, *, row0: int = 0, sample_ids=None, features=None,
                 log_scale: bool = True) -> None:
    """Finite, non-negative and (when `log_scale`) plausibly log2-transformed expression.

    `row0` is the chunk's first row in the file, so an error can say where the problem is.
    """
    if X.size == 0:
        return
    lo, hi = float(np.min(X)), float(np.max(X))   # NaN propagates through min/max
    if not (np.isfinite(lo) and np.isfinite(hi)):
        nan = np.isnan(X)
        if nan.any():
            raise RavisoError(f"NaN or missing value at {_where(nan, row0, sample_ids, features)}",
                              path)
        raise RavisoError(f"infinite value at {_where(np.isinf(X), row0, sample_ids, features)}",
                          path)
    if lo < 0:
        raise RavisoError(f"negative value {lo:g} at "
                          f"{_where(X < 0, row0, sample_ids, features)} (expression must be >= 0)",
                          path)
    if log_scale and hi > LOG_SCALE_MAX:
        raise RavisoError(
            f"value {hi:g} at {_where(X == hi, row0, sample_ids, features)} is not on a log scale "
            f"(log2(TPM+1) stays below {LOG_SCALE_MAX:g}); pass log-transformed data, or a GTEx "
            "GCT / ARCHS4 H5 file, whose raw TPM / counts raviso transforms itself", path)


def check_names(names, path, what: str) -> list[str]:
    """Feature or sample names: none empty, none with a tab or line break, none repeated.
    Returns them as str."""
    names = [str(n) for n in names]
    if not names:
        raise RavisoError(f"no {what}", path)
    empty = [k for k, n in enumerate(names) if not n.strip()]
    if empty:
        raise RavisoError(f"{len(empty)} empty {what} name(s), first at position {empty[0] + 1}",
                          path)
    bad = [k for k, n in enumerate(names) if "\t" in n or "\n" in n or "\r" in n]
    if bad:   # they would split TSV outputs (predict, export) into extra columns and rows
        raise RavisoError(f"{len(bad)} {what} contain a tab or line break, first "
                          f"{names[bad[0]]!r} at position {bad[0] + 1}", path)
    dups = duplicates(names)
    if dups:
        raise RavisoError(f"duplicate {what}: {', '.join(dups[:10])}"
                          + (f" (and {len(dups) - 10} more)" if len(dups) > 10 else ""), path)
    return names


def duplicates(names) -> list[str]:
    seen, dups = set(), []
    for n in names:
        if n in seen:
            dups.append(n)
        seen.add(n)
    return dups


class UniqueIds:
    """Sample ids seen so far in a streamed file; a repeat is an error naming the id."""

    def __init__(self, path, what: str = "sample id"):
        self.path, self.what = path, what
        self.seen: set[str] = set()
        self.ids: list[str] = []

    def add(self, ids) -> None:
        before = len(self.seen)
        self.seen.update(ids)
        self.ids.extend(ids)
        if len(self.seen) != before + len(ids):
            dup = duplicates(self.ids)
            raise RavisoError(f"duplicate {self.what}: {', '.join(dup[:10])}", self.path)


def check_covered(needed, table: dict, path, what: str = "samples", table_what="tissue table"):
    """Every name in `needed` has an entry in `table` (e.g. a tissue for every GTEx sample)."""
    missing = [s for s in needed if s not in table]
    if missing:
        raise RavisoError(f"{table_what} misses {len(missing)} of {len(needed)} {what}: "
                          f"{', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""), path)
