"""AnnData (.h5ad) input, read through anndata's own element readers in row slabs: `H5adSource` (a
`MatrixSource` of log2(TPM+1) for convert and predict) and `H5adMatrix` (transcript TPM or counts for
`raviso import --matrix`). Layout: docs/formats.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import RavisoError
from .source import Chunk, first_error_line, H5Source, take_columns_into
from .tables import anndata_io
from .validate import check_names, check_values

GENE_COLUMNS = ("gene_id", "gene_ids", "gene")


def is_h5ad(f) -> bool:
    """An open h5py File holds an AnnData (by its encoding attribute, or by its groups)."""
    enc = f.attrs.get("encoding-type")
    enc = enc.decode() if isinstance(enc, bytes) else enc
    return enc == "anndata" or {"X", "obs", "var"} <= set(f.keys())


class _X:
    """Row slabs of a dense or sparse X as dense float arrays."""

    def __init__(self, f, path, n_obs, n_var):
        import h5py

        node = f["X"]
        if isinstance(node, h5py.Group):
            enc = node.attrs.get("encoding-type")
            enc = enc.decode() if isinstance(enc, bytes) else enc
            if enc not in ("csr_matrix", "csc_matrix"):
                raise RavisoError(f"X is an HDF5 group of encoding {enc!r}, expected a dense array "
                                  "or csr_matrix / csc_matrix", path)
            self.data = anndata_io().sparse_dataset(node)
            self.sparse = True
            shape, kind = tuple(self.data.shape), self.data.dtype.kind
        else:
            self.data, self.sparse = node, False
            shape, kind = tuple(node.shape), node.dtype.kind
        if shape != (n_obs, n_var):
            raise RavisoError(f"X is {shape[0]} x {shape[1]} but obs has {n_obs} and var "
                              f"{n_var} names", path)
        if kind not in "iuf":
            raise RavisoError(f"X has a non-numeric dtype ({kind})", path)
        self.path = path

    def columns(self, c0: int, c1: int) -> np.ndarray:
        """All samples, features c0:c1, as dense float64."""
        try:
            block = self.data[:, c0:c1] if not self.sparse else self.data[:][:, c0:c1]
        except (OSError, RuntimeError, ValueError) as err:
            raise RavisoError(f"cannot read X (truncated or corrupt?): {first_error_line(err)}",
                              self.path) from None
        block = block.toarray() if self.sparse else block
        return np.asarray(block, np.float64)

    def rows(self, s: int, e: int, dtype=np.float32) -> np.ndarray:
        try:
            block = self.data[s:e]
        except (OSError, RuntimeError, ValueError) as err:
            raise RavisoError(f"cannot read X rows {s + 1}-{e} (truncated or corrupt?): "
                              f"{first_error_line(err)}", self.path) from None
        block = block.toarray() if self.sparse else block
        return np.asarray(block, dtype)


def _frame(f, key, path):
    if key not in f:
        raise RavisoError(f"AnnData file has no `{key}`", path)
    try:
        return anndata_io().read_elem(f[key])
    except UnicodeDecodeError as e:
        raise RavisoError(f"`{key}` holds names that are not UTF-8 ({first_error_line(e)})", path) from None
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise RavisoError(f"cannot read `{key}` (not an AnnData written by anndata?): "
                          f"{first_error_line(e)}", path) from None


def _column(df, names):
    for c in names:
        if c in df.columns:
            return [None if v is None or v != v else str(v) for v in df[c].tolist()]
    return None


def gene_column(var, gene_col, path):
    """The var column with each transcript's gene: `gene_col` if named, else a usual name."""
    if gene_col is not None:
        if gene_col not in var.columns:
            raise RavisoError(f"--gene-col {gene_col!r} is not a var column (var has "
                              f"{', '.join(map(str, var.columns)) or 'no columns'})", path)
        return _column(var, [gene_col])
    return _column(var, GENE_COLUMNS)


class H5adSource(H5Source):
    """An AnnData file as a `MatrixSource`: obs = samples, var = features, X on log2 scale."""

    kind = "h5ad"
    reuses_buffers = False

    def _init(self):
        f, path = self.f, self.path
        obs, var = _frame(f, "obs", path), _frame(f, "var", path)
        self.sample_ids = check_names(list(obs.index), path, "sample ids (obs_names)")
        self.features = check_names(list(var.index), path, "feature names (var_names)")
        self.x = _X(f, path, len(self.sample_ids), len(self.features))
        self.tissue = _column(obs, ("tissue",))
        self.donor = _column(obs, ("donor",))
        self.feature_gene = gene_column(var, None, path)
        if self.feature_gene is not None:
            self.role = "isoform"

    def chunks(self, rows, take=None, ring=1):
        n = len(self.sample_ids)
        for s in range(0, n, rows):
            e = min(n, s + rows)
            X = self.x.rows(s, e)
            check_values(X, self.path, row0=s, sample_ids=self.sample_ids[s:e],
                         features=self.features)
            if take is not None:
                X = take_columns_into(X, take, np.empty((e - s, len(take)), np.float32))
            yield Chunk(X, self.sample_ids[s:e], s)


class H5adMatrix:
    """An AnnData file of transcript TPM or counts for `raviso import --matrix`: the interface
    of `quant.Matrix` (samples, read_ids, iter_values)."""

    def __init__(self, path, id_col=None, gene_col=None):
        import h5py

        self.path = Path(path)
        if id_col is not None:
            raise RavisoError("--tx-col does not apply to .h5ad (var_names are the transcript "
                              "ids)", self.path)
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise RavisoError(f"cannot open HDF5 (truncated or corrupt?): {first_error_line(e)}",
                              self.path) from None
        obs, var = _frame(self.f, "obs", self.path), _frame(self.f, "var", self.path)
        self.samples = check_names(list(obs.index), self.path, "sample ids (obs_names)")
        self.ids = check_names(list(var.index), self.path, "transcript ids (var_names)")
        self.gene = gene_column(var, gene_col, self.path)
        self.x = _X(self.f, self.path, len(self.samples), len(self.ids))

    def read_ids(self):
        gene = None if self.gene is None else np.array(["" if g is None else g
                                                        for g in self.gene], dtype=str)
        return np.array(self.ids, dtype=str), gene

    def iter_values(self, samples, block_bytes: int = 1 << 29):
        """(transcripts_chunk, len(samples)) float64 blocks in var order, as `quant.Matrix`
        yields them. Dense X is read a column block at a time; sparse X (stored by sample rows)
        is read whole when it fits in `block_bytes` as dense float64, else once per column block
        (slow for huge sparse files; a GCT streams better)."""
        pos = {s: k for k, s in enumerate(self.samples)}
        rows = np.array([pos[s] for s in samples], np.int64)
        n_tx = len(self.ids)
        step = max(1, block_bytes // (8 * max(1, len(self.samples))))
        for c0 in range(0, n_tx, step):
            c1 = min(n_tx, c0 + step)
            block = self.x.columns(c0, c1)[rows].T
            bad = ~np.isfinite(block) | (block < 0)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise RavisoError(f"sample {samples[c]} holds {float(block[r, c])} for "
                                  f"{self.ids[c0 + r]} (expected a finite non-negative number)",
                                  self.path)
            yield block

    def close(self):
        self.f.close()
