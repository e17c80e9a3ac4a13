"""`raviso predict MODEL INPUT --out OUT`: isoform expression, log2(TPM+1), for new samples.

INPUT is gene expression in any format raviso reads: a store (its ``gtex_gene`` or ``archs4``
dataset, or ``--dataset``) or a file `raviso.io.formats.open_matrix` detects (course HDF5/TSV, GTEx
GCT, ARCHS4 H5, AnnData .h5ad with dense or sparse X). Its columns are aligned to the model's genes BY NAME (`raviso.io.align.column_index`);
genes the input lacks are an error naming them, unless ``allow_missing`` fills them with 0 — the
count and names go to stderr and into the output's metadata, because a prediction from partly
invented input should say so.

Input is read, predicted and written in chunks of `CHUNK_ROWS` samples, so neither the input nor
the predictions (ARCHS4 x 156,958 isoforms would be ~100 GB) need to fit in memory.

Outputs (written atomically, format from ``--format`` or OUT's suffix):
- Parquet: columns ``sample_id`` and ``expr`` (one ``arrow.fixed_shape_tensor`` float32 column,
  like a store); the schema metadata key ``raviso`` holds JSON with ``isoforms`` (column names of
  ``expr``), ``units``, the model, and ``missing_genes``.
- TSV and h5ad through `raviso.io.tables`: TSV ``sample_id<TAB>isoform...``; a real AnnData
  (obs = samples with ``tissue``, var = isoforms with ``gene_id``, ``uns["raviso"]`` the same JSON
  as the Parquet metadata), X appended chunk by chunk, obs/var/uns encoded by anndata itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..io.align import column_index, take_columns
from ..io.tables import TABLES
from ..core.atomic import atomic_file, check_writable_target
from ..core.errors import RavisoError
from ..models.saved import REGRESSOR_DIR, read_model

FORMATS = ("parquet", "tsv", "h5ad")
CHUNK_ROWS = 2048


class LoadedModel:
    """A MODEL directory in memory: its metadata, encoders and regressor."""

    def __init__(self, model_dir):
        from ..models.saved import load_predictor
        from ..train.runs import load_run

        self.dir = Path(model_dir)
        self.meta = read_model(self.dir)
        self.genes: list[str] = self.meta["genes"]
        self.isoforms: list[str] = self.meta["isoforms"]
        self.encoders = {name: load_run(self.dir / sub)
                         for name, sub in self.meta["encoders"].items()}
        self.regressor = load_predictor(self.dir / REGRESSOR_DIR)
        pos = {g: j for j, g in enumerate(self.genes)}
        self.isoform_gene = np.array([pos.get(g, -1) for g in self.meta.get("isoform_gene") or []],
                                     np.int64)

    def predict(self, X: np.ndarray, sample_id=None, tissue=None) -> np.ndarray:
        """(n, len(genes)) log2(TPM+1) in the MODEL's gene order -> (n, n_isoforms) float32."""
        from ..data.labelled import Labelled

        n = X.shape[0]
        sid = np.asarray(sample_id if sample_id is not None else [str(i) for i in range(n)])
        data = Labelled(sample_id=sid,
                        tissue=np.asarray(tissue if tissue is not None else [""] * n),
                        donor=None, genes=X, isoforms=np.zeros((n, 0), np.float32),
                        gene_names=self.genes, isoform_names=self.isoforms,
                        isoform_gene=self.isoform_gene)
        for name, run in self.encoders.items():
            data.latent[name] = run.encode_named(X, self.genes, source=self.dir)
        pred = np.asarray(self.regressor.predict(data, np.arange(n)), np.float32)
        if pred.shape != (n, len(self.isoforms)):
            raise RuntimeError(f"regressor returned {pred.shape}, expected "
                               f"{(n, len(self.isoforms))}")
        return pred


def _store_chunks(path, dataset):
    """(features, iterator of (X, sample_ids, tissue)) for a store's gene dataset."""
    from ..data.reader import Store

    st = Store(path)
    if dataset is None:
        dataset = next((d for d in ("gtex_gene", "archs4") if st.has(d)), None)
        if dataset is None:
            raise RavisoError("store has neither gtex_gene nor archs4 gene expression", path)
    elif dataset not in ("gtex_gene", "archs4"):
        raise RavisoError(f"--dataset must be a gene dataset (gtex_gene or archs4), got {dataset}")
    st.require(dataset)

    def gen():
        for X, ids, tissue, _ in st.batches(dataset, CHUNK_ROWS):
            yield X, ids, ["" if t is None else t for t in tissue]

    return st.genes, gen(), st.n_rows(dataset)


def _file_chunks(path):
    from ..io.formats import open_matrix

    src = open_matrix(path)

    def gen():
        with src:
            for ch in src.chunks(CHUNK_ROWS):
                lo = ch.row0
                tissue = ([t or "" for t in src.tissue[lo:lo + len(ch.sample_ids)]]
                          if src.tissue else None)
                yield np.array(ch.X, np.float32, copy=True), list(ch.sample_ids), tissue

    if src.role == "isoform" or src.feature_gene is not None:
        src.close()
        raise RavisoError("holds isoform (transcript) expression; predict needs gene expression",
                          path)
    return src.features, gen(), src.n_rows


def open_input(path, dataset=None):
    """(feature names, chunk iterator, number of samples or None) for any supported
    gene-expression input."""
    path = Path(path)
    if not path.exists():
        raise RavisoError("no such input", path)
    if path.is_dir():
        return _store_chunks(path, dataset)
    if dataset is not None:
        raise RavisoError("--dataset applies only to a store input", path)
    return _file_chunks(path)


def output_format(out: Path, fmt: str | None) -> str:
    if fmt is None:
        suffix = out.suffix.lower().lstrip(".")
        fmt = {"tsv": "tsv", "txt": "tsv", "h5ad": "h5ad"}.get(suffix, "parquet")
    if fmt not in FORMATS:
        raise RavisoError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    return fmt


def predict_file(model, input, out, fmt: str | None = None, allow_missing: bool = False,
                 dataset: str | None = None, overwrite: bool = False, warn=None,
                 quiet: bool = False) -> Path:
    """Predict every sample of `input` with MODEL; write `out`. Returns `out`."""
    from ..core.progress import Progress

    out = Path(out)
    fmt = output_format(out, fmt)
    check_writable_target(out, overwrite)
    m = LoadedModel(model)
    features, chunks, total = open_input(input, dataset)
    idx, missing = column_index(features, m.genes, source=input, what="model genes",
                                allow_missing=allow_missing)
    if missing:
        (warn or (lambda s: print(s, file=sys.stderr)))(
            f"raviso: warning: {input}: {len(missing)} of {len(m.genes)} model genes missing, "
            f"filled with 0: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    meta = {"isoforms": m.isoforms, "units": "log2(TPM+1)", "model": str(model),
            "variant": m.meta["variant"], "input": str(input),
            "missing_genes": {"count": len(missing), "names": missing, "filled_with": 0.0}}
    n = 0
    iso_gene = m.meta.get("isoform_gene")
    var = {"gene_id": ["" if g is None else g for g in iso_gene]} if iso_gene else {}
    with atomic_file(out, overwrite=True) as tmp:
        with WRITERS[fmt](tmp, m.isoforms, var, meta) as w, \
                Progress("predict", total=total, quiet=quiet) as progress:
            for X, sid, tissue in chunks:
                w.write(list(sid), m.predict(take_columns(X, idx), sid, tissue),
                        {"tissue": tissue})
                n += len(sid)
                progress.advance(len(sid))
        if n == 0:
            raise RavisoError("no samples to predict", input)
    return out


class ParquetOut:
    """Streams row groups of (sample_id, expr tensor) with the metadata in the schema."""

    def __init__(self, path, isoforms, var_columns=None, meta=None):
        import pyarrow as pa

        from ..data.schema import expr_type

        self.path = path
        self.schema = pa.schema([("sample_id", pa.string()), ("expr", expr_type(len(isoforms)))],
                                metadata={"raviso": json.dumps(meta)})
        self.writer = None

    def write(self, ids, P, obs=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..data.schema import tensor_array

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(pa.Table.from_arrays(
            [pa.array(ids, pa.string()), tensor_array(P)], schema=self.schema))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.close()


WRITERS = {"parquet": ParquetOut, **TABLES}


def read_predictions(path) -> tuple[list[str], np.ndarray, dict]:
    """(sample_id, predictions, metadata) of a Parquet written by `predict_file`."""
    import pyarrow.parquet as pq

    from ..data.reader import tensor_to_numpy

    t = pq.read_table(path)
    meta = json.loads(t.schema.metadata[b"raviso"])
    return t.column("sample_id").to_pylist(), tensor_to_numpy(t.column("expr")), meta
