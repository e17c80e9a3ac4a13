"""Pretraining curves (the paper's Figures 3 and 4): ELBO, reconstruction and KL per epoch for
training, held-out ARCHS4 and GTEx, one PNG each, from ``RUN/metrics.jsonl``.

Called by `raviso pretrain` at the end of a run and by `raviso report --pretrain RUN`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_file
from .errors import RavisoError

SERIES = (("train", "training (ARCHS4)"), ("val", "held-out ARCHS4"), ("gtex", "GTEx"))
PANELS = (("elbo", "ELBO (nats per sample)"), ("recon", "reconstruction NLL (nats per sample)"),
          ("kl", "KL(q(z|x) || p(z)) (nats per sample)"))


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise RavisoError("no metrics.jsonl (not a pretraining run?)", path.parent)
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise RavisoError(f"corrupt metrics.jsonl: {e}", path) from None


def new_figure(**kwargs):
    """A matplotlib `Figure` drawn without pyplot. Library code never calls `matplotlib.use` or
    pyplot: either would switch or register the backend of a user's notebook or GUI session. A
    bare Figure renders PNG through Agg by itself and is freed with its last reference."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_pretraining(run_dir, out_dir=None) -> list[Path]:
    """Write pretrain_elbo.png, pretrain_recon.png, pretrain_kl.png into `out_dir` (default
    `run_dir`); returns their paths."""
    records = read_metrics(run_dir)
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for term, label in PANELS:
        fig = new_figure(figsize=(5.5, 3.8), dpi=110)
        ax = fig.subplots()
        for key, name in SERIES:
            pts = [(r["epoch"], r[f"{key}_{term}"]) for r in records if f"{key}_{term}" in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"Pretraining: {term}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"pretrain_{term}.png"
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png")
        paths.append(path)
    return paths
