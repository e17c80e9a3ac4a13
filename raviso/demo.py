"""`raviso demo [--out DIR]`: the whole pipeline (synth, convert, pretrain VAE and autoencoder,
encode, cv, report) on the ``small`` synthetic preset in one Ray session, in minutes. What it
writes and why its sizes: docs/stages.md."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .core.atomic import OUTPUT_MARKER, check_replaceable
from .core.config import StageConfig, address_option, option, overwrite_option
from .core.errors import RavisoError

SEED = 0                 # pretraining and fold seed
WORLD_SEED = 20261205    # the synthetic world: never used to choose defaults (docs/design-worlds.md)
PRESET = "small"
VAE_MODEL = {"hidden": [256], "latent_dim": 32}
PRETRAIN = {"epochs": 6, "batch_size": 128, "lr": 1e-3, "workers": 1, "cpus_per_worker": 1.0}
# the short-run lr/epochs suit the paper's FFNNs; share_net keeps its own (docs/stages.md), and
# so does recommended (share_net itself at this size: the model `raviso fit` ships)
_SHARE_NET = {"epochs": 30, "lr": 3e-3}
CV = {"folds": 5, "epochs": 20, "variant_options": {"lr": 1e-3, "batch_size": 64,
                                                    "share_net": _SHARE_NET,
                                                    "recommended": _SHARE_NET}}
# the demo shows the paper's variants next to raviso's models (a plain `raviso cv` runs them only
# on request): the default list, the paper's and ffnn_plus
VARIANTS = "default,paper,ffnn_plus"


@dataclass(frozen=True)
class DemoConfig(StageConfig):
    """The options of `raviso demo`."""

    out: Path = option(Path("raviso-demo"), "Everything is written under it.")
    overwrite: bool = overwrite_option()
    address: str | None = address_option()


def run_demo(cfg: DemoConfig | None = None, *, console=None, **options) -> Path:
    """Run every stage into `cfg.out`; return the report's path. `options`: DemoConfig fields
    replacing `cfg`'s."""
    cfg = DemoConfig.build(cfg, **options)
    out, overwrite, address = cfg.out, cfg.overwrite, cfg.address
    from rich.console import Console

    from .io.convert import convert
    from .evaluate.cv import run_cv
    from .train.encode import encode
    from .train.pretrain import pretrain
    from .models.vae.config import VAEConfig
    from .train.config import PretrainConfig, TrainConfig
    from .core.ray_session import init_ray
    from .synth.generate import generate

    con = console or Console()
    out = _fresh_dir(Path(out), overwrite)
    t_start = time.perf_counter()
    steps = []

    def step(title, fn):
        t0 = time.perf_counter()
        con.rule(f"[bold]{len(steps) + 1}. {title}")
        result = fn()
        dt = time.perf_counter() - t0
        steps.append((title, dt))
        con.print(f"[green]done[/] {title} in {dt:.0f} s "
                  f"(total {time.perf_counter() - t_start:.0f} s)")
        return result

    log = lambda msg: con.print(f"  {msg}")  # noqa: E731
    # one Ray for every stage: a logical CPU more than the cores, so the pretraining worker
    # leaves Ray Data a CPU (the Train + Data hang, see docs)
    init_ray(address=address, num_cpus=None if address else (os.cpu_count() or 1) + 1)
    for name in ("ray.data", "ray.tune", "ray.train"):   # the demo prints its own progress
        logging.getLogger(name).setLevel(logging.WARNING)
    store, runs = out / "store", out / "runs"
    runs.mkdir()
    step(f"synthetic data ({PRESET} preset)",
         lambda: generate(out / "synth", preset=PRESET, seed=WORLD_SEED, fmt="hdf5",
                          log=log))
    step("convert to the Parquet store", lambda: convert(store, out / "synth", log=log))
    for name, beta in (("vae", 1.0), ("ae", 0.0)):
        step(f"pretrain the {'VAE' if beta else 'autoencoder (beta=0)'} on ARCHS4",
             lambda name=name, beta=beta: pretrain(
                 store, runs / name, VAEConfig(**VAE_MODEL, beta=beta),
                 TrainConfig(**PRETRAIN, seed=SEED), PretrainConfig(address=address)))
        step(f"encode GTEx with the {name} run",
             lambda name=name: encode(runs / name, store, which="gtex", address=address))
    cv_dir = step("cross-validate raviso's models, the paper's variants and the baselines",
                  lambda: run_cv(store, pretrained=runs / "vae", pretrained_ae=runs / "ae",
                                 variants=VARIANTS, folds=CV["folds"], epochs=CV["epochs"],
                                 seed=SEED, out=out / "cv", address=address, save_model=True,
                                 variant_options=CV["variant_options"], progress=log))
    return _finish(con, cv_dir, runs, steps, t_start)


def _fresh_dir(out: Path, overwrite: bool) -> Path:
    """`out` created empty with the raviso output marker (an old demo replaced with
    `overwrite`)."""
    import shutil

    if out.exists():
        if not overwrite:
            raise RavisoError("already exists (pass --overwrite to replace it)", out)
        if not (out / "store" / "manifest.json").is_file():   # demos from before the marker
            check_replaceable(out)
        shutil.rmtree(out)
    if not out.parent.is_dir():
        raise RavisoError("parent directory does not exist", out.parent)
    out.mkdir()
    (out / OUTPUT_MARKER).write_text("raviso demo\n")     # --overwrite may replace it later
    return out


def _finish(con, cv_dir: Path, runs: Path, steps: list, t_start: float) -> Path:
    """The report, the time of each step and the leaderboard; returns the report's path."""
    from .evaluate.report.render import write_report

    report = write_report(cv_dir, pretrain=runs / "vae")
    total = time.perf_counter() - t_start
    con.rule("[bold]demo finished")
    for title, dt in steps:
        con.print(f"  {dt:6.0f} s  {title}")
    con.print(f"  {total:6.0f} s  total")
    _summary(con, cv_dir)
    con.print(f"report: [bold]{report}[/]")
    print(report)
    return report


def _summary(con, cv_dir: Path) -> None:
    """The report's leaderboard in the console: best first, x the held-out-donor floor, and the
    Holm-adjusted corrected p against the best baseline."""
    from .evaluate.stats.leaderboard import leaderboard
    from .evaluate.results import read_results

    doc = read_results(cv_dir)
    for r in doc.get("leaderboard") or leaderboard(doc):
        if r["mse_mean"] is None:
            con.print(f"  {r['variant']:22s} [red]failed on every fold[/]")
            continue
        x, vs = r.get("x_floor_heldout_donor"), r.get("vs_best_baseline") or {}
        con.print(f"  {r['rank']:2d}. {r['variant']:20s} {r['kind']:8s} mean validation MSE "
                  f"{r['mse_mean']:.4f}" + (f", {x:.2f} x held-out-donor floor" if x else "")
                  + (f", p Holm {vs['p_holm']:.2g} vs {vs['baseline']}"
                     if vs.get("p_holm") is not None else ""))
