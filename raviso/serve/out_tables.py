"""The table writers behind `raviso.serve.outputs`: samples x isoforms with extra per-sample
matrices (interval bounds, TPM, fractions) beside the main one, and the features x samples
"merged" layout RNA-seq pipelines write.

- `H5adLayers`: an AnnData whose ``X`` and ``layers/<name>`` grow chunk by chunk, with numeric
  (not stringified) ``var`` columns; obs/var/uns encoded by anndata itself (`raviso.io.tables`).
- `ParquetLayers`: ``sample_id``, ``expr`` and one more ``arrow.fixed_shape_tensor`` column per
  extra matrix, the provenance JSON under the schema metadata key ``raviso``.
- `TsvLayers`: the main TSV plus one sibling TSV per extra matrix (``<stem>.<name>.tsv``).
- `MergedTable`: ``transcript_id<TAB>gene_id<TAB>sample...``, one line per isoform; samples arrive
  in row chunks, so they are spooled to an unnamed scratch file and transposed at the end.
"""

from __future__ import annotations

import json
import tempfile

import numpy as np

from ..io.tables import TSV_FORMAT, H5adTable, TsvTable


class H5adLayers(H5adTable):
    """`H5adTable` with ``layers`` grown like ``X`` and numeric var columns kept numeric."""

    def __init__(self, path, var_names, var_columns=None, uns=None, layers=()):
        super().__init__(path, var_names, None, uns)
        self.var_all = dict(var_columns or {})
        d = len(self.var_names)
        group = self.f.create_group("layers")
        group.attrs["encoding-type"] = "dict"
        group.attrs["encoding-version"] = "0.1.0"
        self.layers = {}
        for name in layers:
            ds = group.create_dataset(name, shape=(0, d), maxshape=(None, d), dtype="f4",
                                      chunks=self.X.chunks)
            ds.attrs["encoding-type"] = "array"
            ds.attrs["encoding-version"] = "0.2.0"
            self.layers[name] = ds

    def write(self, ids, X, obs=None, layers=None):
        n0 = self.X.shape[0]
        super().write(ids, X, obs)
        for name, ds in self.layers.items():
            ds.resize(n0 + len(ids), axis=0)
            ds[n0:] = np.asarray(layers[name], np.float32)

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self.aio.write_elem(self.f, "obs", frame(self.ids, self.obs))
                self.aio.write_elem(self.f, "var", frame(self.var_names, self.var_all))
                uns = {} if self.uns is None else {"raviso": json.dumps(self.uns)}
                self.aio.write_elem(self.f, "uns", uns)
                for name in ("obsm", "varm", "obsp", "varp"):
                    self.aio.write_elem(self.f, name, {})
        finally:
            self.f.close()
        return False


def frame(index, columns: dict):
    """A DataFrame for obs/var: numeric and boolean columns kept, text as categories when few
    distinct values repeat (as `raviso.io.tables` writes them)."""
    import pandas as pd

    df = pd.DataFrame(index=pd.Index([str(i) for i in index], dtype=object))
    for col, values in columns.items():
        arr = np.asarray(values)
        if arr.dtype.kind in "biuf":
            df[col] = arr
            continue
        vals = ["" if v is None else str(v) for v in values]
        df[col] = pd.Categorical(vals) if len(set(vals)) < max(2, len(vals) // 2) \
            else np.array(vals, dtype=object)
    return df


class ParquetLayers:
    """Row groups of (sample_id, expr, one tensor column per layer); metadata in the schema."""

    def __init__(self, path, var_names, var_columns=None, uns=None, layers=()):
        import pyarrow as pa

        from ..data.schema import expr_type

        self.path, self.layers = path, list(layers)
        t = expr_type(len(var_names))
        self.schema = pa.schema([("sample_id", pa.string()), ("expr", t)]
                                + [(name, t) for name in self.layers],
                                metadata={"raviso": json.dumps(uns)})
        self.writer = None

    def write(self, ids, X, obs=None, layers=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..data.schema import tensor_array

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        cols = [pa.array(ids, pa.string()), tensor_array(np.asarray(X, np.float32))]
        cols += [tensor_array(np.asarray(layers[n], np.float32)) for n in self.layers]
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.close()
        return False


class TsvLayers:
    """The main samples x isoforms TSV and one sibling TSV per layer (paths given)."""

    def __init__(self, path, var_names, var_columns=None, uns=None, layers=(), layer_paths=None):
        self.main = TsvTable(path, var_names)
        self.others = {name: TsvTable(layer_paths[name], var_names) for name in layers}

    def write(self, ids, X, obs=None, layers=None):
        self.main.write(ids, X)
        for name, t in self.others.items():
            t.write(ids, layers[name])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for t in [self.main, *self.others.values()]:
            t.__exit__(*exc)
        return False


class MergedTable:
    """Features x samples TSV (``transcript_id``, ``gene_id``, one column per sample)."""

    def __init__(self, path, isoforms, genes):
        self.path, self.isoforms, self.genes = path, list(isoforms), list(genes)
        self.spool = tempfile.TemporaryFile()
        self.ids: list[str] = []

    def write(self, ids, X):
        self.spool.write(np.ascontiguousarray(X, np.float32).tobytes())
        self.ids.extend(ids)

    def close(self, block_bytes: int = 64 << 20) -> None:
        n, m = len(self.ids), len(self.isoforms)
        self.spool.flush()
        X = np.memmap(self.spool, np.float32, "r", shape=(n, m)) if n else np.zeros((0, m))
        fmt = TSV_FORMAT.format
        step = max(1, block_bytes // (4 * max(1, n)))
        with open(self.path, "w") as f:
            f.write("transcript_id\tgene_id\t" + "\t".join(self.ids) + "\n")
            for j0 in range(0, m, step):
                block = np.asarray(X[:, j0:j0 + step]).T
                for j, row in enumerate(block, start=j0):
                    f.write(f"{self.isoforms[j]}\t{self.genes[j]}\t"
                            + "\t".join(map(fmt, row.tolist())) + "\n")
        self.spool.close()
