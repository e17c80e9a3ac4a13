"""`CvConfig` and `TuneConfig`: every option of `raviso cv` and `raviso tune`, each written once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import (StageConfig, address_option, option, overwrite_option,
                           pretrained_ae_option, pretrained_option, seed_option,
                           target_dtype_option)

GROUP_BY = ("donor", "none")
FOLD_SCHEMES = ("kfold", "auto", "logo")


def _group_by():
    return option("donor", "donor | none", check=lambda v: v in GROUP_BY,
                  problem="must be donor or none (got {value!r})")


def _fold_scheme(help: str):
    return option("kfold", help, check=lambda v: v in FOLD_SCHEMES + ("tissue",),
                  problem="must be kfold, auto, logo or tissue (got {value!r})")


def _cpus_per_trial(what: str = "(fold, variant) trial"):
    return option(1, f"Logical CPUs reserved per {what}, may be fractional.")


def _gpus_per_trial():
    return option(0, "GPUs per trial, may be fractional (0: CPU only).")


@dataclass(frozen=True)
class CvConfig(StageConfig):
    # what is cross-validated
    pretrained: Path | None = pretrained_option()
    pretrained_ae: Path | None = pretrained_ae_option()
    variants: str | None = option(None, "Comma list; options in brackets make a column of their "
                                  "own, e.g. 'share_net,share_net[context=vae]'. Default: the "
                                  "model raviso fit ships (recommended), share_net, "
                                  "share_net[tissue=False] and the baselines. The paper's "
                                  "variants (vae_ffnn, ae_ffnn, gene_ffnn) and ffnn_plus on "
                                  "request: 'default,paper,ffnn_plus' (a group's variants the "
                                  "store's inputs cannot feed are skipped and listed).")
    variant_options: dict | None = option(None, cli=False)
    epochs: int | None = option(None, "Epochs of the neural variants.")
    seed: int = seed_option("Seed of the folds and of every trial.")
    target_dtype: str = target_dtype_option(
        "auto | float32 | float16: storage of the memory-mapped isoform targets (auto: float16 "
        "above 4 GB of float32; adds ~1e-7 MSE).")
    # the folds
    folds: int = option(5, "Number of cross-validation folds.")
    repeats: int = option(1, "R x k-fold, each repeat a distinct donor partition (fold seeds "
                          "seed, seed+1, ...; a seed repeating a partition is skipped); "
                          "corrected repeated k-fold t-test across all R*k folds.")
    group_by: str = _group_by()
    fold_scheme: str = _fold_scheme("kfold | auto | logo | tissue: auto picks leave-one-group-out "
                                    "or a smaller k for small labelled sets (reported); tissue "
                                    "holds out whole tissues (the models go without the tissue "
                                    "one-hot).")
    train_fraction: float = option(1.0, "Train on this fraction of each fold's training donors "
                                   "(a labelled-size learning curve; same validation rows; "
                                   "nested and seeded).", check=lambda v: 0 < v <= 1,
                                   problem="must be in (0, 1] (got {value!r})")
    # nested tuning
    tune: int = option(0, "Nested CV: a search of N trials inside every outer fold (its "
                       "training rows only) for each tunable variant, scored as <variant>@tuned "
                       "next to the defaults.", check=lambda v: v >= 0,
                       problem="takes a number of trials >= 1 (got {value})")
    tuned_config: Path | None = option(None, "best.json from raviso tune: cross-validate that "
                                       "fixed config as <variant>@tuned.", flag="--config")
    inner_folds: int = option(3, "Inner folds of --tune's search.")
    # where and how it runs
    address: str | None = address_option()
    num_cpus: int | None = option(None, cli=False)
    cpus_per_trial: float = _cpus_per_trial()
    gpus_per_trial: float = _gpus_per_trial()
    max_concurrent: int | None = option(None, "Trials at once [what the CPUs, GPUs and memory "
                                        "allow].")
    max_failures: int = option(2, "Retries of a crashed trial.")
    storage: str | None = option(None, "Tune storage shared by all nodes (multi-node clusters; "
                                 "default .CV.tune beside CV, kept until CV is written).")
    resume: bool = option(False, "Reuse the trials a killed or failed run of this same CV "
                          "finished; run only the others.")
    # what it writes
    save_model: bool = option(False, "Also fit the best savable variant (share_net, ffnn_plus "
                              "or an FFNN) on all samples: CV/model.")
    ship: str | None = option(None, cli=False)      # raviso fit: CV/model is this column
    overwrite: bool = overwrite_option()
    report: bool = option(True, "Write report.md, table1.csv and plots (--no-report: "
                          "results.json only).",
                          flag="--report/--no-report")


@dataclass(frozen=True)
class TuneConfig(StageConfig):
    variant: str = option("", "The variant to tune (gene_ffnn, vae_ffnn, ae_ffnn, pca_ffnn, "
                          "foldvae_ffnn, ...).", required=True)
    trials: int = option(16, "Configs to try (per grid point when the space has grid "
                         "dimensions).")
    space: Path | None = option(None, "JSON search space (default: the variant's, see README).")
    pretrained: Path | None = pretrained_option()
    pretrained_ae: Path | None = pretrained_ae_option()
    max_epochs: int = option(100, "Epoch budget per trial (ASHA's max_t); the chosen epochs "
                             "come from the best curve.", check=lambda v: v >= 1,
                             problem="must be at least 1 (got {value})")
    inner_folds: int = option(3, "Donor-grouped inner folds.")
    scheduler: str = option("asha", "asha | fifo (no early stop).")
    grace: int | None = option(None, "ASHA grace period in epochs [max(3, max_epochs / 10)].")
    group_by: str = _group_by()
    fold_scheme: str = _fold_scheme("kfold | auto | logo")
    seed: int = seed_option("Seed of the inner folds and of every trial.")
    cpus_per_trial: float = _cpus_per_trial("trial")
    gpus_per_trial: float = _gpus_per_trial()
    max_failures: int = option(2, "Restarts of a crashed trial (from its last checkpoint).")
    storage: str | None = option(None, "Tune storage shared by all nodes (multi-node clusters; "
                                 "default TUNE/tune).")
    address: str | None = address_option()
    num_cpus: int | None = option(None, cli=False)
    overwrite: bool = overwrite_option()


@dataclass(frozen=True)
class ReportConfig(StageConfig):
    pretrain: Path | None = option(None, "Run dir: add its curves.")
