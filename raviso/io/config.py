"""`ConvertConfig` and `ImportConfig`: the inputs and options of `raviso convert` and `raviso
import` (see `raviso.io.convert.convert` and `raviso.io.importer`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import StageConfig, option, overwrite_option, quiet_option


@dataclass(frozen=True)
class ConvertConfig(StageConfig):
    # explicit files (override those found in convert's `src` directory)
    archs4: Path | None = option(None, "ARCHS4 gene matrix (course HDF5/TSV, or public ARCHS4 "
                                 "H5).")
    gtex_gene: Path | None = option(None, "GTEx gene matrix.")
    gtex_isoform: Path | None = option(None, "GTEx isoform matrix.")
    truth: Path | None = option(None, "Noise-free isoform matrix (synthetic data).")
    annotation: Path | None = option(None, "isoform_id gene_id gene_name table (isoform -> gene "
                                     "map).")
    tissues: Path | None = option(None, "sample_id tissue table (gtex_annot).")
    gct: tuple[Path, ...] = option((), "GTEx portal GCT (gene or transcript TPM; repeatable) -> "
                                   "log2(TPM+1).", metavar="GCT")
    attributes: Path | None = option(None, "GTEx sample attributes (SampleID/Tissue or "
                                     "SAMPID/SMTSD).")
    archs4_h5: Path | None = option(None, "public ARCHS4 H5 (counts) -> log2(CPM+1).")
    # options
    gene_set: str = option("exact", "exact: gene matrices must have the same genes; intersect: "
                           "keep the common genes.")
    overwrite: bool = overwrite_option("Replace an existing STORE.")
    checksum: bool = option(True, "sha256 of every input in the manifest.",
                            flag="--checksum/--no-checksum")
    quiet: bool = quiet_option()


@dataclass(frozen=True)
class ImportConfig(StageConfig):
    matrix: Path | None = option(None, "A transcripts x samples table (TSV or GCT #1.2), or an "
                                 "AnnData .h5ad (obs = samples, var = transcripts, optional var "
                                 "gene_id), instead of per-sample files.")
    label: str | None = option(None, "Sheet column stored as the class (default: 'tissue' if "
                               "present).")
    tx2gene_path: Path | None = option(None, "transcript<TAB>gene TSV.", flag="--tx2gene")
    gtf: Path | None = option(None, "GTF (gene_id/transcript_id), may be .gz.")
    units: str | None = option(None, "tpm | counts: what to build values from (per-sample files: "
                               "from their headers; a matrix: required).")
    tx_col: str | None = option(None, "Matrix transcript id column (default: the first).")
    gene_col: str | None = option(None, "Matrix gene id column (the map, instead of "
                                  "--tx2gene/--gtf).")
    max_unmapped: float = option(0.05, "Largest fraction of transcripts allowed to miss the map "
                                 "(they are dropped).")
    max_index_mismatch: float = option(0.01, "Largest fraction of the transcripts one sample's "
                                       "file may lack (more: files quantified against different "
                                       "indexes, refused).")
    sample_set: str = option("exact", "exact: every sheet sample must be a matrix column; "
                             "intersect: import the samples in both (says how many were "
                             "dropped).")
    as_compendium: bool = option(False, "Also write the gene matrix as 'archs4' so the VAE can "
                                 "pretrain on it.")
    overwrite: bool = overwrite_option()
    quiet: bool = quiet_option()


@dataclass(frozen=True)
class ExportConfig(StageConfig):
    to: str = option("", "h5ad (AnnData: obs = samples with tissue and donor, var = features) | "
                     "tsv (sample_id + one column per feature).", required=True)
    dataset: str | None = option(None, "archs4 | gtex_gene | gtex_isoform | truth (default: "
                                 "gtex_gene, else archs4).")
    overwrite: bool = overwrite_option()
    quiet: bool = quiet_option()
