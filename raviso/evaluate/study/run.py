"""`raviso study`: when does pretraining on the compendium help, measured on shared folds.

One `raviso cv` per point of the study: donor-grouped CV at each labelled size (`--train-fraction`:
a nested, seeded subset of each fold's training donors, scored on the same validation rows) and
held-out tissues (`--fold-scheme tissue`). Every point runs the same columns: the context models
with each context (PCA, VAE, AE, VAE+PCA, none), the paper's latent and gene FFNNs, the strongest
baselines and the recommended model; every point shares its fold seed, so the tests are paired.
`raviso.evaluate.study.report` turns the points into study.json, study.md and study.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.atomic import atomic_dir, check_writable_target
from ...core.config import (StageConfig, address_option, option, overwrite_option,
                             pretrained_ae_option, pretrained_option, seed_option)
from ...core.errors import RavisoError
from ..config import CvConfig

CONTEXTS = ("pca", "vae", "ae", "vae+pca", "none", "finetune")
BASELINE_CANDIDATES = ("pca_tissue_ridge", "isoform_fraction_tissue", "pca_ridge",
                       "isoform_fraction_fit")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        return []


@dataclass(frozen=True)
class StudyConfig(StageConfig):
    pretrained: Path | None = pretrained_option("VAE run (context 'vae').")
    pretrained_ae: Path | None = pretrained_ae_option("Autoencoder (beta=0) run (context 'ae').")
    fractions: str = option("0.02,0.05,0.1,0.25,1", "Labelled sizes: fractions of each fold's "
                            "training donors (\"\" with --tissue: only held-out tissues).",
                            check=lambda v: not str(v).strip() or bool(_floats(v)) and all(
                                0 < f <= 1 for f in _floats(v)),
                            problem="must be a comma list of numbers in (0, 1] (got {value!r})")
    tissue: bool = option(True, "Also hold out whole tissues (--fold-scheme tissue).",
                          flag="--tissue/--no-tissue")
    contexts: str = option(",".join(CONTEXTS), "Contexts of the context models (pca, vae, ae, "
                           "vae+pca, none, finetune: the VAE's encoder fine-tuned, share_net "
                           "only); those without their run are left out.")
    models: str = option("share_net", "Context models (share_net, ffnn_plus).")
    others: str = option("vae_ffnn,gene_ffnn,recommended", "More columns at every point "
                         "(the strongest registered baselines are always added).")
    folds: int = option(5, "Folds per point.", check=lambda v: v >= 2, problem="must be >= 2")
    folds_full: int | None = option(None, "Folds at fraction 1 and for held-out tissues, where "
                                    "fits are slowest [--folds].")
    recommended_full: bool = option(True, "Score recommended at fraction 1 and for held-out "
                                    "tissues too (from select_below samples up it is share_net "
                                    "with the context its inner CV chooses given --pretrained, "
                                    "else share_net itself, which the report then uses when it "
                                    "is left out).",
                                    flag="--recommended-full/--no-recommended-full")
    repeats_small: int = option(2, "Repeats (different folds and donor subsets) at fractions "
                                "<= 0.1.", check=lambda v: v >= 1, problem="must be >= 1")
    epochs: int | None = option(30, "Epoch bound of the neural variants.")
    compact: bool = option(False, "A short study: fractions 0.05 and 1, contexts pca and vae, "
                           "no paper FFNNs.")
    seed: int = seed_option("Seed of the folds, the donor subsets and every trial.")
    num_cpus: int | None = option(None, cli=False)
    address: str | None = address_option()
    overwrite: bool = overwrite_option()


@dataclass(frozen=True)
class Point:
    name: str              # "f0.05", "f1", "tissue"
    fold_scheme: str
    fraction: float
    repeats: int
    folds: int


def study_points(cfg: StudyConfig) -> list[Point]:
    fractions = [0.05, 1.0] if cfg.compact else sorted(set(_floats(cfg.fractions)))
    full = cfg.folds_full or cfg.folds
    points = [Point(f"f{f:g}", "kfold", f, cfg.repeats_small if f <= 0.1 else 1,
                    full if f >= 1 else cfg.folds) for f in fractions]
    if cfg.tissue:
        points.append(Point("tissue", "tissue", 1.0, 1, full))
    return points


def study_variants(cfg: StudyConfig) -> list[str]:
    """The columns of every point: context model x context, then the others and baselines."""
    from ...models.variants import REGISTRY

    have = {"vae": cfg.pretrained is not None, "ae": cfg.pretrained_ae is not None,
            "finetune": cfg.pretrained is not None}
    contexts = ["pca", "vae"] if cfg.compact else [c.strip() for c in cfg.contexts.split(",")]
    contexts = [c for c in contexts if all(have.get(p, True) for p in c.split("+"))]
    out = []
    for m in [x.strip() for x in cfg.models.split(",") if x.strip()]:
        out += [m if c == "pca" else f"{m}[context={c}]" for c in contexts
                if c != "finetune" or m == "share_net"]
    others = [x.strip() for x in cfg.others.split(",") if x.strip()]
    if cfg.compact:
        others = [x for x in others if x not in ("vae_ffnn", "gene_ffnn")]
    out += [o for o in others if o != "vae_ffnn" or have["vae"]]
    out += [b for b in BASELINE_CANDIDATES if b in REGISTRY]
    return list(dict.fromkeys(out))


def point_config(cfg: StudyConfig, point: Point, variants: list[str]) -> CvConfig:
    if point.fraction >= 1 and not cfg.recommended_full:
        variants = [v for v in variants if v != "recommended"]
    return CvConfig(pretrained=cfg.pretrained, pretrained_ae=cfg.pretrained_ae,
                    variants=",".join(variants), epochs=cfg.epochs, seed=cfg.seed,
                    folds=point.folds, repeats=point.repeats, fold_scheme=point.fold_scheme,
                    train_fraction=point.fraction, address=cfg.address, num_cpus=cfg.num_cpus,
                    report=False)


def run_study(store, cfg: StudyConfig | None = None, *, out=None, progress=print,
              **options) -> Path:
    """Every point's CV into OUT/points/<point>/, then study.json, study.md and study.png."""
    from .report import write_study

    cfg = StudyConfig.build(cfg, **options)
    if out is None:
        raise RavisoError("--out is required")
    out = check_writable_target(Path(out), cfg.overwrite)
    points, variants = study_points(cfg), study_variants(cfg)
    if not points:
        raise RavisoError("raviso study has no point to run: --fractions is empty and "
                          "--no-tissue is set")
    from ...models.variants import is_context_model

    if not any(is_context_model(v) for v in variants):
        raise RavisoError("raviso study needs a context model in --models")
    from ..cv import run_cv

    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        (Path(tmp) / "points").mkdir()
        for i, p in enumerate(points):
            progress(f"study point {i + 1}/{len(points)}: {p.name} ({p.fold_scheme}, "
                     f"fraction {p.fraction:g}, {p.repeats} x {p.folds} folds)")
            run_cv(store, point_config(cfg, p, variants), out=Path(tmp) / "points" / p.name,
                   progress=progress)
        write_study(Path(tmp), [p.name for p in points],
                    {k: str(v) if isinstance(v, Path) else v for k, v in cfg.kwargs().items()})
    return out
