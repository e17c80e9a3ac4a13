"""`raviso bench ...`: the benchmarks in bench/ (outside the package), as a typer sub-app. Their
options are config fields like every command's (the configs live here: bench/ is imported
lazily, inside each command)."""

from dataclasses import dataclass
from pathlib import Path

import typer

from raviso.core.config import StageConfig, address_option, option, target_dtype_option

from .options import configured

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Benchmarks that print figures (last line JSON).")


def _quick(help: str):
    return option(False, help)


@dataclass(frozen=True)
class BenchTuneConfig(StageConfig):
    quick: bool = _quick("tiny preset, 4 trials (a smoke test).")
    address: str | None = address_option()


@dataclass(frozen=True)
class BenchScaleConfig(StageConfig):
    quick: bool = _quick("Tiny widths and model (a smoke test).")
    rows_gtex: int | None = option(None, "GTEx rows [17,356].")
    rows_archs4: int | None = option(None, "ARCHS4 rows [20,000].")
    workdir: Path | None = option(None, "Where the synth files, store, runs and CV go [a temp "
                                  "dir, removed].")
    keep: bool = option(False, "Keep the synth files and outputs.")
    max_steps: int | None = option(None, "Pretraining steps [20].")
    epochs: int | None = option(None, "CV / fit epochs [1].")
    variants: str | None = option(None, "CV variants [mean, pca_ridge, vae_ffnn, share_net].")
    target_dtype: str = target_dtype_option()
    synth_rows_gtex: int | None = option(None, "Synthesize only this many GTEx rows, then "
                                         "resample the store up to --rows-gtex (an 'expand' "
                                         "stage).")


@dataclass(frozen=True)
class BenchCvConfig(StageConfig):
    quick: bool = _quick("Smaller trials (a smoke test).")
    profile: bool = option(False, "Instead: one trial's seconds by phase (start-up, data read, "
                           "features, fit, scoring, reliability) per default variant on a "
                           "24-sample x 200k-isoform store.")
    workdir: Path | None = option(None, "--profile: where the store is built (reused when "
                                  "there) [a temp dir, removed].")
    variants: str | None = option(None, "--profile: these variants [the default list].")
    address: str | None = address_option()


@dataclass(frozen=True)
class BenchConvertConfig(StageConfig):
    quick: bool = _quick("~0.3 GB input instead of the course's 167,884 x 18,965 (12.7 GB).")
    rows: int | None = option(None, "Rows of the generated input.")
    src: Path | None = option(None, "Measure on this course HDF5 instead of a generated one.")
    workdir: Path | None = option(None, "Where to write the scratch files (removed afterwards; "
                                  "default: system temp).")
    reps: int | None = option(None, "Best of N (default 3, or 1 full).")
    ray: bool = option(True, "Also measure the Ray Data read.", flag="--ray/--no-ray")
    address: str | None = address_option()


@dataclass(frozen=True)
class BenchTrainConfig(StageConfig):
    quick: bool = _quick("Fewer steps and epochs (a few minutes).")
    address: str | None = address_option()


@app.command("tune")
@configured(cfg=BenchTuneConfig)
def bench_tune_cmd(cfg: BenchTuneConfig = None):
    """ASHA + TPE vs a grid of the same budget: best inner MSE and wall time."""
    from bench.tune import main as bench_tune

    bench_tune(**cfg.kwargs())


@app.command("scale")
@configured(cfg=BenchScaleConfig)
def bench_scale_cmd(cfg: BenchScaleConfig = None) -> None:
    """The course's widths through every stage: per-stage seconds, peak memory (driver + Ray
    workers), object store, disk bytes."""
    from bench.scale import main as bench_scale

    bench_scale(**cfg.kwargs())


@app.command("cv")
@configured(cfg=BenchCvConfig)
def bench_cv_cmd(cfg: BenchCvConfig = None):
    """Parallel efficiency of raviso cv on Ray Tune: 5 folds x 3 variants (--profile: where a
    small-n, wide store's trial time goes)."""
    if cfg.profile:
        from bench.cv_profile import main as bench_profile

        bench_profile(quick=cfg.quick, workdir=cfg.workdir, variants=cfg.variants,
                      address=cfg.address)
        return
    from bench.cv import main as bench_cv

    bench_cv(quick=cfg.quick, address=cfg.address)


@app.command("convert")
@configured(cfg=BenchConvertConfig)
def bench_convert_cmd(cfg: BenchConvertConfig = None) -> None:
    """HDF5 -> Parquet conversion GB/s vs a plain HDF5 read, and the store read back."""
    from bench.convert import run

    run(**cfg.kwargs(), echo=typer.echo)


@app.command("train")
@configured(cfg=BenchTrainConfig)
def bench_train_cmd(cfg: BenchTrainConfig = None) -> None:
    """Paper-size VAE samples/s: raviso pretrain vs the same loop in plain torch, vs the seed
    loop, vs the GEMM bound, and Ray Data ingest vs consumption."""
    from bench.train import main as bench_train

    bench_train(**cfg.kwargs())
