"""Repeated k-fold cross-validation (`raviso cv --repeats R`): R independent k-fold splits.
Design notes: docs/stages.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.errors import RavisoError
from ...data.folds import Folds, make_folds


@dataclass
class RepeatedFolds:
    """R fold plans as one: ``k`` is the TOTAL number of folds (R * k_per_repeat), ``fold`` the
    first repeat's assignment (what memory estimates and fingerprints read) and ``assignments``
    the (R, n) global fold id of every sample in every repeat (what the trials read)."""

    plans: list[Folds]

    @property
    def k_per_repeat(self) -> int:
        return self.plans[0].k

    @property
    def repeats(self) -> int:
        return len(self.plans)

    @property
    def k(self) -> int:
        return self.k_per_repeat * self.repeats

    @property
    def fold(self) -> np.ndarray:
        return self.plans[0].fold

    @property
    def assignments(self) -> np.ndarray:
        return np.stack([p.fold + r * self.k_per_repeat for r, p in enumerate(self.plans)])

    def repeat_of(self, i: int) -> int:
        return i // self.k_per_repeat

    def split(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        r, f = divmod(i, self.k_per_repeat)
        return self.plans[r].split(f)

    def to_dict(self) -> dict:
        return {**self.plans[0].to_dict(), "repeats": self.repeats, "n_folds": self.k,
                "seeds": [p.seed for p in self.plans]}


def repeated_folds(tissue, donor=None, k: int = 5, seed: int = 0, repeats: int = 1,
                   **kw) -> Folds | RepeatedFolds:
    """`make_folds` R times with fold seeds seed, seed+1, ...; R = 1 returns the plain plan."""
    if int(repeats) < 1:
        raise RavisoError(f"--repeats must be at least 1 (got {repeats})")
    plans = [make_folds(tissue, donor, k=k, seed=seed + r, **kw) for r in range(int(repeats))]
    if len(plans) == 1:
        return plans[0]
    if len({p.k for p in plans}) != 1:
        raise RavisoError("the repeats chose different numbers of folds; give --folds explicitly")
    return RepeatedFolds(plans)


def fold_assignment(fold_ids: np.ndarray, fold: int) -> np.ndarray:
    """The (n,) fold ids of the repeat holding global fold `fold` (a 1-d plan is returned as is):
    train = ids != fold, validation = ids == fold."""
    fold_ids = np.asarray(fold_ids)
    if fold_ids.ndim == 1:
        return fold_ids
    rows = np.flatnonzero((fold_ids == fold).any(axis=1))
    if len(rows) != 1:
        raise ValueError(f"fold {fold} is in {len(rows)} repeats of the plan")
    return fold_ids[rows[0]]


def repeat_of(folds, i: int) -> int:
    """The repeat of global fold `i` (0 for a plain plan)."""
    return folds.repeat_of(i) if hasattr(folds, "repeat_of") else 0


def fold_split(fold_ids: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of global fold `fold` of a 1-d or (R, n) plan."""
    ids = fold_assignment(fold_ids, fold)
    return np.flatnonzero(ids != fold), np.flatnonzero(ids == fold)
