"""Gene expression for `raviso predict` from anything `raviso import` reads (a store, a sample
sheet, one quantification file, a transcripts x samples table): it goes through the same import
code into a temporary store, so predict inputs are normalised exactly like training stores."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import quant
from .samplesheet import PATH_COLS, SAMPLE_COLS, header_key
from ..core.errors import RavisoError
from .importer import import_matrix, import_samples


GENERIC_NAMES = ("quant.sf", "abundance.tsv", "quant.genes.sf")


def _sample_name(path: Path) -> str:
    """quantifiers write fixed names (salmon's quant.sf in the sample's folder): use the folder."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return path.parent.name if name in GENERIC_NAMES else name.split(".")[0]


def is_quant_input(path) -> bool:
    """True when `path` is something only this module reads: a per-sample quantification, a
    sample sheet of them, or a GCT transcript table (predict falls back to `read_gene_matrix`)."""
    path = Path(path)
    if not path.is_file():
        return False
    line = quant.first_line(path)
    header = line.split("\t") if "\t" in line else line.split(",")
    if line.startswith("#1.2"):
        return True
    try:
        quant.detect_layout(path)
        return True
    except RavisoError:
        keys = {header_key(h) for h in header}
        return bool(keys & {header_key(c) for c in SAMPLE_COLS}) and bool(keys & set(PATH_COLS))


def read_gene_matrix(path, tx2gene_path=None, gtf=None, units: str | None = None,
                     matrix: bool = False, tx_col=None, gene_col=None):
    """``(sample_ids, gene_names, X)`` log2 gene expression from any import input, for predict.

    `path`: a store, a sample sheet, one per-sample quantification file (sample named after its
    folder for salmon's quant.sf / kallisto's abundance.tsv), or with ``matrix=True`` (or a GCT
    file) a transcripts x samples table. Goes through the same import code (into a temporary
    store), so predict inputs are normalised exactly like training stores.
    """
    from ..data.reader import Store

    path = Path(path)
    if path.is_dir():
        st = Store(path)
        name = next((d for d in ("gtex_gene", "archs4") if st.has(d)), None)
        if name is None:
            raise RavisoError("store has no gene expression dataset", path)
        return st.meta(name).sample_id.to_numpy().astype(str), list(st.genes), st.numpy(name)
    if not path.is_file():
        raise RavisoError("no such file", path)
    with tempfile.TemporaryDirectory(prefix="raviso-import-") as tmp:
        store = Path(tmp) / "store"
        if matrix or quant.first_line(path).startswith("#1.2"):
            import_matrix(path, store, units=units, tx_col=tx_col, gene_col=gene_col,
                          tx2gene_path=tx2gene_path, gtf=gtf, quiet=True)
        else:
            try:
                quant.detect_layout(path)
                sheet = Path(tmp) / "sheet.tsv"
                sheet.write_text(f"sample\tpath\n{_sample_name(path)}\t{path.resolve()}\n")
            except RavisoError:
                sheet = path
            import_samples(sheet, store, tx2gene_path=tx2gene_path, gtf=gtf, units=units,
                           quiet=True)
        return read_gene_matrix(store)
