"""`CvConfig`: every option of `raviso cv` (see `raviso.evaluate.cv.run_cv` for what each does)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import StageConfig


@dataclass(frozen=True)
class CvConfig(StageConfig):
    # what is cross-validated
    pretrained: str | None = None          # VAE run (latent "vae")
    pretrained_ae: str | None = None       # beta=0 autoencoder run (latent "ae")
    variants: str | None = None            # comma-separated; None: the paper's + baselines
    variant_options: dict | None = None
    epochs: int | None = None
    seed: int = 0
    target_dtype: str = "auto"             # auto | float32 | float16 (labelled targets)
    # the folds
    folds: int = 5
    repeats: int = 1
    group_by: str = "donor"
    fold_scheme: str = "kfold"             # kfold | auto | logo
    # nested tuning
    tune: int = 0
    tuned_config: str | None = None        # best.json from `raviso tune`
    inner_folds: int = 3
    # where and how it runs
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int | None = None
    max_failures: int = 2
    storage: str | None = None
    resume: bool = False
    # what it writes
    save_model: bool = False
    overwrite: bool = False
    report: bool = True
