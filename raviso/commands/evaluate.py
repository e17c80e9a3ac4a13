"""Evaluation commands: cv, tune, report, study."""

from pathlib import Path
import typer

from raviso.evaluate.config import CvConfig, ReportConfig, TuneConfig
from raviso.evaluate.study.run import StudyConfig

from .options import configured, out_option


@configured(cfg=CvConfig)
def cv_cmd(
    store: str = typer.Argument(..., help="Store with gtex_gene + gtex_isoform (raviso convert)."),
    out: Path = out_option("CV directory to write (results.json, report.md)."),
    cfg: CvConfig = None,
):
    """Cross-validate the variants: every (fold, variant) is a Ray Tune trial."""
    from raviso.evaluate.cv import run_cv

    cv_dir = run_cv(store, cfg, out=out)
    print(cv_dir / ("report.md" if cfg.report else "results.json"))


@configured(cfg=TuneConfig)
def tune_cmd(
    store: str = typer.Argument(..., help="Store with gtex_gene + gtex_isoform."),
    out: Path = out_option("TUNE directory: best.json, trials.parquet, search.png."),
    cfg: TuneConfig = None,
):
    """Search a variant's hyperparameters on Ray Tune (Optuna TPE + ASHA) on inner folds."""
    from raviso.evaluate.tune.command import tune_store

    out_dir = tune_store(store, out, cfg, progress=lambda m: typer.echo(m, err=True))
    print(out_dir / "best.json")


@configured(cfg=ReportConfig)
def report_cmd(
    cv: Path = typer.Argument(..., help="A directory written by raviso cv."),
    cfg: ReportConfig = None,
):
    """Write CV/report.md, CV/table1.csv and plots from CV/results.json."""
    from raviso.evaluate.report.render import write_report

    print(write_report(cv, cfg))


@configured(cfg=StudyConfig)
def study_cmd(
    store: str = typer.Argument(..., help="Store with gtex_gene + gtex_isoform (+ latents)."),
    out: Path = out_option("STUDY directory: study.md, study.json, study.png, "
                           "points/<point>/results.json."),
    cfg: StudyConfig = None,
):
    """When does pretraining help: every context at each labelled size and for held-out tissues,
    on shared folds, with corrected paired tests."""
    from raviso.evaluate.study.run import run_study

    print(run_study(store, cfg, out=out) / "study.md")


COMMANDS = {"cv": cv_cmd, "tune": tune_cmd, "report": report_cmd, "study": study_cmd}
