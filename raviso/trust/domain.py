"""Applicability domain: how unusual a new sample's gene expression is next to the training data,
on the scale of the CV's held-out donors.

Every prediction figure raviso ships (per-isoform ``reliable``, the conformal intervals) was
measured on held-out donors of the training set's own kind. A sample unlike any of them (another
cell type, a platform or batch offset, a much lower depth) is outside what was measured, and those
figures say nothing about it. This module scores that, in the space every variant reads: the
MODEL's genes, log2(TPM+1), each standardised by its training sd (floored at `SD_FLOOR`).

- `Domain`: a PCA of the training rows (at most `MAX_COMPONENTS` components, fitted on at most
  `MAX_ROWS` rows). A sample's score is the mean of its Hotelling T^2 in the components (per
  component) and of its residual sum of squares off them (per gene), each divided by its mean over
  the training rows: ~1 for a training row, larger the further off (the T^2 / Q pair of PCA
  process monitoring, as one number).
- The calibration: in the CV, each held-out sample is scored against a `Domain` of its training
  fold (`heldout_scores`); the MODEL stores those scores. ``domain_pct`` of a new sample = the
  fraction of held-out samples that scored lower: 0.995 reads "more unusual than 99.5% of unseen
  donors' samples", and ``in_domain`` is ``domain_pct < level`` (`DOMAIN_LEVEL`).
- The interval scale (normalised conformal with a sample-level scale): the per-sample out-of-fold
  MSE of the held-out samples, by bins of their ``domain_pct`` (`SCALE_EDGES`), as sqrt(MSE of the
  bin / MSE of all); predict multiplies a sample's conformal half-widths by its bin's factor, so
  samples as unusual as the worst-predicted held-out donors get wider intervals and typical ones
  narrower. Beyond the calibration (not ``in_domain``) no width is valid and none is claimed.
Plain numpy; `raviso.evaluate.cv` calls `model_domain` for `--save-model`, `raviso.serve.outputs`
applies it. Measured under shift: docs/predictions.md ("Applicability domain").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DOMAIN_LEVEL = 0.99
MAX_COMPONENTS = 20
MAX_ROWS = 2000
SD_FLOOR = 0.1                    # log2(TPM+1): a gene that barely varies does not dominate
SCALE_EDGES = (0.5, 0.8, 0.95)    # domain_pct bins of the interval scale
CHUNK = 4096


@dataclass
class Domain:
    """A PCA of the training rows' standardised genes and the training means of T^2 and Q."""

    mean: np.ndarray          # (g,)
    sd: np.ndarray            # (g,)
    components: np.ndarray    # (k, g) orthonormal rows
    eig: np.ndarray           # (k,) variance of each component over the training rows
    q_mean: float             # mean residual sum of squares per gene over the training rows

    @classmethod
    def fit(cls, X, rows=None, seed: int = 0) -> "Domain":
        """Fit on rows `rows` of `X` (samples x genes; all rows when None)."""
        rows = np.arange(len(X)) if rows is None else np.asarray(rows)
        if len(rows) > MAX_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))
        Z = np.asarray(X[rows], np.float64)
        mean = Z.mean(axis=0)
        sd = np.maximum(Z.std(axis=0), SD_FLOOR)
        Z = (Z - mean) / sd
        k = int(min(MAX_COMPONENTS, max(1, (len(rows) - 1) // 2), Z.shape[1]))
        if len(rows) <= Z.shape[1]:                     # few rows: the Gram matrix
            w, u = np.linalg.eigh(Z @ Z.T)
            order = np.argsort(w)[::-1][:k]
            w, u = np.maximum(w[order], 0), u[:, order]
            comp = (u.T @ Z) / np.sqrt(np.where(w > 0, w, 1))[:, None]
        else:
            w, v = np.linalg.eigh(Z.T @ Z)
            order = np.argsort(w)[::-1][:k]
            w, comp = np.maximum(w[order], 0), v[:, order].T
        keep = w > 1e-9 * w.max()
        comp, eig = comp[keep], w[keep] / max(len(rows) - 1, 1)
        proj = Z @ comp.T
        q = ((Z - proj @ comp) ** 2).mean(axis=1)
        return cls(mean, sd, comp, eig, max(float(q.mean()), 1e-12))

    def score(self, X) -> np.ndarray:
        """(n,) the distance of each row of `X` (1 ~ a typical training row)."""
        out = np.empty(len(X))
        k = max(len(self.eig), 1)
        for s in range(0, len(X), CHUNK):
            Z = (np.asarray(X[s:s + CHUNK], np.float64) - self.mean) / self.sd
            proj = Z @ self.components.T
            t2 = (proj ** 2 / self.eig).sum(axis=1) / k
            q = ((Z - proj @ self.components) ** 2).mean(axis=1) / self.q_mean
            out[s:s + CHUNK] = (t2 + q) / 2
        return out

    def arrays(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "components": self.components,
                "eig": self.eig, "q_mean": np.array(self.q_mean)}

    @classmethod
    def from_arrays(cls, a: dict) -> "Domain":
        return cls(np.asarray(a["mean"]), np.asarray(a["sd"]), np.asarray(a["components"]),
                   np.asarray(a["eig"]), float(a["q_mean"]))


def first_plan(fold_ids) -> np.ndarray:
    """The (n,) fold ids of the first repeat of a 1-d or (R, n) fold plan."""
    ids = np.asarray(fold_ids)
    return ids[0] if ids.ndim == 2 else ids


def heldout_scores(X, fold_ids) -> np.ndarray:
    """(n,) each sample's score against a `Domain` of its training fold (first repeat)."""
    ids = first_plan(fold_ids)
    out = np.full(len(ids), np.nan)
    for f in np.unique(ids):
        val = np.flatnonzero(ids == f)
        d = Domain.fit(X, np.flatnonzero(ids != f), seed=int(f))
        for s in range(0, len(val), CHUNK):
            out[val[s:s + CHUNK]] = d.score(X[val[s:s + CHUNK]])
    return out


def sample_errors(errors: dict, fold_ids, column: str) -> np.ndarray:
    """(n,) each sample's out-of-fold MSE under CV column `column` (first repeat; NaN where its
    trial shipped none). `errors`: {(fold, column): per-sample MSE in validation-row order}."""
    ids = first_plan(fold_ids)
    out = np.full(len(ids), np.nan)
    for f in np.unique(ids):
        val = np.flatnonzero(ids == f)
        err = errors.get((int(f), column))
        if err is not None and len(err) == len(val):
            out[val] = np.asarray(err, np.float64)
    return out


def percentile(calibration: np.ndarray, scores) -> np.ndarray:
    """The fraction of the calibration scores below each score (``domain_pct``)."""
    cal = np.sort(np.asarray(calibration, np.float64))
    return np.searchsorted(cal, np.asarray(scores, np.float64), side="left") / max(len(cal), 1)


def scale_bins(pct) -> np.ndarray:
    return np.searchsorted(np.asarray(SCALE_EDGES), np.asarray(pct), side="right")


def interval_scale(pct: np.ndarray, mse: np.ndarray) -> np.ndarray:
    """(len(SCALE_EDGES) + 1,) the half-width factor of each ``domain_pct`` bin: sqrt(mean
    per-sample MSE of the held-out samples in the bin / their mean MSE); 1 where unknown."""
    ok = np.isfinite(pct) & np.isfinite(mse)
    out = np.ones(len(SCALE_EDGES) + 1)
    if not ok.any() or np.mean(mse[ok]) <= 0:
        return out
    b = scale_bins(pct[ok])
    for j in range(len(out)):
        if (b == j).any():
            out[j] = np.sqrt(np.mean(mse[ok][b == j]) / np.mean(mse[ok]))
    return out


def model_domain(X, fold_ids, errors: dict | None = None, column: str | None = None) -> dict:
    """The arrays MODEL/domain.npz holds: a `Domain` of every row of `X`, the held-out scores
    of the CV's folds (``calibration``) and the interval scale per bin (``scale``)."""
    held = heldout_scores(X, fold_ids)
    cal = held[np.isfinite(held)]
    pct = percentile(cal, held)
    mse = (sample_errors(errors, fold_ids, column) if errors and column
           else np.full(len(held), np.nan))
    return {**Domain.fit(X).arrays(), "calibration": np.sort(cal),
            "scale": interval_scale(pct, mse), "scale_edges": np.asarray(SCALE_EDGES)}


class DomainCheck:
    """A MODEL's domain arrays applied to new samples (`assess`), tallied for the summary."""

    def __init__(self, arrays: dict, level: float = DOMAIN_LEVEL):
        self.domain = Domain.from_arrays(arrays)
        self.calibration = np.asarray(arrays["calibration"], np.float64)
        self.scale = np.asarray(arrays["scale"], np.float64)
        self.level = float(level)
        self.n, self.outside = 0, []

    def assess(self, X, sample_ids) -> dict[str, np.ndarray]:
        """Per sample ``domain_score``, ``domain_pct``, ``in_domain`` and ``interval_scale``."""
        score = self.domain.score(X)
        pct = percentile(self.calibration, score)
        inside = pct < self.level
        self.n += len(score)
        self.outside += [s for s, ok in zip(sample_ids, inside) if not ok]
        return {"domain_score": score, "domain_pct": pct, "in_domain": inside,
                "interval_scale": self.scale[np.minimum(scale_bins(pct), len(self.scale) - 1)]}

    def summary(self, limit: int = 10) -> str | None:
        """One line when samples fall outside (None when none does)."""
        if not self.outside:
            return None
        names = ", ".join(map(str, self.outside[:limit]))
        more = f" and {len(self.outside) - limit} more" if len(self.outside) > limit else ""
        return (f"raviso: warning: {len(self.outside)} of {self.n} samples are further from the "
                f"training data than {self.level:.0%} of held-out donors: their reliability and "
                f"intervals are not valid (in_domain false): {names}{more}")


NO_CALIBRATION = ("raviso: note: this MODEL has no applicability-domain calibration (it was fitted "
                  "without a CV; `raviso fit --cv-folds 5` adds it): new samples are not checked "
                  "against the training data")
