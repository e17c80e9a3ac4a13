"""The held-out-donor expectation: the generator's best prediction of a sample's OBSERVED isoforms
when its donor is unseen. `raviso synth` writes it as ``truth_heldout_*`` beside the truth.

Why: in donor-grouped cross-validation no model has seen the validation donor, so the per-donor
isoform-share effect (``donor_q @ iso_donor`` in `raviso.synth.world.gtex_block`) is unknowable;
the noise-free truth contains it, so MSE(observed, truth) (the measurement floor) is not the limit
a model can reach. This module computes, for every sample and isoform,

    E[ observed | tissue, programs/hidden state h, true gene TPM, depth ;  donor_q ~ N(0, I) fresh ]

i.e. an oracle that knows everything about the sample EXCEPT its donor's share effect and the
measurement noise. The donor's share of the programs (``donor_z``) acts through the genes, so it is
visible in the sample's own gene expression and the oracle keeps it. MSE(observed, this) is the
held-out-donor floor: a lower bound for any predictor of held-out donors (in expectation), since
models see less (noisy genes instead of the true state).

How, with no random draws (so the observed data of a seed are unchanged):
- over the fresh donor effect q ~ N(0, I_4): the degree-3 spherical cubature rule (2d = 8 points
  +-sqrt(d) e_i, equal weights), exact for polynomials of degree 3 in q. Its error in the
  expectation is ~1e-3 and enters the floor squared (the floor is a minimum of a quadratic);
  against a product Gauss-Hermite rule (81 points) the tiny-preset floor agrees to 1e-5.
- over the measurement (`raviso.synth.world.measure`: log-normal noise with level-dependent sd,
  Poisson-like dropout P(detected) = 1 - exp(-lam), rounding to 0.01 TPM):
  E[obs | tpm, depth] = (1 - e^-lam) E_Z[log2(round(tpm 2^(sd Z), 2) + 1)], tabulated once per
  world on a (log2 TPM, log2 depth) grid (Z integrated on a 401-point grid, rounding included) and
  interpolated linearly (table error < 1e-3 per entry).
The floor computed this way agrees with a brute-force Monte-Carlo over fresh donors and fresh
measurement noise (tests/test_floors.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG2_TPM_RANGE = (-24.0, 22.0)   # 2^-24 TPM is never detected; 2^22 is above any TPM
LOG2_TPM_STEP = 1 / 16
LOG2_DEPTH_STEP = 1 / 8
Z_NODES = 401                    # measurement-noise integration grid over [-6, 6] sd


def cubature_points(d: int) -> np.ndarray:
    """(2d, d) points of the degree-3 spherical rule for N(0, I_d); equal weights 1/(2d)."""
    eye = np.eye(d, dtype=np.float32) * np.float32(np.sqrt(d))
    return np.concatenate([eye, -eye])


@dataclass
class ObservedMean:
    """E[observed log2(TPM+1) | true TPM, sample depth] for one `Measurement`, as a table."""

    log2_depth: np.ndarray       # (V,) grid
    log2_tpm: np.ndarray         # (U,) grid
    table: np.ndarray            # (V, U) float64

    @classmethod
    def build(cls, m, depths: np.ndarray) -> "ObservedMean":
        """Tabulate for measurement `m` (a `raviso.synth.world.Measurement`) over the range of
        per-sample depth multipliers `depths`."""
        z = np.linspace(-6.0, 6.0, Z_NODES)
        wz = np.exp(-z ** 2 / 2)
        wz /= wz.sum()
        v = np.log2(np.asarray(depths, np.float64))
        vgrid = np.arange(np.floor(v.min() / LOG2_DEPTH_STEP) * LOG2_DEPTH_STEP,
                          v.max() + 1.5 * LOG2_DEPTH_STEP, LOG2_DEPTH_STEP)
        ugrid = np.arange(LOG2_TPM_RANGE[0], LOG2_TPM_RANGE[1] + LOG2_TPM_STEP / 2,
                          LOG2_TPM_STEP)
        tpm = 2.0 ** ugrid
        table = np.empty((len(vgrid), len(ugrid)))
        for a, vv in enumerate(vgrid):
            lam = tpm * m.depth * 2.0 ** vv
            sd = m.sd_floor + m.sd_low / np.sqrt(lam + 1)
            x = tpm[:, None] * np.exp2(sd[:, None] * z[None, :])
            if m.round_tpm:
                x = np.round(x, 2)
            table[a] = -np.expm1(-lam) * (np.log2(x + 1) @ wz)
        table[:, 0] = 0.0            # at and below the grid's bottom: never detected
        return cls(vgrid, ugrid, table)

    def rows(self, depth: np.ndarray) -> np.ndarray:
        """(n, U) float32: the table interpolated to each sample's depth (done once per block)."""
        v = self.log2_depth
        j = np.clip((np.log2(np.asarray(depth, np.float64)) - v[0]) / (v[1] - v[0]),
                    0, len(v) - 1 - 1e-9)
        j0 = j.astype(np.int64)
        f = (j - j0)[:, None]
        return np.ascontiguousarray((1 - f) * self.table[j0] + f * self.table[j0 + 1],
                                    dtype=np.float32)

    def __call__(self, tpm: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """E[observed] of a (n, I) true-TPM block; `rows` from `rows(depth)` of its samples."""
        u0, du = self.log2_tpm[0], self.log2_tpm[1] - self.log2_tpm[0]
        width = rows.shape[1]
        x = np.log2(np.maximum(tpm, np.float32(2.0 ** u0)))
        x -= np.float32(u0)
        x *= np.float32(1 / du)
        np.clip(x, 0, width - 1.001, out=x)
        i0 = x.astype(np.int64)
        x -= i0
        i0 += (np.arange(tpm.shape[0]) * width)[:, None]
        flat = rows.ravel()
        lo = flat[i0]
        out = flat[i0 + 1]
        out -= lo
        out *= x
        out += lo
        out[tpm <= 0] = 0.0
        return out


class HeldoutDonor:
    """E[observed GTEx isoforms | the sample's own state, a fresh donor] for blocks of one world;
    `raviso.synth.world.gtex_block(..., heldout=HeldoutDonor(world))` calls it."""

    def __init__(self, world):
        from .world import GTEX_ISOFORM

        self.world = world
        self.obs_mean = ObservedMean.build(GTEX_ISOFORM, world.gtex_depth)
        self.points = cubature_points(world.iso_donor.shape[0])

    def __call__(self, logits: np.ndarray, tissue: np.ndarray, iso_tpm_scale: np.ndarray,
                 depth: np.ndarray) -> np.ndarray:
        """(n, I) float32 in the world's INTERNAL isoform order. ``logits``: the share logits
        WITHOUT the donor term (not modified); ``iso_tpm_scale``: gene TPM x quantifier factor
        per isoform; ``tissue``, ``depth``: the block's samples."""
        from .world import segment_softmax

        w = self.world
        rows = self.obs_mean.rows(depth)
        acc = np.zeros(logits.shape, np.float32)
        for q in self.points:
            share = segment_softmax(logits + q @ w.iso_donor, w.iso_starts, w.iso_counts)
            share *= w.iso_on[tissue]
            share *= iso_tpm_scale
            acc += self.obs_mean(share, rows)
        acc /= len(self.points)
        return acc
