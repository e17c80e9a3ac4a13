"""`raviso` command line: a thin typer shell over the `raviso.*` stage modules.

Every command imports its stage lazily (so `raviso --help` is instant) and lets `RavisoError`
propagate; `main` prints it as one line and exits non-zero.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

# rich_markup_mode=None: help texts are printed as written. With rich markup, "[unit]" or
# "[auto: when small]" (how defaults are written here) are taken for markup tags and vanish.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Predict isoform expression from gene expression: pretrained VAE + "
                       "regressors, distributed on Ray.")
bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Benchmarks that print figures (last line JSON).")
app.add_typer(bench_app, name="bench")

# `raviso --debug CMD`: an unexpected exception shows its traceback instead of one line.
DEBUG = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an "
                                        "unexpected error (for a bug report).")):
    DEBUG["on"] = debug

ADDRESS = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output (only a raviso "
                         "output is ever replaced).")
QUIET = typer.Option(False, "--quiet", help="No progress display (a bar with rows/s and ETA on a "
                     "terminal, a line every 10 s otherwise).")


# ---- synth (issue 2) ----------------------------------------------------------------------------
@app.command("synth")
def synth_cmd(
    out: Path = typer.Argument(..., help="Directory to create with the synthetic course files."),
    preset: str = typer.Option("tiny", "--preset", help="tiny (seconds, tests) | small (the demo) "
                               "| course (the course's full shapes, ~24 GB)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same files."),
    fmt: str = typer.Option("hdf5", "--format", help="hdf5 (*.hdf5) | tsv (*.tsv.gz)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Generator threads "
                                          "(default: min(4, CPUs))."),
):
    """Write synthetic ARCHS4/GTEx gene and isoform data (plus the noise-free truth) in the
    course's exact file formats."""
    import json

    from raviso.synth.generate import generate

    info = generate(out, preset=preset, seed=seed, fmt=fmt, overwrite=overwrite, workers=workers,
                    log=lambda msg: print(msg, file=sys.stderr))
    iso = info["gtex_isoform"]
    print(json.dumps({"out": str(out), "seconds": info["seconds"], "files": info["files"],
                      "isoform_zero_fraction": round(iso["zero_fraction"], 4),
                      "noise_floor_mse": round(iso["noise_floor_mse"], 4),
                      "mean_baseline_mse": round(iso["mean_baseline_mse"], 4)}))


# ---- convert (issue 2) --------------------------------------------------------------------------
@app.command("convert")
def convert_cmd(
    first: Path = typer.Argument(..., metavar="SRC", help="Directory with the course files "
                                 "(*.hdf5 / *.tsv.gz / *.tsv, also head_* slices). Alone (files "
                                 "given by option), it is the STORE."),
    second: Optional[Path] = typer.Argument(None, metavar="STORE",
                                            help="The Parquet store to write."),
    archs4: Optional[Path] = typer.Option(None, "--archs4", help="ARCHS4 gene matrix (course "
                                          "HDF5/TSV, or public ARCHS4 H5)."),
    gtex_gene: Optional[Path] = typer.Option(None, "--gtex-gene", help="GTEx gene matrix."),
    gtex_isoform: Optional[Path] = typer.Option(None, "--gtex-isoform",
                                                help="GTEx isoform matrix."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Noise-free isoform matrix "
                                         "(synthetic data)."),
    annotation: Optional[Path] = typer.Option(None, "--annotation", help="isoform_id gene_id "
                                              "gene_name table (isoform -> gene map)."),
    tissues: Optional[Path] = typer.Option(None, "--tissues", help="sample_id tissue table "
                                           "(gtex_annot)."),
    gct: Optional[list[Path]] = typer.Option(None, "--gct", metavar="GCT",
                                             help="GTEx portal GCT (gene or "
                                             "transcript TPM; repeatable) -> log2(TPM+1)."),
    attributes: Optional[Path] = typer.Option(None, "--attributes", help="GTEx sample "
                                              "attributes (SampleID/Tissue or SAMPID/SMTSD)."),
    archs4_h5: Optional[Path] = typer.Option(None, "--archs4-h5", help="public ARCHS4 H5 "
                                             "(counts) -> log2(CPM+1)."),
    gene_set: str = typer.Option("exact", "--gene-set", help="exact: gene matrices must have "
                                 "the same genes; intersect: keep the common genes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing STORE."),
    checksum: bool = typer.Option(True, "--checksum/--no-checksum",
                                  help="sha256 of every input in the manifest."),
    quiet: bool = QUIET,
) -> None:
    """Convert course HDF5/TSV files (or GTEx GCT / ARCHS4 H5) into a Parquet store."""
    from raviso.io.config import ConvertConfig
    from raviso.io.convert import convert

    src, store = (first, second) if second is not None else (None, first)
    cfg = ConvertConfig(src=src, archs4=archs4, gtex_gene=gtex_gene, gtex_isoform=gtex_isoform,
                        truth=truth, annotation=annotation, tissues=tissues, gct=tuple(gct or ()),
                        attributes=attributes, archs4_h5=archs4_h5, gene_set=gene_set,
                        overwrite=overwrite, checksum=checksum, quiet=quiet)
    convert(store, cfg=cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"wrote {store}")


# ---- import (issue 6) ---------------------------------------------------------------------------


@app.command("import")
def import_cmd(
    first: Path = typer.Argument(..., metavar="SAMPLESHEET",
                                 help="Sample sheet (CSV/TSV/semicolon-separated; columns sample, "
                                      "path; optional tissue, donor, gene_quant). With --matrix "
                                      "it is optional (labels only); alone, it is the STORE."),
    second: Optional[Path] = typer.Argument(None, metavar="STORE", help="The store to write."),
    matrix: Optional[Path] = typer.Option(None, "--matrix", help="A transcripts x samples table "
                                          "(TSV or GCT #1.2), or an AnnData .h5ad (obs = "
                                          "samples, var = transcripts, optional var gene_id), "
                                          "instead of per-sample files."),
    label: Optional[str] = typer.Option(None, "--label", help="Sheet column stored as the class "
                                        "(default: 'tissue' if present)."),
    tx2gene_tsv: Optional[Path] = typer.Option(None, "--tx2gene", help="transcript<TAB>gene TSV."),
    gtf: Optional[Path] = typer.Option(None, "--gtf", help="GTF (gene_id/transcript_id), may be .gz."),
    units: Optional[str] = typer.Option(None, "--units", help="tpm | counts: what to build values "
                                        "from (per-sample files: from their headers; a matrix: "
                                        "required)."),
    tx_col: Optional[str] = typer.Option(None, "--tx-col", help="Matrix transcript id column "
                                         "(default: the first)."),
    gene_col: Optional[str] = typer.Option(None, "--gene-col", help="Matrix gene id column (the "
                                           "map, instead of --tx2gene/--gtf)."),
    max_unmapped: float = typer.Option(0.05, "--max-unmapped", help="Largest fraction of "
                                       "transcripts allowed to miss the map (they are dropped)."),
    max_index_mismatch: float = typer.Option(0.01, "--max-index-mismatch", help="Largest fraction "
                                             "of the transcripts one sample's file may lack "
                                             "(more: files quantified against different "
                                             "indexes, refused)."),
    sample_set: str = typer.Option("exact", "--sample-set", help="exact: every sheet sample must "
                                   "be a matrix column; intersect: import the samples in both "
                                   "(says how many were dropped)."),
    as_compendium: bool = typer.Option(False, "--as-compendium", help="Also write the gene matrix "
                                       "as 'archs4' so the VAE can pretrain on it."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
):
    """Import salmon / kallisto / RSEM files or a transcripts x samples matrix into a store.

    Values are log2(TPM+1); counts without effective lengths become log2(CPM+1), flagged."""
    from raviso.core.errors import RavisoError
    from raviso.io.importer import import_matrix, import_samples

    if matrix is None and second is None:
        raise RavisoError("usage: raviso import SAMPLESHEET STORE (or --matrix FILE [SAMPLESHEET] "
                          "STORE)")
    store, sheet = (second, first) if second is not None else (first, None)
    if matrix is None:
        if tx_col or gene_col or sample_set != "exact":
            raise RavisoError("--tx-col/--gene-col/--sample-set apply to --matrix only")
        out = import_samples(sheet, store, label=label, tx2gene_path=tx2gene_tsv, gtf=gtf,
                             units=units, overwrite=overwrite, as_compendium=as_compendium,
                             max_unmapped=max_unmapped, max_index_mismatch=max_index_mismatch,
                             quiet=quiet)
    else:
        out = import_matrix(matrix, store, units, samplesheet=sheet, label=label, tx_col=tx_col,
                            gene_col=gene_col, tx2gene_path=tx2gene_tsv, gtf=gtf,
                            overwrite=overwrite, as_compendium=as_compendium,
                            max_unmapped=max_unmapped, sample_set=sample_set, quiet=quiet)
    print(out)


# ---- pretrain / encode (issue 3) ----------------------------------------------------------------
def _int_list(text: Optional[str], option: str) -> Optional[tuple]:
    if text is None:
        return None
    from raviso.core.errors import RavisoError

    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RavisoError(f"{option} takes comma-separated integers, got {text!r}") from None


@app.command("pretrain")
def pretrain_cmd(
    store: str = typer.Argument(..., help="Parquet store with an archs4 dataset (gtex_gene is "
                                 "scored each epoch when present)."),
    out: Path = typer.Option(..., "--out", help="RUN directory to create (or continue: --resume)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Total epochs [10]; with --resume "
                                         "the new total."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Per-worker batch [64]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate [1e-4]."),
    beta: Optional[float] = typer.Option(None, "--beta", help="KL weight [1]; 0 = plain "
                                         "deterministic autoencoder."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="Latent size [256]."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="Encoder widths, comma list "
                                         "[4096,2048,1024,512]; the decoder mirrors them."),
    learned_variance: Optional[bool] = typer.Option(None, "--learned-variance/--unit-variance",
                                                    help="Per-gene observation variance "
                                                    "[unit]."),
    warmup_epochs: Optional[int] = typer.Option(None, "--warmup-epochs", help="Linear KL warm-up "
                                                "epochs [0]."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Held-out ARCHS4 "
                                                 "fraction, by sample-id hash [0.02]."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DDP workers [1]."),
    cpus_per_worker: Optional[float] = typer.Option(None, "--cpus-per-worker", help="Logical CPUs "
                                                    "reserved per worker, may be fractional [1]."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per worker "
                                          "[node cores / workers on the node]."),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--cpu", help="One GPU per worker, NCCL."),
    shuffle: Optional[str] = typer.Option(None, "--shuffle", help="files (file order re-drawn "
                                          "each epoch + local buffer) | global | none [files]."),
    shuffle_buffer: Optional[int] = typer.Option(None, "--shuffle-buffer", help="Local shuffle "
                                                 "buffer rows per worker [2048]."),
    materialize: Optional[str] = typer.Option(None, "--materialize", help="auto | always | never: "
                                              "hold the data in the object store [auto: when "
                                              "small]."),
    max_failures: Optional[int] = typer.Option(None, "--max-failures", help="Worker failures "
                                               "to recover from the last checkpoint (default: 0 on "
                                               "a local Ray, 3 on a cluster)."),
    keep_checkpoints: Optional[int] = typer.Option(None, "--keep-checkpoints", help="Checkpoints "
                                                   "kept [2]."),
    no_gtex: bool = typer.Option(False, "--no-gtex-eval", help="Skip scoring gtex_gene."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many "
                                            "optimizer steps in all (bounded benchmarks) [0: "
                                            "no limit]."),
    device_cache: Optional[bool] = typer.Option(None, "--device-cache/--no-device-cache",
                                                help="With --gpu: keep each worker's rows in GPU "
                                                "memory after the first epoch, when they fit in "
                                                "half of it [on]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed [0]."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Ray Train storage for "
                                          "checkpoints (shared path or URI on a multi-node "
                                          "cluster) [RUN/checkpoints]."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing RUN."),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress display."),
    address: Optional[str] = ADDRESS,
):
    """Pretrain the VAE (or, with --beta 0, the autoencoder) on ARCHS4 with Ray Train DDP."""
    from raviso.train.pretrain import pretrain

    model_opts = {"hidden": _int_list(hidden, "--hidden"), "latent_dim": latent_dim, "beta": beta,
                  "learned_variance": learned_variance}
    train_opts = {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                  "warmup_epochs": warmup_epochs, "val_fraction": val_fraction, "seed": seed,
                  "workers": workers, "cpus_per_worker": cpus_per_worker, "gpu": gpu,
                  "threads": threads, "shuffle": shuffle, "shuffle_buffer": shuffle_buffer,
                  "materialize": materialize, "max_failures": max_failures,
                  "keep_checkpoints": keep_checkpoints, "eval_gtex": False if no_gtex else None,
                  "max_steps": max_steps, "device_cache": device_cache}
    run = pretrain(store, out, model_opts, train_opts, resume=resume, overwrite=overwrite,
                   address=address, quiet=quiet, storage_path=storage)
    print(run)


@app.command("encode")
def encode_cmd(
    run: Path = typer.Argument(..., help="Finished pretraining RUN directory."),
    store: str = typer.Argument(..., help="Parquet store in the model's gene order."),
    which: str = typer.Option("gtex", "--which", help="gtex | archs4 | both."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory "
                                       "[STORE/latent/<run-name>]."),
    batch_size: int = typer.Option(512, "--batch-size", help="Rows per inference batch."),
    concurrency: int = typer.Option(1, "--concurrency", help="Model replicas (Ray actors)."),
    address: Optional[str] = ADDRESS,
):
    """Encode a store's samples to posterior means (latent Parquet keyed by sample_id)."""
    from raviso.train.encode import encode

    for name, path in encode(run, store, which=which, out=out, address=address,
                             batch_size=batch_size, concurrency=concurrency).items():
        print(f"{name}\t{path}")


# ---- cv / report / predict / fit / demo (issue 4) -----------------------------------------------


@app.command("cv")
def cv_cmd(
    store: str = typer.Argument(..., help="Store with gtex_gene + gtex_isoform (raviso convert)."),
    out: Path = typer.Option(..., "--out", help="CV directory to write (results.json, report.md)."),
    pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="VAE run (latent 'vae')."),
    pretrained_ae: Optional[Path] = typer.Option(None, "--pretrained-ae",
                                                 help="Autoencoder (beta=0) run (latent 'ae')."),
    variants: Optional[str] = typer.Option(None, "--variants",
                                           help="Comma list (default: share_net, ffnn_plus, "
                                                "the paper variants, the baselines)."),
    folds: int = typer.Option(5, "--folds", help="Number of cross-validation folds."),
    repeats: int = typer.Option(1, "--repeats", help="R x k-fold with fold seeds seed..seed+R-1 "
                                "(corrected repeated k-fold t-test across all R*k folds)."),
    group_by: str = typer.Option("donor", "--group-by", help="donor | none"),
    fold_scheme: str = typer.Option("kfold", "--fold-scheme", help="kfold | auto | logo: auto "
                                    "picks leave-one-group-out or a smaller k for small "
                                    "labelled sets (reported)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs of the neural variants."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and of every trial."),
    cpus_per_trial: float = typer.Option(1, "--cpus-per-trial", help="Logical CPUs reserved "
                                         "per (fold, variant) trial, may be fractional."),
    gpus_per_trial: float = typer.Option(0, "--gpus-per-trial", help="GPUs per trial, may be "
                                         "fractional (0: CPU only)."),
    max_failures: int = typer.Option(2, "--max-failures", help="Retries of a crashed trial."),
    save_model: bool = typer.Option(False, "--save-model",
                                    help="Also fit the best savable variant (share_net, "
                                    "ffnn_plus or an FFNN) on all samples: CV/model."),
    no_report: bool = typer.Option(False, "--no-report", help="Write results.json only, "
                                   "no report.md/table1.csv/plots."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Tune storage shared by all "
                                          "nodes (multi-node clusters; default .CV.tune beside "
                                          "CV, kept until CV is written)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse the trials a killed or failed "
                                "run of this same CV finished; run only the others."),
    overwrite: bool = OVERWRITE,
    target_dtype: str = typer.Option("auto", "--target-dtype", help="auto | float32 | float16: "
                                     "storage of the memory-mapped isoform targets (auto: float16 "
                                     "above 4 GB of float32; adds ~1e-7 MSE)."),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", help="Trials at once "
                                                 "[what the CPUs, GPUs and memory allow]."),
    tune: int = typer.Option(0, "--tune", help="Nested CV: a search of N trials inside every "
                             "outer fold (its training rows only) for each tunable variant, "
                             "scored as <variant>@tuned next to the defaults."),
    config: Optional[Path] = typer.Option(None, "--config", help="best.json from raviso tune: "
                                          "cross-validate that fixed config as <variant>@tuned."),
    inner_folds: int = typer.Option(3, "--inner-folds", help="Inner folds of --tune's search."),
    address: Optional[str] = ADDRESS,
):
    """Cross-validate the variants: every (fold, variant) is a Ray Tune trial."""
    from raviso.evaluate.config import CvConfig
    from raviso.evaluate.cv import run_cv

    cfg = CvConfig(pretrained=pretrained, pretrained_ae=pretrained_ae, variants=variants,
                   folds=folds, group_by=group_by, fold_scheme=fold_scheme, epochs=epochs,
                   seed=seed, address=address, cpus_per_trial=cpus_per_trial,
                   gpus_per_trial=gpus_per_trial, max_failures=max_failures,
                   save_model=save_model, overwrite=overwrite, report=not no_report,
                   storage=storage, target_dtype=target_dtype, max_concurrent=max_concurrent,
                   resume=resume, repeats=repeats, tune=tune, tuned_config=config,
                   inner_folds=inner_folds)
    cv_dir = run_cv(store, out=out, cfg=cfg)
    print(cv_dir / ("results.json" if no_report else "report.md"))


@app.command("tune")
def tune_cmd(
    store: str = typer.Argument(..., help="Store with gtex_gene + gtex_isoform."),
    variant: str = typer.Option(..., "--variant", help="The variant to tune (gene_ffnn, "
                                "vae_ffnn, ae_ffnn, pca_ffnn, foldvae_ffnn, ...)."),
    trials: int = typer.Option(16, "--trials", help="Configs to try (per grid point when the "
                               "space has grid dimensions)."),
    out: Path = typer.Option(..., "--out", help="TUNE directory: best.json, trials.parquet, "
                             "search.png."),
    space: Optional[Path] = typer.Option(None, "--space", help="JSON search space (default: "
                                         "the variant's, see README)."),
    pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="VAE run (latent 'vae')."),
    pretrained_ae: Optional[Path] = typer.Option(None, "--pretrained-ae",
                                                 help="Autoencoder run (latent 'ae')."),
    max_epochs: int = typer.Option(100, "--max-epochs", help="Epoch budget per trial (ASHA's "
                                   "max_t); the chosen epochs come from the best curve."),
    inner_folds: int = typer.Option(3, "--inner-folds", help="Donor-grouped inner folds."),
    scheduler: str = typer.Option("asha", "--scheduler", help="asha | fifo (no early stop)."),
    grace: Optional[int] = typer.Option(None, "--grace", help="ASHA grace period in epochs "
                                        "[max(3, max_epochs / 10)]."),
    group_by: str = typer.Option("donor", "--group-by", help="donor | none"),
    fold_scheme: str = typer.Option("kfold", "--fold-scheme", help="kfold | auto | logo"),
    seed: int = typer.Option(0, "--seed", help="Seed of the inner folds and of every trial."),
    cpus_per_trial: float = typer.Option(1, "--cpus-per-trial", help="Logical CPUs reserved "
                                         "per trial, may be fractional."),
    gpus_per_trial: float = typer.Option(0, "--gpus-per-trial", help="GPUs per trial, may be "
                                         "fractional (0: CPU only)."),
    max_failures: int = typer.Option(2, "--max-failures", help="Restarts of a crashed trial "
                                     "(from its last checkpoint)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Tune storage shared by all "
                                          "nodes (multi-node clusters; default TUNE/tune)."),
    overwrite: bool = OVERWRITE,
    address: Optional[str] = ADDRESS,
):
    """Search a variant's hyperparameters on Ray Tune (Optuna TPE + ASHA) on inner folds."""
    from raviso.evaluate.tune_cmd import tune_store

    out_dir = tune_store(store, variant, trials, out, space_file=space, pretrained=pretrained,
                         pretrained_ae=pretrained_ae, max_epochs=max_epochs,
                         inner_folds=inner_folds, seed=seed, group_by=group_by,
                         fold_scheme=fold_scheme, scheduler=scheduler, grace=grace,
                         cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                         max_failures=max_failures, address=address, storage=storage,
                         overwrite=overwrite, progress=lambda m: typer.echo(m, err=True))
    print(out_dir / "best.json")


@bench_app.command("tune")
def bench_tune_cmd(
    quick: bool = typer.Option(False, "--quick", help="tiny preset, 4 trials (a smoke test)."),
    address: Optional[str] = ADDRESS,
):
    """ASHA + TPE vs a grid of the same budget: best inner MSE and wall time (issue 13)."""
    from bench.tune import main as bench_tune

    bench_tune(quick=quick, address=address)


@app.command("report")
def report_cmd(
    cv: Path = typer.Argument(..., help="A directory written by raviso cv."),
    pretrain: Optional[Path] = typer.Option(None, "--pretrain", help="Run dir: add its curves."),
):
    """Write CV/report.md, CV/table1.csv and plots from CV/results.json."""
    from raviso.evaluate.report import write_report

    print(write_report(cv, pretrain=pretrain))


@app.command("fit")
def fit_cmd(
    store: str = typer.Argument(..., help="Store with the labelled set."),
    out: Path = typer.Option(..., "--out", help="MODEL directory to write."),
    variant: Optional[str] = typer.Option(None, "--variant", help="The variant to fit (one "
                                          "of raviso cv's --variants that can be saved) "
                                          "[share_net, or the --config's]."),
    pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="VAE run (latent "
                                              "'vae'), for the variants that use it."),
    pretrained_ae: Optional[Path] = typer.Option(None, "--pretrained-ae", help="Autoencoder "
                                                 "(beta=0) run (latent 'ae')."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs of a neural variant "
                                         "(default: the variant's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the fit."),
    overwrite: bool = OVERWRITE,
    target_dtype: str = typer.Option("auto", "--target-dtype", help="auto | float32 | float16 "
                                     "(as raviso cv)."),
    config: Optional[Path] = typer.Option(None, "--config", help="best.json from raviso tune: "
                                          "its variant and options."),
):
    """Train one variant on ALL labelled samples and save it for raviso predict."""
    from raviso.serve.config import FitConfig
    from raviso.serve.fit import fit_store

    cfg = FitConfig(variant=variant, pretrained=pretrained, pretrained_ae=pretrained_ae,
                    epochs=epochs, seed=seed, overwrite=overwrite, target_dtype=target_dtype,
                    config=config)
    print(fit_store(store, out=out, cfg=cfg))


@app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="MODEL from raviso fit or raviso cv --save-model."),
    input: Path = typer.Argument(..., help="Gene expression: a store, a TSV/CSV/GCT/Parquet table "
                                 "(genes x samples or samples x genes, TPM or log2(TPM+1)), a "
                                 "course HDF5, an ARCHS4 H5 or an AnnData .h5ad."),
    out: Path = typer.Option(..., "--out", help="Output file (.parquet, .tsv or .h5ad)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="parquet | tsv | h5ad (default: "
                                      "from --out's suffix, else parquet)."),
    allow_missing: bool = typer.Option(False, "--allow-missing",
                                       help="Fill genes the input lacks with their training mean "
                                       "(and say how many and which)."),
    max_missing: float = typer.Option(0.10, "--max-missing", help="With --allow-missing: refuse "
                                      "when more than this fraction of model genes is missing."),
    samples: Optional[Path] = typer.Option(None, "--samples", help="Sample sheet (sample, "
                                           "tissue[, donor]; CSV/TSV) giving each sample's tissue."),
    orientation: Optional[str] = typer.Option(None, "--orientation", help="genes-by-samples | "
                                              "samples-by-genes (default: detected)."),
    scale: Optional[str] = typer.Option(None, "--scale", help="tpm | log2tpm (default: detected "
                                        "from the value range)."),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="Store dataset to read (default gtex_gene/archs4)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
):
    """Predict isoform expression, log2(TPM+1), for new samples."""
    from raviso.serve.predict import predict_file

    print(predict_file(model, input, out, fmt=fmt, allow_missing=allow_missing, dataset=dataset,
                       overwrite=overwrite, quiet=quiet, samples=samples, orientation=orientation,
                       scale=scale, max_missing=max_missing))


@app.command("export")
def export_cmd(
    store: str = typer.Argument(..., help="The store (path or URI)."),
    to: str = typer.Option(..., "--to", help="h5ad (AnnData: obs = samples with tissue and "
                           "donor, var = features) | tsv (sample_id + one column per feature)."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="archs4 | gtex_gene | "
                                          "gtex_isoform | truth (default: gtex_gene, else "
                                          "archs4)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
):
    """Write one dataset of a store as a samples x features table that scanpy (h5ad) or pandas
    (tsv) open directly, names included."""
    from raviso.io.export import export_store

    print(export_store(store, to, out, dataset=dataset, overwrite=overwrite, quiet=quiet))


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("raviso-demo"), "--out", help="Everything is written under it."),
    overwrite: bool = OVERWRITE,
    address: Optional[str] = ADDRESS,
):
    """The whole pipeline on built-in synthetic data (small preset), in minutes."""
    from raviso.demo import run_demo

    run_demo(out, overwrite=overwrite, address=address)


@bench_app.command("scale")
def bench_scale_cmd(
    quick: bool = typer.Option(False, "--quick", help="Tiny widths and model (a smoke test)."),
    rows_gtex: Optional[int] = typer.Option(None, "--rows-gtex", help="GTEx rows [17,356]."),
    rows_archs4: Optional[int] = typer.Option(None, "--rows-archs4", help="ARCHS4 rows [20,000]."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Where the synth files, "
                                           "store, runs and CV go [a temp dir, removed]."),
    keep: bool = typer.Option(False, "--keep", help="Keep the synth files and outputs."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Pretraining steps [20]."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="CV / fit epochs [1]."),
    variants: Optional[str] = typer.Option(None, "--variants", help="CV variants [mean, "
                                           "pca_ridge, vae_ffnn, share_net]."),
    target_dtype: str = typer.Option("auto", "--target-dtype", help="auto | float32 | float16."),
    synth_rows_gtex: Optional[int] = typer.Option(None, "--synth-rows-gtex", help="Synthesize "
                                                  "only this many GTEx rows, then resample the "
                                                  "store up to --rows-gtex (an 'expand' stage)."),
) -> None:
    """The course's widths through every stage: per-stage seconds, peak memory (driver + Ray
    workers), object store, disk bytes (issue 11)."""
    from bench.scale import main as bench_scale

    bench_scale(quick=quick, rows_gtex=rows_gtex, rows_archs4=rows_archs4, workdir=workdir,
                keep=keep, max_steps=max_steps, epochs=epochs, variants=variants,
                target_dtype=target_dtype, synth_rows_gtex=synth_rows_gtex)


@bench_app.command("cv")
def bench_cv_cmd(
    quick: bool = typer.Option(False, "--quick", help="Smaller trials (a smoke test)."),
    address: Optional[str] = ADDRESS,
):
    """Parallel efficiency of raviso cv on Ray Tune: 5 folds x 3 variants."""
    from bench.cv import main as bench_cv

    bench_cv(quick=quick, address=address)


# ---- submit (issue 5) ---------------------------------------------------------------------------


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             options_metavar="[OPTIONS] -- COMMAND [ARGS]...")
def submit(
    ctx: typer.Context,
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray job server (dashboard) address; default "
        "$RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265 (where `ray dashboard` forwards)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Stream the job's logs and exit "
                              "with its status, or return once it is submitted."),
    with_deps: bool = typer.Option(False, "--with-deps", help="Also pip-install raviso's "
                                   "dependencies (except ray and torch) in the job's env."),
):
    """Run `raviso COMMAND ARGS...` on a Ray cluster as a Ray Job, e.g.
    raviso submit -- pretrain STORE --out RUN, or raviso submit -- cv STORE --out CV."""
    from raviso.cluster.submit import submit as submit_job

    outcome = submit_job(list(ctx.args), address=address, wait=wait, with_deps=with_deps)
    raise typer.Exit(outcome.exit_code)


@app.command("aws-setup")
def aws_setup_cmd(
    ssh_cidr: str = typer.Option(..., "--ssh-cidr", help="The only network SSH may come from, "
                                 "e.g. 203.0.113.7/32 (0.0.0.0/0 is refused)."),
    bucket: str = typer.Option(..., "--bucket", help="The S3 bucket of stores and checkpoints: "
                               "the only one the nodes' profiles may use."),
    out: Path = typer.Option(Path("aws-setup.sh"), "--out", help="The bash script to write."),
    template: Path = typer.Option(Path("cluster.yaml"), "--template",
                                  help="The cluster config to render (region and name from it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing script."),
):
    """Write a script that creates the AWS security group (SSH from --ssh-cidr only) and the
    least-privilege IAM profiles, then renders cluster.yaml as cluster.mine.yaml."""
    from raviso.cluster.aws import write_setup_script

    print(write_setup_script(template, ssh_cidr, bucket, out, overwrite=overwrite))


@app.command()
def copy(
    src: str = typer.Argument(..., help="Store, finished RUN or directory: path or URI."),
    dst: str = typer.Argument(..., help="Where to put it: path, s3://bucket/key, gs://..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing DST."),
):
    """Copy a store or RUN to/from object storage or a shared filesystem (commit marker last)."""
    from raviso.data.remote import copy_tree, summary

    print(summary(copy_tree(src, dst, overwrite=overwrite)))


# ---- bench --------------------------------------------------------------------------------------
@bench_app.command("convert")
def bench_convert_cmd(
    quick: bool = typer.Option(False, "--quick", help=f"~0.3 GB input instead of the course's "
                               "167,884 x 18,965 (12.7 GB)."),
    rows: Optional[int] = typer.Option(None, "--rows", help="Rows of the generated input."),
    src: Optional[Path] = typer.Option(None, "--src", help="Measure on this course HDF5 instead "
                                       "of a generated one."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Where to write the scratch "
                                           "files (removed afterwards; default: system temp)."),
    reps: Optional[int] = typer.Option(None, "--reps", help="Best of N (default 3, or 1 full)."),
    ray: bool = typer.Option(True, "--ray/--no-ray", help="Also measure the Ray Data read."),
    address: Optional[str] = ADDRESS,
) -> None:
    """HDF5 -> Parquet conversion GB/s vs a plain HDF5 read, and the store read back."""
    from bench.convert import run

    run(quick=quick, rows=rows, workdir=workdir, src=src, reps=reps, ray=ray, address=address,
        echo=typer.echo)


@bench_app.command("train")
def bench_train_cmd(
    quick: bool = typer.Option(False, "--quick", help="Fewer steps and epochs (a few minutes)."),
    address: Optional[str] = ADDRESS,
) -> None:
    """Paper-size VAE samples/s: raviso pretrain vs the same loop in plain torch, vs the seed
    loop, vs the GEMM bound, and Ray Data ingest vs consumption (issue 3)."""
    from bench.train import main as bench_train

    bench_train(quick=quick, address=address)



def main() -> None:
    import signal

    from raviso.core import malloc

    malloc.reexec()     # huge pages for this process's big buffers (raviso.core.malloc)

    from raviso.core.errors import RavisoError

    # SIGTERM (kill, job schedulers) unwinds like Ctrl-C, so atomic writers remove their temp dirs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:  # typer >= 0.20 vendors click as typer._click; older typer uses click itself
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        import click.exceptions as cx

    try:
        rc = app(standalone_mode=False)   # we print usage errors ourselves, as one line
    except getattr(cx, "NoArgsIsHelpError", ()) as e:
        print(e.format_message())
        sys.exit(0)
    except cx.UsageError as e:
        names, ctx = [], e.ctx
        while ctx is not None and ctx.parent is not None:   # sub-command path, without argv[0]
            names.insert(0, ctx.info_name)
            ctx = ctx.parent
        sub = " ".join(names)
        where = f"raviso {sub}" if sub else "raviso"
        msg = " ".join(e.format_message().split())
        print(f"raviso: error: {sub + ': ' if sub else ''}{msg} (see {where} --help)",
              file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("raviso: interrupted", file=sys.stderr)
        sys.exit(130)
    except RavisoError as e:
        print(f"raviso: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("raviso: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:   # last resort: a bug or an input no check foresaw
        if DEBUG["on"] or os.environ.get("RAVISO_DEBUG"):
            raise
        print(f"raviso: error: unexpected {type(e).__name__}: {_first_line(e)} (a bug or an "
              "unforeseen input; `raviso --debug ...` shows the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"


if __name__ == "__main__":
    main()
