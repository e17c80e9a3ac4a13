"""`raviso export STORE --to h5ad|tsv`: one dataset of a store as a samples x features table the
field's tools open directly (AnnData for scanpy, TSV for pandas / R), streamed and atomic."""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import atomic_file, check_writable_target
from ..core.errors import RavisoError
from ..core.progress import Progress
from ..data import Store
from ..data.schema import ISOFORM_DATASETS
from .config import ExportConfig
from .tables import TABLES

BATCH_ROWS = 2048


def export_store(store, out, cfg: ExportConfig | None = None, **options) -> Path:
    """Write `cfg.dataset` of `store` (default: gtex_gene, else archs4) to `out` as `cfg.to`
    (`options`: ExportConfig's fields as keywords)."""
    cfg = ExportConfig.build(cfg, **options)
    to, dataset = cfg.to, cfg.dataset
    if to not in TABLES:
        raise RavisoError(f"--to must be one of {', '.join(TABLES)} (got {to!r})")
    out = check_writable_target(out, cfg.overwrite, file=True, inputs=(store,))
    st = Store(store)
    if dataset is None:
        dataset = next((d for d in ("gtex_gene", "archs4") if st.has(d)), None)
        if dataset is None:
            raise RavisoError("store has neither gtex_gene nor archs4; pass --dataset", store)
    st.require(dataset)
    features = st.features(dataset)
    var = {}
    if dataset in ISOFORM_DATASETS and st.isoform_gene:
        var["gene_id"] = st.isoform_gene
    uns = {"store": str(store), "dataset": dataset, "units": st.manifest.get("units"),
           "raviso_version": st.manifest.get("raviso_version")}
    with atomic_file(out, overwrite=True) as tmp, \
            Progress(f"export {dataset}", total=st.n_rows(dataset), quiet=cfg.quiet) as progress, \
            TABLES[to](tmp, features, var, uns) as table:
        for X, ids, tissue, donor in st.batches(dataset, BATCH_ROWS):
            table.write(ids, X, {"tissue": tissue, "donor": donor})
            progress.advance(len(ids))
    return out
