"""Tissue at prediction time: input tissue names matched to the MODEL's, and samples of no or an
unknown tissue sent to a path trained for that case.

Names match ignoring case, spaces and punctuation (``liver`` -> ``Liver``, ``brain_cortex`` ->
``Brain - Cortex``). A MODEL whose variant reads tissue holds a second regressor, the same variant
fitted with ``tissue=False`` (`raviso.models.saved.tissue_free_fit`); a sample with no tissue or
one the MODEL was not trained on is predicted by it, never by an all-zero one-hot the tissue model
never saw, and one warning names those samples. ``unknown_tissue="error"`` refuses them instead.
"""

from __future__ import annotations

import copy
import re

import numpy as np

from ..core.errors import RavisoError

UNKNOWN_TISSUE = ("tissue-free", "error")
PATH_TISSUE, PATH_FREE, PATH_NONE = "tissue", "tissue-free", "no-tissue-model"


def tissue_key(name) -> str:
    """The matching key of a tissue name: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", str(name or "").lower())


def model_tissues(m) -> list[str]:
    """The tissues the MODEL's regressor was trained with (empty: it does not read tissue)."""
    return list(m.meta.get("tissues") or getattr(m.regressor, "tissues_", None) or [])


class TissueRouter:
    """Predicts chunks with the MODEL, samples of unknown tissue with its tissue-free regressor."""

    def __init__(self, m, policy: str = "tissue-free", source=None):
        from ..models.saved import load_predictor

        if policy not in UNKNOWN_TISSUE:
            raise RavisoError(f"--unknown-tissue must be one of {', '.join(UNKNOWN_TISSUE)} "
                              f"(got {policy!r})")
        self.m, self.policy, self.source = m, policy, source
        self.tissues = model_tissues(m)
        keys: dict[str, list[str]] = {}
        for t in self.tissues:
            keys.setdefault(tissue_key(t), []).append(t)
        self.keys = {k: v[0] for k, v in keys.items() if len(v) == 1}
        self.free = None
        if self.tissues and m.meta.get("tissue_free"):
            self.free = copy.copy(m)
            self.free.regressor = load_predictor(m.dir / m.meta["tissue_free"])
        self.unknown: list[tuple[str, str]] = []        # (sample, tissue as given)
        self.last_path: list[str] = []
        self.last_names: list[str] = []     # the MODEL's spelling of each sample's tissue ("": none)

    def match(self, tissue, sample_ids) -> tuple[list[str], np.ndarray]:
        """(tissue names as the MODEL spells them, mask of samples with no/unknown tissue)."""
        n = len(sample_ids)
        given = list(tissue) if tissue is not None else [""] * n
        names, unknown = [], np.zeros(n, bool)
        for i, t in enumerate(given):
            if t in self.tissues:
                names.append(t)
                continue
            hit = self.keys.get(tissue_key(t))
            names.append(hit or "")
            unknown[i] = hit is None
        return names, unknown

    def predict(self, X: np.ndarray, sample_ids, tissue) -> np.ndarray:
        if not self.tissues:                       # the MODEL does not read tissue
            self.last_path = [PATH_NONE] * len(sample_ids)
            self.last_names = [""] * len(sample_ids)
            return self.m.predict(X, sample_ids, tissue)
        names, unknown = self.match(tissue, sample_ids)
        self.last_names = names
        bad = [(s, (tissue[i] if tissue is not None else "") or "")
               for i, s in enumerate(sample_ids) if unknown[i]]
        if bad and self.policy == "error":
            raise RavisoError(f"{len(bad)} sample(s) with no tissue or one the MODEL was not "
                              f"trained on: {describe(bad)} (MODEL tissues: "
                              f"{', '.join(self.tissues)})", self.source)
        self.unknown += bad
        if self.free is None or not unknown.any():
            self.last_path = [PATH_TISSUE] * len(sample_ids)
            return self.m.predict(X, sample_ids, names)
        P = np.empty((len(sample_ids), len(self.m.isoforms)), np.float32)
        for model, rows in ((self.m, np.flatnonzero(~unknown)),
                            (self.free, np.flatnonzero(unknown))):
            if len(rows):
                P[rows] = model.predict(X[rows], [sample_ids[i] for i in rows],
                                        [names[i] for i in rows])
        self.last_path = [PATH_FREE if u else PATH_TISSUE for u in unknown]
        return P

    def warning(self) -> str | None:
        """One line naming the samples that took the tissue-free path (None: none did)."""
        if not self.unknown:
            return None
        how = ("predicted by the MODEL's tissue-free regressor" if self.free is not None else
               "predicted WITHOUT a tissue-free regressor (this MODEL predates it: refit it)")
        return (f"raviso: warning: {len(self.unknown)} sample(s) with no tissue or one the MODEL "
                f"was not trained on, {how}: {describe(self.unknown)} (MODEL tissues: "
                f"{', '.join(self.tissues)})")


def describe(bad: list[tuple[str, str]], limit: int = 10) -> str:
    text = ", ".join(f"{s} ({t!r})" if t else f"{s} (no tissue)" for s, t in bad[:limit])
    return text + (f" and {len(bad) - limit} more" if len(bad) > limit else "")
