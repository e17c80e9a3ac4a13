"""Isoform fractions per gene, and how far a sample's measured fractions are from the predicted.

The distance of one gene in one sample is the total variation distance between its measured and
its predicted isoform fractions (half the summed absolute differences: 0 = the same split, 1 = no
overlap), defined for genes of two or more isoforms whose measured and predicted TPM are both
positive. A sample's distance is the mean over its defined genes.

`QcSums` accumulates, over the CV's held-out samples, the count, sum and sum of squares of both, so
`raviso predict --observed` (`raviso.serve.qc`) can turn a new sample's distances into z-scores
calibrated on held-out donors: per gene against that gene's out-of-fold distances, per sample
against the out-of-fold sample distances.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _mapped(g) -> bool:
    if g is None or (isinstance(g, str) and g == ""):
        return False
    return not (isinstance(g, (int, np.integer)) and g < 0)


class GeneShares:
    """Each isoform's share of its gene's TPM; genes keyed by their sorted labels (`names`)."""

    def __init__(self, isoform_gene):
        import scipy.sparse as sp

        labels = list(isoform_gene.tolist() if hasattr(isoform_gene, "tolist") else isoform_gene)
        self.mapped = np.array([_mapped(g) for g in labels], bool)
        keys = [str(g) if ok else "" for g, ok in zip(labels, self.mapped)]
        self.names, self.code = np.unique(keys, return_inverse=True)
        m = len(keys)
        self.A = sp.csr_matrix((np.ones(m), (np.arange(m), self.code)),
                               shape=(m, len(self.names)))
        sizes = np.bincount(self.code[self.mapped], minlength=len(self.names))
        self.multi = sizes >= 2                   # genes whose split can differ

    def totals(self, tpm: np.ndarray) -> np.ndarray:
        """(n, genes) summed TPM."""
        return np.asarray(self.A.T.dot(np.asarray(tpm, np.float64).T)).T

    def fraction(self, tpm: np.ndarray) -> np.ndarray:
        """(n, isoforms): share of the gene's TPM; NaN where the gene's TPM is 0 or no gene."""
        total = self.totals(tpm)[:, self.code]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(total > 0, tpm / total, np.nan)
        out[:, ~self.mapped] = np.nan
        return out

    def distance(self, pred_log2: np.ndarray, obs_log2: np.ndarray) -> np.ndarray:
        """(n, genes) total variation distance of the isoform fractions; NaN where undefined."""
        fp = self.fraction(np.maximum(np.exp2(np.asarray(pred_log2, np.float64)) - 1, 0))
        fo = self.fraction(np.maximum(np.exp2(np.asarray(obs_log2, np.float64)) - 1, 0))
        diff = np.abs(fo - fp)
        ok = ~np.isnan(diff)
        d = 0.5 * np.asarray(self.A.T.dot(np.where(ok, diff, 0).T)).T
        defined = np.asarray(self.A.T.dot(ok.T.astype(np.float64))).T > 0
        return np.where(defined & self.multi[None, :], d, np.nan)


def sample_distance(d: np.ndarray) -> np.ndarray:
    """(n,) mean over a sample's defined genes (NaN when none is)."""
    n = np.sum(~np.isnan(d), axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, np.nansum(d, axis=1) / np.maximum(n, 1), np.nan)


_SHARES: dict = {}     # this process's last gene map: a cv worker's trials all share one


def gene_shares(isoform_gene) -> GeneShares:
    """`GeneShares` of a numeric isoform -> gene map, built once per process (~1 s at 200k
    isoforms, read-only once built); any other map is built afresh."""
    if not (isinstance(isoform_gene, np.ndarray) and isoform_gene.dtype.kind in "iu"):
        return GeneShares(isoform_gene)
    key = (isoform_gene.shape, isoform_gene.dtype.str,
           hashlib.sha1(np.ascontiguousarray(isoform_gene).tobytes()).hexdigest())
    if key not in _SHARES:
        _SHARES.clear()
        _SHARES[key] = GeneShares(isoform_gene)
    return _SHARES[key]


class QcSums:
    """Count, sum and sum of squares of gene and sample distances over held-out samples."""

    def __init__(self, isoform_gene):
        self.shares = gene_shares(isoform_gene)
        self.gene = np.zeros((3, len(self.shares.names)))
        self.sample = np.zeros(3)

    def add(self, pred: np.ndarray, Y: np.ndarray, rows: int = 16) -> None:
        for s in range(0, len(Y), rows):             # bounded temporaries at full width
            self.add_rows(pred[s:s + rows], Y[s:s + rows])

    def add_rows(self, pred: np.ndarray, Y: np.ndarray) -> None:
        d = self.shares.distance(pred, Y)
        ok = ~np.isnan(d)
        self.gene += np.stack([ok.sum(0), np.where(ok, d, 0).sum(0),
                               np.where(ok, d * d, 0).sum(0)])
        s = sample_distance(d)
        s = s[~np.isnan(s)]
        self.sample += [len(s), s.sum(), (s * s).sum()]

    def result(self) -> dict:
        return {"qc_gene": self.gene, "qc_sample": self.sample}


def mean_sd(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) from stacked (count, sum, sum of squares); NaN below two values."""
    n, s, ss = (np.asarray(x, np.float64) for x in sums)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s / n, np.nan)
        var = np.where(n > 1, (ss - n * mean * mean) / (n - 1), np.nan)
    return mean, np.sqrt(np.maximum(var, 0))
