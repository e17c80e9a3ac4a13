"""GTEx portal GCT (``#1.2``): features x samples TPM, NOT logged. Transposed on the way in (in RAM
up to `GCT_MEMORY_BYTES`, else through an unnamed scratch file next to the store) and streamed as
log2(TPM+1) sample rows; gene symbols that occur more than once are summed in TPM space."""

from __future__ import annotations

import numpy as np

from ..core.atomic import scratch_array
from ..core.errors import RavisoError
from .source import Chunk, DuplicateSum, MatrixSource, log2p1_into, buffer_ring, take_slab
from .text import CSV_BLOCK_BYTES, batch_to_matrix, csv_batches, header_lines
from .validate import check_names, check_values


# GCT transposes bigger than this go through a temporary file instead of RAM.
GCT_MEMORY_BYTES = 2 << 30


class GCT(MatrixSource):
    """GCT 1.2, features x samples TPM. The transpose is built once (in RAM, or in a temporary
    file under `tmpdir` when larger than GCT_MEMORY_BYTES) and then streamed as sample rows."""

    kind = "gct"
    reuses_buffers = True

    def __init__(self, path, tmpdir=None):
        super().__init__(path)
        lines = header_lines(self.path, 3)
        if len(lines) < 3 or lines[0].split("\t")[0].strip() != "#1.2":
            raise RavisoError("GCT header incomplete (expected `#1.2`, `rows cols`, column names)",
                              self.path)
        try:
            self.n_features, n_samples = (int(v) for v in lines[1].split("\t")[:2])
        except ValueError:
            raise RavisoError(f"GCT line 2 should be `rows<TAB>cols`, got {lines[1][:60]!r}",
                              self.path) from None
        header = lines[2].split("\t")
        if len(header) != n_samples + 2:
            raise RavisoError(f"GCT header names {len(header) - 2} samples, line 2 says "
                              f"{n_samples}", self.path)
        self.sample_ids = check_names(header[2:], self.path, "sample ids")
        first = header[0].strip().lower()
        self.role = "isoform" if first in ("transcript_id", "transcript") else "gene"
        self.tmpdir = tmpdir
        self._T = None
        self._load()

    def _load(self):
        """Read the body (features x samples) into the transposed buffer T (samples x features)."""
        n_s, n_f = len(self.sample_ids), self.n_features
        if n_f == 0:
            raise RavisoError("GCT has 0 feature rows", self.path)
        nbytes = 4 * n_s * n_f
        if nbytes > GCT_MEMORY_BYTES:
            T = scratch_array((n_s, n_f), np.float32, dir=self.tmpdir)   # no name to leak
        else:
            T = np.empty((n_s, n_f), np.float32)
        names, genes, f0 = [], [], 0
        block = max(CSV_BLOCK_BYTES, 64 * n_s)
        for batch in csv_batches(self.path, 3, n_s + 2, 2, block):
            b = batch.num_rows
            if f0 + b > n_f:
                raise RavisoError(f"GCT has more than the {n_f} feature rows line 2 declares",
                                  self.path)
            names.extend(batch.column(0).to_pylist())
            genes.extend(batch.column(1).to_pylist())
            T[:, f0:f0 + b] = batch_to_matrix(batch, 2).T
            f0 += b
        if f0 != n_f:
            raise RavisoError(f"GCT has {f0} feature rows, line 2 declares {n_f} (truncated?)",
                              self.path)
        if self.role == "isoform":
            self.features = check_names(names, self.path, "transcript ids")
            self.feature_gene = [str(g) for g in genes]
            self._dups = DuplicateSum(self.features)
        else:
            # gene GCT: Name = Ensembl id, Description = symbol (what course matrices use)
            symbols = [str(s) if str(s).strip() else str(n) for n, s in zip(names, genes)]
            self.gene_symbols = dict(zip(map(str, names), symbols))   # Ensembl id -> symbol
            self._dups = DuplicateSum(symbols)
            self.features = self._dups.names
        self._T = T

    def chunks(self, rows, take=None, ring=1):
        T = self._T
        n = T.shape[0]
        logbufs = buffer_ring(ring, (min(rows, n), len(self.features)))
        outbufs = buffer_ring(ring if take is not None else 0, (min(rows, n), self._out_width(take)))
        for k, s in enumerate(range(0, n, rows)):
            e = min(n, s + rows)
            logbuf, outbuf = logbufs[k % ring], outbufs[k % ring] if outbufs else None
            raw = np.asarray(T[s:e])
            check_values(raw, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         features=self.features if self._dups.identity else None,
                         log_scale=False)
            X = log2p1_into(self._dups.apply(raw), logbuf[:e - s])
            yield Chunk(take_slab(X, take, outbuf), self.sample_ids[s:e], s)

    def close(self):
        self._T = None
        tmp = getattr(self, "_tmpfile", None)
        if tmp is not None:
            tmp.close()
