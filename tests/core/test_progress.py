"""Convert, import and predict report progress with rows/s and an ETA: a rich
bar on a terminal, plain lines when stderr is not a TTY, nothing with --quiet."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from raviso.core.progress import Progress
from raviso.io.course import write_course_hdf5

RAVISO = str(Path(sys.executable).parent / "raviso")


def test_plain_lines_when_not_a_tty():
    buf = io.StringIO()
    clock = iter(np.arange(0.0, 100.0, 1.0))
    with Progress("convert gtex_gene", total=1000, unit="rows", stream=buf,
                  clock=lambda: float(next(clock)), interval=2.0) as p:
        for _ in range(10):
            p.advance(100)
    lines = buf.getvalue().splitlines()
    assert 3 <= len(lines) <= 7, lines               # throttled, plus one final line
    assert all(ln.startswith("raviso: convert gtex_gene: ") for ln in lines)
    assert "rows/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("raviso: convert gtex_gene: 1,000 rows in ") and "rows/s" in lines[-1]


def test_rich_bar_on_a_terminal():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Progress("predict", total=500, unit="rows", console=console) as p:
        p.advance(250)
        p.refresh()
        p.advance(250)
    text = console.file.getvalue()
    assert "predict" in text and "rows/s" in text and "500/500" in text


def test_quiet_prints_nothing():
    buf = io.StringIO()
    with Progress("x", total=10, stream=buf, quiet=True) as p:
        p.advance(10)
    assert buf.getvalue() == ""


def test_convert_import_predict_show_progress_and_quiet(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((50, 8), dtype=np.float32)
    src = write_course_hdf5(tmp_path / "a.hdf5", X, [f"S{i}" for i in range(50)],
                            [f"G{j}" for j in range(8)])
    loud = subprocess.run([RAVISO, "convert", str(tmp_path / "st"), "--archs4", str(src)],
                          capture_output=True, text=True)
    assert loud.returncode == 0, loud.stderr
    assert "raviso: convert: 50 rows in " in loud.stderr and "rows/s" in loud.stderr
    quiet = subprocess.run([RAVISO, "convert", str(tmp_path / "st2"), "--archs4", str(src),
                            "--quiet"], capture_output=True, text=True)
    assert quiet.returncode == 0 and "rows/s" not in quiet.stderr, quiet.stderr


def test_import_and_predict_report_progress(tmp_path, capsys, monkeypatch):
    """Off a terminal (stderr is captured here) the summary line carries rows and rows/s."""
    from test_bad_input import run_cli
    from test_import import COUNTS, gtf, salmon

    q = {s: salmon(tmp_path / "q" / s / "quant.sf", c) for s, c in COUNTS.items()}
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tpath\n" + "".join(f"{s}\t{p}\n" for s, p in q.items()))
    g = gtf(tmp_path / "a.gtf")
    code, _, err = run_cli(capsys, monkeypatch, "import", sheet, tmp_path / "st", "--gtf", g)
    assert code == 0 and "raviso: import: 3 rows in " in err and "rows/s" in err, err
    code, _, err = run_cli(capsys, monkeypatch, "import", sheet, tmp_path / "st2", "--gtf", g,
                           "--quiet")
    assert code == 0 and "rows/s" not in err, err
