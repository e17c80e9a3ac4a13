"""The labelled set in memory: what every CV variant, baseline and statistic works on.

One object with aligned rows (samples) so no stage can pair a gene row with another sample's
isoform row. Gene columns are in the store's canonical gene order; `isoform_gene[j]` is the column
of isoform j's gene in `genes` (-1 when that gene is not among the measured genes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .reader import Store
from ..core.config import TARGET_DTYPE
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
    # synthetic data only: per-sample MSE of the held-out-donor expectation (`truth_heldout`)
    # against the observed isoforms, i.e. each sample's share of the held-out-donor floor
    floor_heldout: np.ndarray | None = None
    # where genes/isoforms/truth are memory-mapped from (`raviso.data.mapped`), or None
    mapped: object | None = None
    # name -> a loader of the pretrained RUN behind that latent (what a fine-tuned context reads)
    encoders: dict = field(default_factory=dict)

    def __getstate__(self):
        """Mapped matrices pickle as the cache's address (kilobytes, not gigabytes): every
        process that unpickles maps the same files (`raviso.data.mapped`)."""
        state = dict(self.__dict__)
        if self.mapped is not None:
            state.update(genes=None, isoforms=None, truth=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.mapped is not None and self.genes is None:
            arrays = self.mapped.open()
            self.genes, self.isoforms = arrays["gtex_gene"], arrays["gtex_isoform"]
            self.truth = arrays["truth"]

    @property
    def n(self) -> int:
        return len(self.sample_id)

    @classmethod
    def from_store(cls, store: Store, mapped: bool = False,
                   target_dtype: str = TARGET_DTYPE) -> "Labelled":
        """Read the labelled set; with `mapped` the matrices are read-only memory maps of a
        per-machine cache (`raviso.data.mapped`; `target_dtype` auto | float32 | float16 for the
        isoforms and truth) instead of private in-memory copies."""
        store.require("gtex_gene")
        store.require("gtex_isoform")
        meta = store.meta("gtex_gene")
        iso_ids = store.meta("gtex_isoform").sample_id.to_numpy()
        if not np.array_equal(meta.sample_id.to_numpy(), iso_ids):
            raise RavisoError("gtex_gene and gtex_isoform rows are not the same samples", store.uri)
        donor = meta.donor.to_numpy()
        donor = None if all(d is None for d in donor) else np.asarray(
            ["" if d is None else d for d in donor])
        source, arrays = None, None
        if mapped:
            from .mapped import open_mapped

            source, arrays = open_mapped(store, target_dtype)
        index = {g: j for j, g in enumerate(store.genes)}
        iso_gene = np.array([index.get(g, -1) for g in (store.isoform_gene or [])], np.int64)
        out = cls(
            sample_id=meta.sample_id.to_numpy().astype(str),
            tissue=np.asarray(["" if t is None else t for t in meta.tissue.to_numpy()]),
            donor=donor,
            genes=arrays["gtex_gene"] if mapped else store.numpy("gtex_gene"),
            isoforms=arrays["gtex_isoform"] if mapped else store.numpy("gtex_isoform"),
            gene_names=list(store.genes),
            isoform_names=list(store.isoforms),
            isoform_gene=iso_gene,
            truth=(arrays["truth"] if mapped else
                   store.numpy("truth") if store.has("truth") else None),
            mapped=source,
        )
        if store.has("truth_heldout"):
            out.floor_heldout = heldout_floor(store, out)
        return out

    def add_latent(self, name: str, sample_id, Z: np.ndarray) -> None:
        """Attach encoded features, re-ordered by sample_id to this object's rows."""
        pos = {s: k for k, s in enumerate(np.asarray(sample_id).astype(str))}
        missing = [s for s in self.sample_id if s not in pos]
        if missing:
            raise RavisoError(f"latent {name!r} lacks {len(missing)} labelled samples "
                              f"(e.g. {missing[0]}); re-run `raviso encode`")
        self.latent[name] = np.ascontiguousarray(Z[[pos[s] for s in self.sample_id]],
                                                 dtype=np.float32)


def heldout_floor(store: Store, data: Labelled) -> np.ndarray:
    """(n,) float64: per-sample MSE of the store's ``truth_heldout`` against ``data.isoforms``,
    read one Arrow batch at a time (never a second isoform-sized matrix in memory)."""
    from ..core.metrics import per_sample_mse

    out = np.empty(data.n, np.float64)
    row = 0
    for block, ids, _, _ in store.batches("truth_heldout"):
        if list(data.sample_id[row:row + len(block)]) != list(ids):
            raise RavisoError("truth_heldout rows are not the labelled samples in order",
                              store.uri)
        out[row:row + len(block)] = per_sample_mse(block, data.isoforms[row:row + len(block)])
        row += len(block)
    return out
