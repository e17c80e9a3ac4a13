"""Commands for final models and the whole pipeline: fit, predict, demo."""

from pathlib import Path
import typer

from raviso.demo import DemoConfig
from raviso.serve.config import FitConfig, PredictConfig

from .options import configured, out_option


@configured(cfg=FitConfig)
def fit_cmd(
    store: str = typer.Argument(..., help="Store with the labelled set."),
    out: Path = out_option("MODEL directory to write."),
    cfg: FitConfig = None,
):
    """Cross-validate the model by donor (MODEL.cv; --cv-folds 0: none), train it on ALL labelled
    samples and save it for raviso predict."""
    from raviso.serve.fit import fit_store

    model = fit_store(store, cfg, out=out, progress=lambda s: typer.echo(s, err=True))
    print(model)


@configured(cfg=PredictConfig)
def predict_cmd(
    model: Path = typer.Argument(..., help="MODEL from raviso fit or raviso cv --save-model."),
    input: Path = typer.Argument(..., help="Gene expression: a store, a TSV/CSV/GCT/Parquet table "
                                 "(genes x samples or samples x genes, TPM or log2(TPM+1)), a "
                                 "course HDF5, an ARCHS4 H5 or an AnnData .h5ad."),
    out: Path = out_option("Output file (.parquet, .tsv or .h5ad)."),
    cfg: PredictConfig = None,
):
    """Predict isoform expression, log2(TPM+1), for new samples."""
    from raviso.serve.predict import predict_file

    print(predict_file(model, input, out, cfg))


@configured(cfg=DemoConfig)
def demo_cmd(cfg: DemoConfig = None):
    """The whole pipeline on built-in synthetic data (small preset), in minutes."""
    from raviso.demo import run_demo

    run_demo(cfg)


COMMANDS = {"fit": fit_cmd, "predict": predict_cmd, "demo": demo_cmd}
