"""`ConvertConfig`: the inputs and options of `raviso convert` (see `raviso.io.convert.convert`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import StageConfig


@dataclass(frozen=True)
class ConvertConfig(StageConfig):
    src: str | None = None                 # directory with the course files
    # explicit files (override those found in `src`)
    archs4: str | None = None
    gtex_gene: str | None = None
    gtex_isoform: str | None = None
    truth: str | None = None
    annotation: str | None = None
    tissues: str | None = None
    gct: tuple = ()                        # GTEx portal GCTs (gene and/or transcript TPM)
    attributes: str | None = None
    archs4_h5: str | None = None           # public ARCHS4 H5 (counts -> log2(CPM+1))
    # options
    gene_set: str = "exact"                # exact | intersect
    overwrite: bool = False
    checksum: bool = True
    quiet: bool = False
