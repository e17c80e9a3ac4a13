"""Drawing the report and pretraining figures never switches matplotlib's
backend (a user's notebook keeps its inline backend) and never imports pyplot."""

from __future__ import annotations

import json
import subprocess
import sys


def test_plots_leave_the_backend_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(
        {"epoch": e, "train_elbo": 10.0 - e, "train_recon": 9.0 - e, "train_kl": 1.0,
         "val_elbo": 11.0 - e}) for e in range(3)) + "\n")
    code = f"""
import sys, matplotlib
matplotlib.use("svg")
from raviso.core.plots import plot_pretraining
paths = plot_pretraining({str(run)!r})
assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\\x89PNG" for p in paths), paths
from raviso.evaluate.report.plots import plot_folds
doc = {{"config": {{"variants": ["a", "b"]}}, "folds": [{{"fold": 0}}, {{"fold": 1}}],
        "trials": [{{"fold": f, "variant": v, "mse": 1.0 + f}} for f in (0, 1) for v in "ab"],
        "noise_floor": {{"mean": 0.5}}}}
p = plot_folds(doc, __import__("pathlib").Path({str(tmp_path / "folds.png")!r}))
assert p.read_bytes()[:4] == b"\\x89PNG"
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"], out.stdout


def test_no_backend_switch_or_pyplot_in_library_code():
    """Every figure of the package (report, tune, pretraining) goes through `Figure`: a source
    scan, so a new plot cannot bring `matplotlib.use` or pyplot back unnoticed."""
    import re
    from pathlib import Path

    import raviso

    pattern = re.compile(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import "
                         r"pyplot")
    offenders = [f"{p}:{k}" for p in Path(raviso.__file__).parent.rglob("*.py")
                 for k, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
