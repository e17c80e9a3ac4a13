"""`raviso report CV [--pretrain RUN]`: results.json -> report.md, table1.csv and PNG plots.

The report is the `SECTIONS` in reading order, each a function ``(doc, where) -> Section`` (Markdown
lines + the figures it drew); `render` concatenates them. It reads only ``results.json`` (and the
pretraining run for its curves), so it can be re-run at any time without Ray.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ...core.atomic import atomic_file
from ...core.errors import RavisoError
from .appendix import (appendix_section, fold_tests_section, folds_section, pairs_section,
    plots_section, trials_section, tuning_section)
from .intervals import intervals_section
from .meaning import meaning_section
from .plots import mse_grid
from .sections import Section, Where, floors_section, header_section, paper_section
from .tables import (breakdown_section, curves_section, metrics_section, table1_section,
    tissue_section)
from .verdict import leaderboard_section
from ..config import ReportConfig
from ..results import read_results

REPORT = "report.md"
TABLE1 = "table1.csv"

SECTIONS = (header_section, meaning_section, leaderboard_section, floors_section, paper_section,
            table1_section, tissue_section, breakdown_section, intervals_section, metrics_section,
            curves_section, tuning_section,
            pairs_section, folds_section, trials_section, plots_section, appendix_section,
            fold_tests_section)


def sections(doc: dict, where: Where = Where()) -> list[Section]:
    return [make(doc, where) for make in SECTIONS]


def render(doc: dict, where: Where = Where()) -> str:
    """report.md's text; figures are drawn into ``where.cv_dir`` when it is given."""
    return "\n".join(line for s in sections(doc, where) for line in s.lines) + "\n"


def write_table1(doc: dict, path: Path) -> Path:
    variants, rows = mse_grid(doc)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fold"] + variants)
        for row in rows:
            w.writerow([row[0]] + ["" if x is None else f"{x:.6g}" for x in row[1:]])
        w.writerow(["mean"] + ["" if doc["summary"][v]["mse_mean"] is None
                               else f"{doc['summary'][v]['mse_mean']:.6g}" for v in variants])
    return path


def has_curves(run_dir) -> bool:
    """Whether `run_dir` is a pretraining run with per-epoch metrics to plot."""
    from ...core.plots import read_metrics

    if not run_dir:
        return False
    try:
        return bool(read_metrics(run_dir))
    except RavisoError:
        return False


def write_report(cv_dir, cfg: ReportConfig | None = None, **options) -> Path:
    """Write report.md, table1.csv and the plots into `cv_dir`; return report.md's path.
    `options`: ReportConfig's fields as keywords."""
    pretrain = ReportConfig.build(cfg, **options).pretrain
    cv_dir = Path(cv_dir)
    doc = read_results(cv_dir)
    if pretrain is not None and not Path(pretrain).is_dir():
        raise RavisoError("no such pretraining run directory", pretrain)
    text = render(doc, Where(cv_dir, None if pretrain is None else Path(pretrain)))
    write_table1(doc, cv_dir / TABLE1)
    with atomic_file(cv_dir / REPORT) as tmp:
        Path(tmp).write_text(text)
    return cv_dir / REPORT
