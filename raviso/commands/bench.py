"""`raviso bench ...`: the benchmarks in bench/ (outside the package), as a typer sub-app."""

from pathlib import Path
from typing import Optional

import typer

from .shared import ADDRESS

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Benchmarks that print figures (last line JSON).")


@app.command("tune")
def bench_tune_cmd(
    quick: bool = typer.Option(False, "--quick", help="tiny preset, 4 trials (a smoke test)."),
    address: Optional[str] = ADDRESS,
):
    """ASHA + TPE vs a grid of the same budget: best inner MSE and wall time."""
    from bench.tune import main as bench_tune

    bench_tune(quick=quick, address=address)


@app.command("scale")
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
    workers), object store, disk bytes."""
    from bench.scale import main as bench_scale

    bench_scale(quick=quick, rows_gtex=rows_gtex, rows_archs4=rows_archs4, workdir=workdir,
                keep=keep, max_steps=max_steps, epochs=epochs, variants=variants,
                target_dtype=target_dtype, synth_rows_gtex=synth_rows_gtex)


@app.command("cv")
def bench_cv_cmd(
    quick: bool = typer.Option(False, "--quick", help="Smaller trials (a smoke test)."),
    profile: bool = typer.Option(False, "--profile", help="Instead: one trial's seconds by phase "
                                 "(start-up, data read, features, fit, scoring, reliability) "
                                 "per default variant on a 24-sample x 200k-isoform store."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="--profile: where the store "
                                           "is built (reused when there) [a temp dir, removed]."),
    variants: Optional[str] = typer.Option(None, "--variants", help="--profile: these variants "
                                           "[the default list]."),
    address: Optional[str] = ADDRESS,
):
    """Parallel efficiency of raviso cv on Ray Tune: 5 folds x 3 variants (--profile: where a
    small-n, wide store's trial time goes)."""
    if profile:
        from bench.cv_profile import main as bench_profile

        bench_profile(quick=quick, workdir=workdir, variants=variants, address=address)
        return
    from bench.cv import main as bench_cv

    bench_cv(quick=quick, address=address)


@app.command("convert")
def bench_convert_cmd(
    quick: bool = typer.Option(False, "--quick", help="~0.3 GB input instead of the course's "
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


@app.command("train")
def bench_train_cmd(
    quick: bool = typer.Option(False, "--quick", help="Fewer steps and epochs (a few minutes)."),
    address: Optional[str] = ADDRESS,
) -> None:
    """Paper-size VAE samples/s: raviso pretrain vs the same loop in plain torch, vs the seed
    loop, vs the GEMM bound, and Ray Data ingest vs consumption."""
    from bench.train import main as bench_train

    bench_train(quick=quick, address=address)
