"""Training commands: pretrain, encode."""

from pathlib import Path
import typer

from raviso.models.vae.config import VAEConfig
from raviso.train.config import EncodeConfig, PretrainConfig, TrainConfig

from .options import configured, out_option


@configured(model=VAEConfig, train=TrainConfig, run=PretrainConfig)
def pretrain_cmd(
    store: str = typer.Argument(..., help="Parquet store with an archs4 dataset (gtex_gene is "
                                "scored each epoch when present)."),
    out: Path = out_option("RUN directory to create (or continue: --resume)."),
    model: VAEConfig = None,
    train: TrainConfig = None,
    run: PretrainConfig = None,
    given: frozenset = frozenset(),
):
    """Pretrain the VAE (or, with --beta 0, the autoencoder) on ARCHS4 with Ray Train DDP."""
    from raviso.train.pretrain import pretrain

    print(pretrain(store, out, model, train, run, given=given))


@configured(cfg=EncodeConfig)
def encode_cmd(
    run: Path = typer.Argument(..., help="Finished pretraining RUN directory."),
    store: str = typer.Argument(..., help="Parquet store in the model's gene order."),
    cfg: EncodeConfig = None,
):
    """Encode a store's samples to posterior means (latent Parquet keyed by sample_id)."""
    from raviso.train.encode import encode

    for name, path in encode(run, store, cfg).items():
        print(f"{name}\t{path}")


COMMANDS = {"pretrain": pretrain_cmd, "encode": encode_cmd}
