"""The labelled set in memory: what every CV variant, baseline and statistic works on.

One object with aligned rows (samples) so no stage can pair a gene row with another sample's
isoform row. Gene columns are in the store's canonical gene order; `isoform_gene[j]` is the column
of isoform j's gene in `genes` (-1 when that gene is not among the measured genes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .reader import Store
from ..core.errors import RavisoError


@dataclass
class Labelled:
    sample_id: np.ndarray            # (n,) str
    tissue: np.ndarray               # (n,) str ("" when unknown)
    donor: np.ndarray | None         # (n,) str, or None when no donors are known
    genes: np.ndarray                # (n, g) float32, log2(TPM+1)
    isoforms: np.ndarray             # (n, i) float32, log2(TPM+1)
    gene_names: list[str]
    isoform_names: list[str]
    isoform_gene: np.ndarray         # (i,) int64 index into gene_names, -1 if absent
    latent: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (n, z), same rows
    truth: np.ndarray | None = None  # (n, i) noise-free isoforms (synthetic data only)

    @property
    def n(self) -> int:
        return len(self.sample_id)

    @classmethod
    def from_store(cls, store: Store) -> "Labelled":
        store.require("gtex_gene")
        store.require("gtex_isoform")
        meta = store.meta("gtex_gene")
        iso_ids = store.meta("gtex_isoform").sample_id.to_numpy()
        if not np.array_equal(meta.sample_id.to_numpy(), iso_ids):
            raise RavisoError("gtex_gene and gtex_isoform rows are not the same samples", store.uri)
        donor = meta.donor.to_numpy()
        donor = None if all(d is None for d in donor) else np.asarray(
            ["" if d is None else d for d in donor])
        index = {g: j for j, g in enumerate(store.genes)}
        iso_gene = np.array([index.get(g, -1) for g in (store.isoform_gene or [])], np.int64)
        return cls(
            sample_id=meta.sample_id.to_numpy().astype(str),
            tissue=np.asarray(["" if t is None else t for t in meta.tissue.to_numpy()]),
            donor=donor,
            genes=store.numpy("gtex_gene"),
            isoforms=store.numpy("gtex_isoform"),
            gene_names=list(store.genes),
            isoform_names=list(store.isoforms),
            isoform_gene=iso_gene,
            truth=store.numpy("truth") if store.has("truth") else None,
        )

    def add_latent(self, name: str, sample_id, Z: np.ndarray) -> None:
        """Attach encoded features, re-ordered by sample_id to this object's rows."""
        pos = {s: k for k, s in enumerate(np.asarray(sample_id).astype(str))}
        missing = [s for s in self.sample_id if s not in pos]
        if missing:
            raise RavisoError(f"latent {name!r} lacks {len(missing)} labelled samples "
                              f"(e.g. {missing[0]}); re-run `raviso encode`")
        self.latent[name] = np.ascontiguousarray(Z[[pos[s] for s in self.sample_id]],
                                                 dtype=np.float32)
