"""Samples x features tables written chunk by chunk (TSV and AnnData .h5ad), for `raviso predict` and
`raviso export`, whose outputs can be far larger than memory. File layouts: docs/output.md."""

from __future__ import annotations

import json

import numpy as np

from ..core.errors import RavisoError

TSV_FORMAT = "{:.7g}"


class TsvTable:
    """Header ``sample_id<TAB>feature...``, then one line per sample."""

    def __init__(self, path, var_names, var_columns=None, uns=None):
        self.f = open(path, "w")
        self.f.write("sample_id\t" + "\t".join(var_names) + "\n")
        self.fmt = TSV_FORMAT.format

    def write(self, ids, X, obs=None):
        for sid, row in zip(ids, np.asarray(X)):
            self.f.write(sid + "\t" + "\t".join(map(self.fmt, row.tolist())) + "\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False


def anndata_io():
    """`anndata.io` (anndata >= 0.11), or the older `anndata.experimental` home of write_elem."""
    try:
        import anndata.io as aio

        if hasattr(aio, "write_elem"):
            return aio
    except ImportError:
        pass
    try:
        import anndata.experimental as aio
    except ImportError:
        raise RavisoError("reading or writing .h5ad needs the anndata package "
                          "(pip install anndata)") from None
    return aio


class H5adTable:
    """An AnnData file whose ``X`` grows chunk by chunk; obs/var/uns written by anndata."""

    def __init__(self, path, var_names, var_columns=None, uns=None):
        import h5py

        self.aio = anndata_io()
        self.var_names = list(var_names)
        self.var_columns = dict(var_columns or {})
        self.uns = uns
        self.f = h5py.File(path, "w")
        self.f.attrs["encoding-type"] = "anndata"
        self.f.attrs["encoding-version"] = "0.1.0"
        d = len(self.var_names)
        rows = max(1, min(1024, (1 << 20) // max(1, d)))
        self.X = self.f.create_dataset("X", shape=(0, d), maxshape=(None, d), dtype="f4",
                                       chunks=(rows, max(1, d)))
        self.X.attrs["encoding-type"] = "array"
        self.X.attrs["encoding-version"] = "0.2.0"
        self.ids: list[str] = []
        self.obs: dict[str, list] = {}

    def write(self, ids, X, obs=None):
        n0 = self.X.shape[0]
        self.X.resize(n0 + len(ids), axis=0)
        self.X[n0:] = np.asarray(X, np.float32)
        self.ids.extend(ids)
        for col, values in (obs or {}).items():
            if values is not None:
                self.obs.setdefault(col, [None] * n0).extend(values)

    def _frames(self):
        import pandas as pd

        def frame(index, columns):
            df = pd.DataFrame(index=pd.Index([str(i) for i in index], dtype=object))
            for col, values in columns.items():
                vals = ["" if v is None else str(v) for v in values]
                df[col] = pd.Categorical(vals) if len(set(vals)) < max(2, len(vals) // 2) \
                    else np.array(vals, dtype=object)
            return df

        obs = {c: v + [None] * (len(self.ids) - len(v)) for c, v in self.obs.items()}
        return frame(self.ids, obs), frame(self.var_names, self.var_columns)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                obs, var = self._frames()
                self.aio.write_elem(self.f, "obs", obs)
                self.aio.write_elem(self.f, "var", var)
                uns = {} if self.uns is None else {"raviso": json.dumps(self.uns)}
                self.aio.write_elem(self.f, "uns", uns)
                for name in ("obsm", "varm", "obsp", "varp", "layers"):
                    self.aio.write_elem(self.f, name, {})
        finally:
            self.f.close()
        return False


TABLES = {"tsv": TsvTable, "h5ad": H5adTable}
