"""`FitConfig` and `PredictConfig`: the options of `raviso fit` and `raviso predict`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import (StageConfig, option, overwrite_option, pretrained_ae_option,
                           pretrained_option, quiet_option, seed_option, target_dtype_option)
from ..trust.domain import DOMAIN_LEVEL
from ..trust.reliability import RELIABLE_R2


@dataclass(frozen=True)
class FitConfig(StageConfig):
    variant: str | None = option(None, "The variant to fit (one of raviso cv's --variants that "
                                 "can be saved) [recommended, or the --config's].")
    pretrained: Path | None = pretrained_option("VAE run (latent 'vae'), for the variants that "
                                                "use it.")
    pretrained_ae: Path | None = pretrained_ae_option()
    epochs: int | None = option(None, "Epochs of a neural variant (default: the variant's).")
    seed: int = seed_option("Random seed of the fit.")
    overwrite: bool = overwrite_option()
    target_dtype: str = target_dtype_option("auto | float32 | float16 (as raviso cv).")
    tuned_config: Path | None = option(None, "best.json from raviso tune: its variant and "
                                       "options.", flag="--config")   # named as in CvConfig
    cv_folds: int = option(5, "Cross-validate the variant (against every baseline) with this "
                           "many donor-grouped folds first, leave-one-donor-out below twice as "
                           "many donors (written as MODEL.cv): MODEL then carries its measured "
                           "MSE, per-isoform reliability and prediction intervals. 0: no CV "
                           "(faster; predict then has no reliability or --interval).",
                           check=lambda v: v == 0 or v >= 2,
                           problem="must be 0 (no CV) or at least 2 (got {value})")


@dataclass(frozen=True)
class PredictConfig(StageConfig):
    fmt: str | None = option(None, "parquet | tsv | h5ad (default: from --out's suffix, else "
                             "parquet).", flag="--format")
    allow_missing: bool = option(False, "Fill genes the input lacks with their training mean "
                                 "(and say how many and which).")
    max_missing: float = option(0.10, "With --allow-missing: refuse when more than this fraction "
                                "of model genes is missing.")
    samples: Path | None = option(None, "Sample sheet (sample, tissue[, donor]; CSV/TSV) giving "
                                  "each sample's tissue.")
    orientation: str | None = option(None, "genes-by-samples | samples-by-genes (default: "
                                     "detected).")
    scale: str | None = option(None, "tpm | log2tpm (default: detected from the value range).")
    dataset: str | None = option(None, "Store dataset to read (default gtex_gene/archs4).")
    interval: float | None = option(
        None, "Conformal prediction intervals at this level (e.g. 0.9): h5ad layers lower/upper, "
        "Parquet columns, or <out>.lower/.upper.tsv. Needs a MODEL with out-of-fold residuals "
        "(raviso fit, unless --cv-folds 0; raviso cv --save-model).",
        check=lambda v: v is None or 0 < v < 1, problem="must be a level in (0, 1), e.g. 0.9 "
        "(got {value!r})")
    units: str = option("log2tpm", "Units to write, comma-separated: log2tpm (always), tpm "
                        "(2^x - 1), fraction (each isoform's share of its gene's TPM).")
    reliable_r2: float = option(RELIABLE_R2, "The per-isoform 'reliable' flag: out-of-fold R^2 "
                                "of the isoform at least this.")
    merged: bool = option(False, "Also write <out>.merged.<unit>.tsv (transcript_id, gene_id, "
                          "one column per sample) and <out>.tx2gene.tsv.")
    unknown_tissue: str = option(
        "tissue-free", "A sample with no tissue or one the MODEL was not trained on: tissue-free "
        "(predicted by the MODEL's tissue-free regressor, with a warning) or error.",
        check=lambda v: v in ("tissue-free", "error"), problem="must be tissue-free or error "
        "(got {value!r})")
    observed: Path | None = option(
        None, "Measured isoforms of the same samples (a transcript table, TPM or log2(TPM+1)): "
        "per-sample QC of their isoform fractions against the predicted ones, z-scores "
        "calibrated on held-out donors (<out>.qc.tsv, <out>.qc_genes.tsv; h5ad obs).")
    domain_level: float = option(
        DOMAIN_LEVEL, "Applicability domain: a sample more unusual than this fraction of the CV's "
        "held-out donor samples is out of domain (obs in_domain / <out>.domain.tsv; its "
        "reliability and intervals are not valid).", check=lambda v: 0 < v < 1,
        problem="must be a fraction in (0, 1), e.g. 0.99 (got {value!r})")
    out_of_domain: str = option(
        "warn", "Samples out of the applicability domain: warn (one line naming them) or error.",
        check=lambda v: v in ("warn", "error"), problem="must be warn or error (got {value!r})")
    overwrite: bool = overwrite_option()
    quiet: bool = quiet_option()
