"""Data commands: synth, convert, import, export, copy."""

from pathlib import Path
from typing import Optional

import typer

from raviso.io.config import ConvertConfig, ExportConfig, ImportConfig
from raviso.synth.config import SynthConfig

from .options import configured, out_option
from .shared import echo_err


@configured(cfg=SynthConfig)
def synth_cmd(
    out: Path = typer.Argument(..., help="Directory to create with the synthetic course files."),
    cfg: SynthConfig = None,
):
    """Write synthetic ARCHS4/GTEx gene and isoform data (plus the noise-free truth) in the
    course's exact file formats."""
    import json

    from raviso.synth.generate import generate

    info = generate(out, cfg, log=echo_err)
    iso = info["gtex_isoform"]
    print(json.dumps({"out": str(out), "seconds": info["seconds"], "files": info["files"],
                      "isoform_zero_fraction": round(iso["zero_fraction"], 4),
                      "noise_floor_mse": round(iso["noise_floor_mse"], 4),
                      "mean_baseline_mse": round(iso["mean_baseline_mse"], 4)}))


@configured(cfg=ConvertConfig)
def convert_cmd(
    first: Path = typer.Argument(..., metavar="SRC", help="Directory with the course files "
                                 "(*.hdf5 / *.tsv.gz / *.tsv, also head_* slices). Alone (files "
                                 "given by option), it is the STORE."),
    second: Optional[Path] = typer.Argument(None, metavar="STORE",
                                            help="The Parquet store to write."),
    cfg: ConvertConfig = None,
) -> None:
    """Convert course HDF5/TSV files (or GTEx GCT / ARCHS4 H5) into a Parquet store."""
    from raviso.io.convert import convert

    src, store = (first, second) if second is not None else (None, first)
    convert(store, src, cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"wrote {store}")


@configured(cfg=ImportConfig)
def import_cmd(
    first: Path = typer.Argument(..., metavar="SAMPLESHEET",
                                 help="Sample sheet (CSV/TSV/semicolon-separated; columns sample, "
                                      "path; optional tissue, donor, gene_quant). With --matrix "
                                      "it is optional (labels only); alone, it is the STORE."),
    second: Optional[Path] = typer.Argument(None, metavar="STORE", help="The store to write."),
    cfg: ImportConfig = None,
):
    """Import salmon / kallisto / RSEM files or a transcripts x samples matrix into a store.

    Values are log2(TPM+1); counts without effective lengths become log2(CPM+1), flagged."""
    from raviso.core.errors import RavisoError
    from raviso.io.importer import import_matrix, import_samples

    if cfg.matrix is None and second is None:
        raise RavisoError("usage: raviso import SAMPLESHEET STORE (or --matrix FILE [SAMPLESHEET] "
                          "STORE)")
    store, sheet = (second, first) if second is not None else (first, None)
    if cfg.matrix is None:
        if cfg.tx_col or cfg.gene_col or cfg.sample_set != "exact":
            raise RavisoError("--tx-col/--gene-col/--sample-set apply to --matrix only")
        out = import_samples(sheet, store, cfg)
    else:
        out = import_matrix(cfg.matrix, store, cfg, samplesheet=sheet)
    print(out)


@configured(cfg=ExportConfig)
def export_cmd(
    store: str = typer.Argument(..., help="The store (path or URI)."),
    out: Path = out_option("The file to write."),
    cfg: ExportConfig = None,
):
    """Write one dataset of a store as a samples x features table that scanpy (h5ad) or pandas
    (tsv) open directly, names included."""
    from raviso.io.export import export_store

    print(export_store(store, out, cfg))


def copy_cmd(
    src: str = typer.Argument(..., help="Store, finished RUN or directory: path or URI."),
    dst: str = typer.Argument(..., help="Where to put it: path, s3://bucket/key, gs://..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing DST."),
):
    """Copy a store or RUN to/from object storage or a shared filesystem (commit marker last)."""
    from raviso.data.remote import copy_tree, summary

    print(summary(copy_tree(src, dst, overwrite=overwrite)))


COMMANDS = {"synth": synth_cmd, "convert": convert_cmd, "import": import_cmd,
            "export": export_cmd, "copy": copy_cmd}
