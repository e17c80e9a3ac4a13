"""Repeated k-fold cross-validation (`raviso cv --repeats R`): R k-fold splits that are
genuinely different partitions of the samples.

sklearn's StratifiedGroupKFold shuffles only the order of donors whose tissue mix has the same
spread, so with few donors most fold seeds give the SAME partition (the tiny synthetic preset, 16
donors: every seed 0-7 alike). A repeated test that counted such a repeat would treat the same
folds as new evidence. So a repeat whose partition equals an earlier one is dropped and further
seeds are drawn (at most `MAX_SEEDS` x R in all); when fewer distinct partitions exist, the plan
holds those only and says so (``note``, ``repeats_requested``, ``duplicate_seeds`` in to_dict).
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
    requested: int = 0                      # --repeats as asked (0: len(plans))
    duplicate_seeds: list[int] | None = None   # seeds whose partition repeated an earlier one

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

    @property
    def note(self) -> str:
        """One line when the plan holds fewer repeats than asked ("" otherwise)."""
        want = self.requested or self.repeats
        if self.repeats >= want:
            return ""
        tried = self.repeats + len(self.duplicate_seeds or [])
        return (f"--repeats {want}: only {self.repeats} distinct partition(s) into "
                f"{self.k_per_repeat} folds in {tried} fold seeds; running {self.repeats} "
                "(a repeated partition is never counted twice)")

    def to_dict(self) -> dict:
        return {**self.plans[0].to_dict(), "repeats": self.repeats, "n_folds": self.k,
                "seeds": [p.seed for p in self.plans],
                "repeats_requested": self.requested or self.repeats,
                "duplicate_seeds": list(self.duplicate_seeds or []), "note": self.note}


MAX_SEEDS = 10     # fold seeds tried per requested repeat before giving up on more partitions


def partition_key(fold: np.ndarray) -> bytes:
    """The partition of a fold assignment, whatever the fold labels: each sample's fold renamed
    by the order in which folds first appear (equal keys = the same sets of validation rows)."""
    fold = np.asarray(fold)
    labels, first = np.unique(fold, return_index=True)
    rank = np.empty(len(labels), np.int64)
    rank[np.argsort(first)] = np.arange(len(labels))
    return rank[np.searchsorted(labels, fold)].tobytes()


def repeated_folds(tissue, donor=None, *, k: int, seed: int, repeats: int,
                   **kw) -> Folds | RepeatedFolds:
    """`make_folds` with fold seeds seed, seed+1, ... until R distinct partitions (or
    `MAX_SEEDS` x R seeds) are found; R = 1 returns the plain plan."""
    if int(repeats) < 1:
        raise RavisoError(f"--repeats must be at least 1 (got {repeats})")
    want = int(repeats)
    if want == 1:
        return make_folds(tissue, donor, k=k, seed=seed, **kw)
    plans, seen, duplicates = [], set(), []
    for s in range(seed, seed + MAX_SEEDS * want):
        plan = make_folds(tissue, donor, k=k, seed=s, **kw)
        key = partition_key(plan.fold)
        if key in seen:
            duplicates.append(s)
        else:
            seen.add(key)
            plans.append(plan)
        if len(plans) == want:
            break
    if len({p.k for p in plans}) != 1:
        raise RavisoError("the repeats chose different numbers of folds; give --folds explicitly")
    return RepeatedFolds(plans, requested=want, duplicate_seeds=duplicates)


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
