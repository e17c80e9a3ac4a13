"""Training commands: pretrain, encode."""

from pathlib import Path
from typing import Optional

import typer

from raviso.models.vae_config import VAEConfig
from raviso.train.config import PretrainConfig, TrainConfig

from .options import configured
from .shared import ADDRESS


@configured(model=VAEConfig, train=TrainConfig, run=PretrainConfig)
def pretrain_cmd(
    store: str = typer.Argument(..., help="Parquet store with an archs4 dataset (gtex_gene is "
                                "scored each epoch when present)."),
    out: Path = typer.Option(..., "--out", help="RUN directory to create (or continue: --resume)."),
    model: VAEConfig = None,
    train: TrainConfig = None,
    run: PretrainConfig = None,
    given: frozenset = frozenset(),
):
    """Pretrain the VAE (or, with --beta 0, the autoencoder) on ARCHS4 with Ray Train DDP."""
    from raviso.train.pretrain import pretrain

    print(pretrain(store, out, model, train, run, given=given))


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


COMMANDS = {"pretrain": pretrain_cmd, "encode": encode_cmd}
