"""`raviso predict --observed ISOFORMS`: per-sample QC of measured isoform fractions.

When isoforms were measured too, each sample's measured isoform fractions are compared with the
predicted ones, gene by gene (`raviso.trust.splice_qc`: total variation distance), and turned
into z-scores against the same distances on the CV's held-out donors (stored in the MODEL): per
gene, against that gene's out-of-fold distances; per sample, its mean distance against the
out-of-fold sample means. A sample with ``qc_z > QC_Z`` is flagged ``qc_aberrant``: its splicing
(or its quantification) is unlike anything held-out donors showed.

ISOFORMS: a transcript table as `predict` reads gene tables (either orientation, TPM or
log2(TPM+1), ids with or without versions), read whole; samples are matched by id, and a predicted
sample absent from it gets NaN scores.
"""

from __future__ import annotations


import numpy as np

from ..core.errors import RavisoError
from ..trust.splice_qc import GeneShares, mean_sd, sample_distance
from ..io.gene_table import orient, read_gene_table

QC_Z = 3.0


class ObservedQC:
    """Scores predicted chunks against the measured isoforms of the same samples."""

    def __init__(self, m, path, arrays: dict | None):
        if arrays is None or "qc_gene" not in arrays:
            raise RavisoError("--observed needs a MODEL whose CV recorded isoform-fraction "
                              "distances: refit it with `raviso fit --cv-folds 5` or `raviso cv "
                              "--save-model`", m.dir)
        o = orient(read_gene_table(path), m.isoforms, source=path)
        self.Y, self.rows = o.X, {s: i for i, s in enumerate(o.sample_ids)}
        self.shares = GeneShares(m.isoform_gene)
        self.gmean, self.gsd = mean_sd(arrays["qc_gene"])
        smean, ssd = mean_sd(arrays["qc_sample"])
        self.smean, self.ssd = float(smean), float(ssd)
        self.genes = np.flatnonzero(self.shares.multi)
        self.gene_names = [m.genes[int(self.shares.names[j])] for j in self.genes]
        self.n_missing = len(o.missing)

    def score(self, ids, P: np.ndarray) -> tuple[dict, np.ndarray]:
        """(per-sample obs columns, (n, multi-isoform genes) z-scores) for one chunk."""
        idx = np.array([self.rows.get(s, -1) for s in ids])
        Y = np.full(P.shape, np.nan, np.float32)
        Y[idx >= 0] = self.Y[idx[idx >= 0]]
        d = self.shares.distance(P, Y)
        with np.errstate(divide="ignore", invalid="ignore"):
            gz = ((d - self.gmean) / np.where(self.gsd > 0, self.gsd, np.nan))[:, self.genes]
            dist = sample_distance(d)
            z = (dist - self.smean) / self.ssd if self.ssd > 0 else np.full(len(ids), np.nan)
        return {"qc_distance": dist.tolist(), "qc_z": z.tolist(),
                "qc_aberrant": [bool(v > QC_Z) for v in z],
                "qc_genes": np.sum(~np.isnan(d), axis=1).tolist()}, gz
