"""Align feature columns by NAME, never by position.

The seed project fed GTEx rows to a model trained on ARCHS4 columns in another order; every place
that moves a matrix between two gene lists goes through `column_index` instead.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import RavisoError


def column_index(source_names, target_names, source=None, what="genes",
                 allow_missing=False) -> tuple[np.ndarray, list[str]]:
    """Index array `idx` with ``X_source[:, idx]`` in target order (-1 where absent), and the
    target names the source lacks.

    Missing names are an error naming how many and the first 20, unless `allow_missing`.
    Duplicate source names are an error (ambiguous column).
    """
    pos: dict[str, int] = {}
    dups = []
    for k, name in enumerate(source_names):
        name = str(name)
        if name in pos:
            dups.append(name)
        pos[name] = k
    if dups:
        raise RavisoError(f"duplicate {what}: {', '.join(dups[:20])}", source)
    idx = np.array([pos.get(str(t), -1) for t in target_names], dtype=np.int64)
    missing = [str(t) for t, i in zip(target_names, idx) if i < 0]
    if missing and not allow_missing:
        more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
        raise RavisoError(f"{len(missing)} of {len(idx)} {what} missing: "
                          f"{', '.join(missing[:20])}{more}", source)
    return idx, missing


def take_columns(X: np.ndarray, idx: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``X[:, idx]`` as float32, with columns where idx == -1 set to `fill`."""
    out = np.empty((X.shape[0], len(idx)), dtype=np.float32)
    present = idx >= 0
    if present.all():
        out[:] = X[:, idx]
    else:
        out[:, present] = X[:, idx[present]]
        out[:, ~present] = fill
    return out
