"""`raviso predict`: each sample's applicability domain (`raviso.trust.domain`) in the outputs.

Per sample: ``domain_score`` (distance from the training data), ``domain_pct`` (the fraction of
the CV's held-out donor samples that were less unusual), ``in_domain`` (``domain_pct`` below
``--domain-level``), ``calibrated`` (in domain AND predicted by a path the CV measured: a sample
sent to the tissue-free regressor is calibrated only when the CV ran its ``tissue=False`` twin and
its tissue was not named: the CV measured that path on held-out donors of the trained tissues, and
a tissue it never saw covers less, docs/predictions.md) and,
with ``--interval``, ``interval_scale`` (the factor its conformal half-widths were multiplied by).
AnnData: obs columns; TSV/Parquet: the side table ``<stem>.domain.tsv`` (booleans as 1/0).
``reliable``, the ``oof_*`` columns and the intervals describe samples like the held-out donors:
they hold where ``calibrated`` is 1. One summary line names samples outside; ``--out-of-domain
error`` refuses them instead.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import RavisoError
from ..models.saved import load_optional
from ..trust.domain import DOMAIN_LEVEL, NO_CALIBRATION, DomainCheck
from ..trust import reliability as rel
from .tissues import PATH_FREE

COLUMNS = ("domain_score", "domain_pct", "in_domain", "calibrated", "interval_scale")
VALIDITY = ("reliable, oof_* and the intervals were measured on the CV's held-out donors: they "
            "hold for a sample only where `calibrated` is true (in the applicability domain and "
            "on a prediction path the CV measured)")


class DomainOutput:
    """The per-sample domain columns of one predict run (None-safe when the MODEL has none)."""

    def __init__(self, m, level: float = DOMAIN_LEVEL, policy: str = "warn", source=None,
                 needed: bool = False):
        """`needed`: --interval was asked (its half-widths are scaled here): a damaged
        domain.npz is then an error, not a warning."""
        arrays = load_optional(m.dir, m.meta, "domain", rel.load_arrays,
                               needed or policy == "error")
        self.check = DomainCheck(arrays, level) if arrays is not None else None
        self.free_measured = bool(m.meta.get("tissue_free_reliability"))
        self.has_reliability = bool(m.meta.get("reliability"))
        self.policy, self.source, self.level = policy, source, level
        self.uncalibrated_free: list[str] = []
        self.unseen: list[str] = []           # samples of a named tissue the MODEL never saw
        self.cols: dict = {}
        if self.check is None and policy == "error":
            raise RavisoError(f"--out-of-domain error: {NO_CALIBRATION[len('raviso: note: '):]}",
                              m.dir)

    def assess(self, X, sample_ids) -> None:
        """Score a chunk (before it is written); refuses it under ``--out-of-domain error``."""
        if self.check is None:
            return
        self.cols = self.check.assess(X, sample_ids)
        out = [s for s, ok in zip(sample_ids, self.cols["in_domain"]) if not ok]
        if out and self.policy == "error":
            raise RavisoError(f"{len(out)} sample(s) further from the training data than "
                              f"{self.level:.0%} of held-out donors (--out-of-domain error): "
                              f"{', '.join(map(str, out[:10]))}", self.source)

    def columns(self, ids, paths, tissue=None) -> dict:
        """The chunk's obs columns; `paths`: each sample's prediction path (`TissueRouter`),
        `tissue`: each sample's tissue as given (None: none given)."""
        free = np.array([p == PATH_FREE for p in paths], bool) if paths else \
            np.zeros(len(ids), bool)
        named = np.array([bool(t) for t in tissue], bool) if tissue is not None else \
            np.zeros(len(ids), bool)
        bad = free & (not self.free_measured)
        if self.has_reliability:
            self.uncalibrated_free += [s for s, b in zip(ids, bad) if b]
            self.unseen += [s for s, b in zip(ids, free & named & ~bad) if b]
        bad |= free & named
        if self.check is None:
            return {}
        cols = dict(self.cols)
        cols["calibrated"] = np.asarray(cols["in_domain"], bool) & ~bad
        return cols

    def scale(self, n: int) -> np.ndarray:
        """(n,) the chunk's half-width factors (1 without a calibration)."""
        return np.asarray(self.cols["interval_scale"]) if self.check is not None else np.ones(n)

    def row(self, cols: dict) -> np.ndarray:
        return np.array([np.asarray(cols[c], float) for c in COLUMNS]).T

    def meta(self) -> dict | None:
        if self.check is None:
            return None
        return {"level": self.level, "heldout_samples": int(len(self.check.calibration)),
                "interval_scale": self.check.scale.tolist(), "validity": VALIDITY}

    def notes(self) -> list[str]:
        out = [] if self.check is None or not self.check.summary() else [self.check.summary()]
        if self.check is None and self.has_reliability:
            out.append(NO_CALIBRATION)
        if self.uncalibrated_free:
            n = len(self.uncalibrated_free)
            out.append(f"raviso: warning: {n} sample(s) took the tissue-free path, which the CV "
                       "behind this MODEL did not measure (no tissue=False column): their "
                       "reliability and intervals are the tissue-aware ones and not valid "
                       f"(calibrated false): {', '.join(self.uncalibrated_free[:10])}"
                       + (f" and {n - 10} more" if n > 10 else ""))
        if self.unseen and self.check is not None:
            out.append(f"raviso: note: {len(self.unseen)} sample(s) of a tissue the MODEL was not "
                       "trained on: the CV measured the tissue-free path on held-out donors of its "
                       "trained tissues only, so their reliability and intervals are not "
                       "calibrated (calibrated false)")
        return out
