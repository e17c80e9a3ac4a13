"""The public ARCHS4 H5 (``data/expression`` integer counts, genes x samples): normalised to
log2(CPM+1), library size = the sample's total over all genes in the file; duplicated symbols are
summed as counts. (No gene lengths in the file, so no TPM: see `raviso.io.formats`.)"""

from __future__ import annotations

import numpy as np

from ..core.errors import RavisoError
from .source import Chunk, DuplicateSum, first_error_line, H5Source, log2p1_into, read_names, buffer_ring, take_slab
from .validate import check_names, check_values


class Archs4H5(H5Source):
    kind = "archs4-h5"

    def _init(self):
        f, path = self.f, self.path
        d = f["data/expression"]
        symbols = read_names(f, "meta/genes/symbol", path)
        ids = read_names(f, "meta/samples/geo_accession", path)
        if d.ndim != 2 or sorted(d.shape) != sorted((len(symbols), len(ids))):
            raise RavisoError(f"`data/expression` is {d.shape}, but there are {len(symbols)} genes "
                              f"and {len(ids)} samples", path)
        if d.dtype.kind not in "iuf":
            raise RavisoError(f"`data/expression` has dtype {d.dtype}, expected counts", path)
        self.genes_first = d.shape[0] == len(symbols) and not (
            d.shape[0] == len(ids) and d.shape[1] == len(symbols) and len(ids) != len(symbols))
        self.dset = d
        symbols = [s if s.strip() else f"<empty symbol {k}>" for k, s in enumerate(symbols)]
        self._dups = DuplicateSum(symbols)
        self.features = self._dups.names
        self.sample_ids = check_names(ids, path, "sample ids")
        self.zero_library: list[str] = []

    def chunks(self, rows, take=None, ring=1):
        n = len(self.sample_ids)
        logbufs = buffer_ring(ring, (min(rows, n), len(self.features)))
        outbufs = buffer_ring(ring if take is not None else 0, (min(rows, n), self._out_width(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            logbuf, outbuf = logbufs[k % ring], outbufs[k % ring] if outbufs else None
            try:
                slab = self.dset[:, s:e].T if self.genes_first else self.dset[s:e, :]
            except (OSError, RuntimeError) as err:
                raise RavisoError(f"cannot read samples {s + 1}-{e} (truncated or corrupt HDF5?): "
                                  f"{first_error_line(err)}", self.path) from None
            counts = np.asarray(slab, np.float64)
            check_values(counts, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         log_scale=False)
            lib = counts.sum(axis=1)
            zero = lib <= 0
            if zero.any():
                self.zero_library.extend(np.asarray(self.sample_ids[s:e])[zero].tolist())
            scale = np.where(zero, 0.0, 1e6 / np.where(zero, 1.0, lib))
            cpm = (self._dups.apply(counts) * scale[:, None]).astype(np.float32)
            X = log2p1_into(cpm, logbuf[:e - s])
            yield Chunk(take_slab(X, take, outbuf), self.sample_ids[s:e], s)

    def close(self):
        self.f.close()
