"""Per-isoform reliability and conformal prediction intervals from the CV's out-of-fold residuals.

Every (fold, variant) trial feeds its validation predictions through an `OofAccumulator`: per
isoform the count, sums, sums of squares and cross products of prediction and observation (shifted
by the training-fold mean, as `raviso.evaluate.engine.streaming` does), the sum of squared errors and
a histogram of absolute residuals |pred - obs| over fixed log-spaced bins (`EDGES`, 12 per octave
from 2^-7 to 2^4 log2(TPM+1)). That is O(isoforms) memory whatever the number of samples: ~42 MB per
trial at 157k isoforms (uint16 counts), where the residuals themselves would be 2.2 GB per fold.

Summed over folds they give each isoform's out-of-fold MSE, R^2 (vs its own out-of-fold mean), Pearson
r and mean level (`per_isoform`), and the split-conformal half-width of an interval at any level: the
ceil((n+1) level)-th smallest |residual| of that isoform, read from its histogram and rounded up
to the upper edge of its bin (`halfwidth`: never below the exact quantile, so the finite-sample
guarantee holds); with too few residuals for the rank it is infinite.
Residuals are out-of-fold (CV+ style); the MODEL is refitted on all rows, so its intervals are, if
anything, slightly conservative. `coverage` measures that honestly: each fold's intervals are
calibrated on the OTHER folds of its repeat and counted on the fold's held-out donors.

Why not MAPIE or crepes: both calibrate one target (or a handful) from in-memory arrays of
residuals per calibration sample; 157k outputs x thousands of samples would have to be held whole,
and neither takes residuals that arrive as per-fold streams from Ray trials.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.metrics import LEVEL_EDGES, LEVELS, add_moments, column_blocks, tiny_ss
from .splice_qc import QcSums

PER_OCTAVE = 12                  # older MODELs hold 6 per octave: `edges_of` reads either


def edges_of(n_bins: int) -> np.ndarray:
    """The bin edges of a histogram with `n_bins` bins (2^-7 .. 2^4, `n_bins` = 11 p + 2)."""
    p = (int(n_bins) - 2) // 11
    return 2.0 ** (np.arange(-7 * p, 4 * p + 1) / p)


EDGES = edges_of(11 * PER_OCTAVE + 2)
N_BINS = len(EDGES) + 1          # [0, EDGES[0]), [EDGES[j-1], EDGES[j]) ..., [EDGES[-1], inf)
COVERAGE_LEVELS = (0.8, 0.9, 0.95)
OOF_FILE = "oof.npz"
QC_KEYS = ("qc_gene", "qc_sample")


class OofAccumulator:
    """Per-isoform out-of-fold sums and |residual| histogram of one trial (`add` row chunks)."""

    def __init__(self, train_mean: np.ndarray | None = None, isoform_gene=None):
        if train_mean is not None:
            self.start(train_mean, isoform_gene)

    def start(self, train_mean: np.ndarray, isoform_gene=None) -> None:
        """Reset to accumulate around the training-fold mean `train_mean`; with `isoform_gene`
        (gene index per isoform) also the isoform-fraction distances (`splice_qc.QcSums`)."""
        self.qc = None if isoform_gene is None else QcSums(isoform_gene)
        self.shift = np.asarray(train_mean, np.float64)
        m = len(self.shift)
        self.sums = np.zeros((5, m))               # S_p, S_y, S_pp, S_yy, S_py (shifted)
        self.sse = np.zeros(m)
        self.hist = np.zeros((m, N_BINS), np.uint32)
        self.n = 0

    def add(self, pred: np.ndarray, Y: np.ndarray, tissue=None) -> None:
        k, m = Y.shape
        for cols in column_blocks(k, m):
            p = pred[:, cols].astype(np.float64) - self.shift[cols]
            y = Y[:, cols].astype(np.float64) - self.shift[cols]
            d = p - y
            add_moments(self.sums[:, cols], p, y)
            self.sse[cols] += np.einsum("ij,ij->j", d, d)
            width = d.shape[1]
            b = np.searchsorted(EDGES, np.abs(d), side="right")
            if k < N_BINS:        # a few rows: one increment per row, no (width, bins) temporary
                hist, at = self.hist[cols], np.arange(width)
                for row in b:
                    hist[at, row] += 1
                continue
            flat = (np.arange(width)[None, :] * N_BINS + b).ravel()
            self.hist[cols] += np.bincount(flat, minlength=width * N_BINS).reshape(
                width, N_BINS).astype(np.uint32)
        if self.qc is not None:
            self.qc.add(pred, Y)
        self.n += k

    def result(self) -> dict:
        """The arrays a trial ships (counts as uint16 when they fit)."""
        hist = self.hist.astype(np.uint16) if self.n < 65535 else self.hist
        return {"n": np.array(self.n), "shift": self.shift, "sums": self.sums, "sse": self.sse,
                "hist": hist, **(self.qc.result() if self.qc is not None else {})}


def combine(parts: list[dict]) -> dict:
    """Sum trials' `OofAccumulator.result()` into one (sums re-shifted to the first's shift)."""
    c = np.asarray(parts[0]["shift"], np.float64)
    n, sums = 0, np.zeros_like(np.asarray(parts[0]["sums"], np.float64))
    sse = np.zeros(len(c))
    hist = np.zeros(np.shape(parts[0]["hist"]), np.uint32)
    for part in parts:
        k = int(part["n"])
        sp, sy, spp, syy, spy = np.asarray(part["sums"], np.float64)
        d = np.asarray(part["shift"], np.float64) - c
        sums += np.stack([sp + k * d, sy + k * d, spp + 2 * d * sp + k * d * d,
                          syy + 2 * d * sy + k * d * d, spy + d * (sp + sy) + k * d * d])
        sse += part["sse"]
        hist += np.asarray(part["hist"], np.uint32)
        n += k
    out = {"n": np.array(n), "shift": c, "sums": sums, "sse": sse, "hist": hist}
    for key in QC_KEYS:                       # present only when every trial has them
        if all(key in p for p in parts):
            out[key] = sum(np.asarray(p[key], np.float64) for p in parts)
    return out


def per_isoform(acc: dict, min_sd: float = 0.01) -> dict[str, np.ndarray]:
    """Per-isoform out-of-fold ``oof_mse``, ``oof_r2`` (NaN where the isoform barely varies: its
    out-of-fold SD under `min_sd` log2(TPM+1), a <0.7% spread in TPM, below quantification noise
    and float16 storage, where 1 - SSE/SST would divide by rounding noise, e.g. -3e9), ``oof_r``
    (0 where the prediction does not vary), ``mean_expr`` (mean observed) and ``oof_n``."""
    n = int(acc["n"])
    sp, sy, spp, syy, spy = np.asarray(acc["sums"], np.float64)
    vyy = syy - sy * sy / n
    vpp = spp - sp * sp / n
    cpy = spy - sp * sy / n
    ok = (vyy > tiny_ss(n)) & (vyy > n * float(min_sd) ** 2)
    both = ok & (vpp > tiny_ss(n))
    r = np.zeros(len(sp))
    r[both] = np.clip(cpy[both] / np.sqrt(vpp[both] * vyy[both]), -1, 1)
    sse = np.asarray(acc["sse"], np.float64)
    r2 = np.full(len(sp), np.nan)
    r2[ok] = 1 - sse[ok] / vyy[ok]
    return {"oof_mse": sse / n, "oof_r2": r2, "oof_r": r,
            "mean_expr": np.asarray(acc["shift"]) + sy / n, "oof_n": np.full(len(sp), n)}


RELIABLE_R2 = 0.5       # the default `reliable` rule (predict --reliable-r2, the CV's counts)


def reliable(stats: dict, min_r2: float = RELIABLE_R2) -> np.ndarray:
    """The ``reliable`` flag: out-of-fold R^2 at least `min_r2` (an isoform that does not vary
    out of fold has no R^2 and is not flagged reliable)."""
    r2 = np.asarray(stats["oof_r2"], np.float64)
    return np.nan_to_num(r2, nan=-np.inf) >= float(min_r2)


def running_counts(hist: np.ndarray) -> np.ndarray:
    """Per row of `hist`, the counts up to and including each bin (int64; converting first is
    ~3x faster than numpy's casting accumulate at 200k x 134)."""
    return np.cumsum(np.asarray(hist, np.int64), axis=1)


def _bin_of(hist: np.ndarray, rank: np.ndarray, cum=None) -> tuple[np.ndarray, np.ndarray]:
    """(bin holding the `rank`-th smallest value, count below that bin) per row of `hist`
    (`cum`: its `running_counts`, when the caller has them)."""
    cum = running_counts(hist) if cum is None else cum
    j = (cum < rank[:, None]).sum(axis=1)
    jj = np.minimum(j, hist.shape[1] - 1)
    below = np.where(jj > 0, cum[np.arange(len(j)), np.maximum(jj - 1, 0)], 0)
    return j, below


def halfwidth(hist: np.ndarray, level: float, cum=None) -> np.ndarray:
    """Per-isoform conformal half-width at `level` from |residual| histograms (m, N_BINS): the
    ceil((n+1) level)-th smallest residual (n = the isoform's count), rounded UP to the upper
    edge of the bin that holds it, so it is never below the exact finite-sample quantile and the
    split-conformal guarantee holds (at most one bin, 2^(1/12), wider); inf where that rank > n
    or falls in the open top bin (|residual| >= 16 log2 units)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    hist = np.asarray(hist)
    n = hist.sum(axis=1, dtype=np.int64)
    rank = np.ceil((n + 1) * level - 1e-9).astype(np.int64)
    j, _ = _bin_of(hist, rank, cum)
    out = np.full(len(n), np.inf)
    ok = (j < hist.shape[1] - 1) & (rank <= n) & (n > 0)
    out[ok] = edges_of(hist.shape[1])[j[ok]]     # the upper edge of bin j
    return out


def covered(hist: np.ndarray, width: np.ndarray, cum=None) -> np.ndarray:
    """Per isoform, how many of the residuals counted in `hist` are <= `width` (interpolated
    inside the bin that holds `width`; exact when `width` is a bin edge, as `halfwidth`'s are)."""
    hist = np.asarray(hist)
    edges = edges_of(hist.shape[1])
    lo_all = np.concatenate([[0.0], edges])
    hi_all = np.concatenate([edges, [2 * edges[-1]]])   # the open last bin read as one more octave
    width = np.asarray(width, np.float64)
    cum = running_counts(hist) if cum is None else cum
    rows = np.arange(len(width))
    j = np.searchsorted(edges, np.minimum(width, hi_all[-1]), side="right")
    below = np.where(j > 0, cum[rows, np.maximum(j - 1, 0)], 0)
    lo, hi = lo_all[j], hi_all[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(j == 0, width / hi, np.log(np.maximum(width, lo) / np.where(lo > 0, lo, 1))
                        / np.log(hi / np.where(lo > 0, lo, 1)))
    out = below + np.clip(frac, 0, 1) * hist[rows, j]
    return np.where(np.isinf(width), cum[:, -1], out)


def _fold_coverage(cal: dict, test: dict, level: float, cums=(None, None)) -> dict:
    width = halfwidth(cal["hist"], level, cums[0])
    hit = covered(test["hist"], width, cums[1])
    mean = np.asarray(cal["shift"]) + np.asarray(cal["sums"][1]) / max(int(cal["n"]), 1)
    lvl = np.searchsorted(LEVEL_EDGES, mean, side="right")
    n = int(test["n"])
    by = {name: [float(hit[lvl == b].sum()), n * int((lvl == b).sum())]
          for b, name in enumerate(LEVELS)}
    finite = np.isfinite(width)
    return {"hit": float(hit.sum()), "total": n * len(width), "by_level": by,
            "width": float(np.mean(width[finite])) if finite.any() else None}


def coverage(fold_parts: dict[int, dict], k: int, levels=COVERAGE_LEVELS) -> dict:
    """Held-out-donor coverage of `halfwidth` intervals: fold f calibrated on the other folds of
    its repeat (folds r*k .. r*k+k-1), counted on fold f. `fold_parts`: {fold: trial arrays}."""
    acc = {level: {"per_fold": [], "hit": 0.0, "total": 0, "widths": [],
                   "by": {name: [0.0, 0] for name in LEVELS}} for level in levels}
    for f, test in sorted(fold_parts.items()):
        rep = f // k
        others = [p for g, p in fold_parts.items() if g // k == rep and g != f]
        if not others:
            continue
        cal = combine(others)                 # once per fold, for every level
        cums = running_counts(cal["hist"]), running_counts(test["hist"])
        for level in levels:
            c, a = _fold_coverage(cal, test, level, cums), acc[level]
            a["per_fold"].append(c["hit"] / c["total"])
            a["hit"], a["total"] = a["hit"] + c["hit"], a["total"] + c["total"]
            for name, (h, t) in c["by_level"].items():
                a["by"][name][0] += h
                a["by"][name][1] += t
            a["widths"].append(c["width"])
    out = {}
    for level, a in acc.items():
        ws = [w for w in a["widths"] if w is not None]
        out[f"{level:g}"] = {
            "coverage": a["hit"] / a["total"] if a["total"] else None, "per_fold": a["per_fold"],
            "by_level": {name: (h / t if t else None) for name, (h, t) in a["by"].items()},
            "mean_halfwidth": float(np.mean(ws)) if ws else None}
    return out


def cv_intervals(oof: dict, folds, variants) -> dict:
    """results.json ``intervals``: {variant: coverage per level} for every variant whose trials
    all shipped out-of-fold arrays. `folds`: the fold plan (with ``--repeats``, fold f is
    calibrated on its own repeat's other folds only: every repeat holds the same samples)."""
    k = getattr(folds, "k_per_repeat", folds.k)
    out = {}
    for v in variants:
        parts = {f: a for (f, name), a in oof.items() if name == v}
        if len(parts) >= 2:
            out[v] = coverage(parts, k)
    return out


def model_arrays(oof: dict, variant: str) -> dict | None:
    """The summed arrays a MODEL stores for `variant` (None when its trials shipped none)."""
    parts = [a for (_, name), a in sorted(oof.items(), key=lambda kv: kv[0][0]) if name == variant]
    return combine(parts) if parts else None


def model_reliability(oof: dict, column: str, data=None, cv=None) -> dict:
    """`raviso.models.saved.fit_model`'s ``reliability`` and ``tissue_free_reliability``: the
    summed arrays of the CV column `column` and of its ``tissue=False`` twin (None if not run);
    with `data` (the labelled set) and `cv` ((per-sample errors, fold plan)) also ``domain``
    (`raviso.trust.domain.model_domain`)."""
    from .domain import model_domain

    free = tissue_free_column(column, {name for _, name in oof})
    out = {"reliability": model_arrays(oof, column),
           "tissue_free_reliability": model_arrays(oof, free) if free else None}
    if data is not None and cv is not None:
        errors, folds = cv
        out["domain"] = model_domain(data.genes, getattr(folds, "assignments", folds.fold),
                                     errors, column)
    return out


def tissue_free_column(column: str, names) -> str | None:
    """The CV column that is `column` with ``tissue=False`` (``share_net[tissue=False]``), if
    it ran: its arrays describe the MODEL's tissue-free regressor."""
    from ..models.spec import parse_spec

    _, base, own = parse_spec(column)
    want = {**own, "tissue": False}
    for name in sorted(names):
        _, b, o = parse_spec(name)
        if b == base and o == want and "@" not in name:
            return name
    return None


def save_trial(path, arrays: dict) -> None:
    """A trial's arrays beside its per-sample errors in its Tune checkpoint. The |residual|
    counts go sparse (a trial's n rows fill at most n of an isoform's bins): at 200k isoforms
    and 5 rows, 6 MB written in milliseconds instead of a dense 54 MB compressed for seconds."""
    arrays = dict(arrays)
    hist = np.asarray(arrays.pop("hist"))
    at = np.flatnonzero(hist)
    arrays.update(hist_at=at.astype(np.uint32 if hist.size < 2 ** 32 else np.uint64),
                  hist_count=hist.ravel()[at], hist_shape=np.array(hist.shape, np.int64))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(path) -> dict:
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    if "hist_at" in out:                     # `save_trial`'s sparse counts, made dense again
        count = out.pop("hist_count")
        hist = np.zeros(tuple(out.pop("hist_shape")), count.dtype)
        hist.ravel()[out.pop("hist_at")] = count
        out["hist"] = hist
    return out


def load_trial(checkpoint_dir) -> dict | None:
    """The arrays `save_trial` left in a checkpoint directory (None: a trial without them)."""
    path = os.path.join(checkpoint_dir, OOF_FILE)
    return load_arrays(path) if os.path.exists(path) else None
