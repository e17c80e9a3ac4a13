"""`raviso bench tune [--quick]`: ASHA + TPE search against a plain grid of the same budget.

On the ``small`` synthetic preset (1,500 labelled samples, 1,750 genes; ``--quick``: ``tiny``),
the same variant (``gene_ffnn``: no pretrained run needed), the same inner donor-grouped folds and
the same epoch budget per trial are searched twice on Ray Tune:

- grid: 16 configs (4 learning rates log-spaced over the default range x the first 4 widths of
  the default space), every trial trained to the full budget (FIFO);
- search: 16 trials of Optuna TPE over the whole default space with the ASHA scheduler stopping
  trials on their per-epoch inner-validation MSE.

Reported: the best inner-validation MSE each reached and its wall time (and epochs trained). The
LAST line is one JSON object with ``asha_best_mse``, ``grid_best_mse``, ``asha_seconds``,
``grid_seconds``. Target: ``asha_best_mse <= 1.01 * grid_best_mse`` in ``<= 0.5 x`` the grid's
time. Wall times need an otherwise idle machine: the JSON records the load average around each run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANT = "gene_ffnn"
FULL = dict(preset="small", trials=16, epochs=30, lrs=4, widths=4)
QUICK = dict(preset="tiny", trials=4, epochs=4, lrs=2, widths=2)


def grid_space(space: dict, lrs: int, widths: int) -> dict:
    """lrs log-spaced learning rates over the space's range x its first `widths` widths."""
    lo, hi = space["lr"]["loguniform"]
    return {"lr": {"grid": [float(v) for v in np.geomspace(lo, hi, lrs + 2)[1:-1]]},
            "hidden": {"grid": space["hidden"]["choice"][:widths]}}


def labelled_preset(preset: str, workdir: Path, seed: int = 0):
    """The preset's labelled set, written and read back through synth + convert (the real path)."""
    from raviso.data import Store
    from raviso.data.labelled import Labelled
    from raviso.io.convert import convert
    from raviso.synth.generate import generate

    generate(workdir / "synth", preset=preset, seed=seed)
    convert(workdir / "store", workdir / "synth", checksum=False)
    return Labelled.from_store(Store(workdir / "store"))


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def run_bench(quick: bool = False, address: str | None = None, seed: int = 0) -> dict:
    from raviso.core.ray_session import init_ray
    from raviso.evaluate.config import TuneConfig
    from raviso.evaluate.tune.search import SearchRun, search
    from raviso.evaluate.tune.space import default_space

    size = QUICK if quick else FULL
    space = default_space(VARIANT)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = labelled_preset(size["preset"], tmp, seed)
        init_ray(address=address, num_cpus=None if address else os.cpu_count())
        rows = np.arange(data.n)
        common = dict(variant=VARIANT, trials=size["trials"], max_epochs=size["epochs"],
                      seed=seed, max_failures=0)
        runs = {}
        for name, sp, sched in (("asha", space, "asha"),
                                ("grid", grid_space(space, size["lrs"], size["widths"]), "fifo")):
            before = loadavg()
            out = search(data, rows, sp, TuneConfig(scheduler=sched, **common),
                         SearchRun(tmp / "tune", name=f"bench-{name}"),
                         base_options={"seed": seed})
            runs[name] = (out, before, loadavg())
    (a, a0, a1), (g, g0, g1) = runs["asha"], runs["grid"]
    res = {"bench": "tune", "quick": quick, "preset": size["preset"], "variant": VARIANT,
           "n_samples": int(data.n), "trials": size["trials"], "max_epochs": size["epochs"],
           "slots": a.best["search"]["max_concurrent_trials"],
           "asha_best_mse": a.best["inner_val_mse"], "grid_best_mse": g.best["inner_val_mse"],
           "asha_seconds": round(a.wall_seconds, 2), "grid_seconds": round(g.wall_seconds, 2),
           "asha_epochs_trained": a.best["search"]["epochs_trained"],
           "grid_epochs_trained": g.best["search"]["epochs_trained"],
           "asha_stopped_early": a.best["search"]["stopped_early"],
           "asha_algorithm": a.best["search"]["algorithm"],
           "asha_best_config": a.best["options"], "grid_best_config": g.best["options"],
           "loadavg_1m": {"asha": [a0, a1], "grid": [g0, g1]}}
    res["mse_ratio"] = round(res["asha_best_mse"] / res["grid_best_mse"], 4)
    res["time_ratio"] = round(res["asha_seconds"] / res["grid_seconds"], 3)
    res["target_met"] = res["mse_ratio"] <= 1.01 and res["time_ratio"] <= 0.5
    return res


def main(quick: bool = False, address: str | None = None) -> dict:
    from rich.console import Console
    from rich.table import Table

    t0 = time.perf_counter()
    r = run_bench(quick=quick, address=address)
    table = Table(title=f"raviso bench tune: {r['variant']} on the {r['preset']} preset, "
                        f"{r['trials']} trials x up to {r['max_epochs']} epochs")
    for col in ("", "best inner MSE", "wall (s)", "epochs trained"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row(f"ASHA + {r['asha_algorithm']}", f"{r['asha_best_mse']:.5f}",
                  f"{r['asha_seconds']:.1f}", str(r["asha_epochs_trained"]))
    table.add_row("grid (FIFO)", f"{r['grid_best_mse']:.5f}", f"{r['grid_seconds']:.1f}",
                  str(r["grid_epochs_trained"]))
    Console().print(table)
    print(f"ASHA/grid: MSE x{r['mse_ratio']}, time x{r['time_ratio']} (target <= 1.01 and "
          f"<= 0.5: {'met' if r['target_met'] else 'NOT met'}; load average {r['loadavg_1m']}; "
          f"bench total {time.perf_counter() - t0:.0f} s)")
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
