"""The report's per-tissue and training-curve figures (PNG, drawn without pyplot), from
results.json alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.atomic import atomic_file
from ..core.plots import new_figure
from .leaderboard import best_baseline
from .report_sections import board

TISSUE_PLOT = "mse_per_tissue.png"
CURVES_PLOT = "training_curves.png"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_tissues(doc: dict, path: Path) -> Path | None:
    """Per-tissue MSE of the leader, the best baseline and `mean`, with the held-out floor."""
    pt = doc.get("per_tissue")
    rows = board(doc)
    if not pt or not rows or rows[0]["mse_mean"] is None:
        return None
    shown = list(dict.fromkeys(v for v in (rows[0]["variant"], best_baseline(rows), "mean")
                               if v and any(v in e["mse"] for e in pt.values())))
    tissues = sorted(pt, key=lambda t: -pt[t]["n"])
    y = np.arange(len(tissues))
    fig = new_figure(figsize=(7, 1.5 + 0.18 * len(tissues)))
    ax = fig.subplots()
    for v, marker in zip(shown, "os^"):
        ax.plot([pt[t]["mse"].get(v, np.nan) for t in tissues], y, marker, ms=4, label=v)
    floor = [pt[t].get("floor_heldout_donor") for t in tissues]
    if any(f is not None for f in floor):
        ax.plot([np.nan if f is None else f for f in floor], y, "k|", ms=8,
                label="held-out-donor floor")
    ax.set_yticks(y, [f"{t} ({pt[t]['n']})" for t in tissues], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("validation MSE, log2(TPM+1)")
    ax.set_title("Validation MSE per tissue (n samples)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_curves(doc: dict, path: Path) -> Path | None:
    """Mean over folds of each trained variant's per-epoch training (solid) and inner-validation
    (dashed) loss."""
    hist: dict = {}
    for t in doc["trials"]:
        if t.get("history"):
            hist.setdefault(t["variant"], []).append(t["history"])
    if not hist:
        return None
    fig = new_figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for i, (v, hs) in enumerate(hist.items()):
        color = f"C{i % 10}"
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            curves = [h.get(key) or [] for h in hs]
            n = max(map(len, curves))
            if n == 0:
                continue
            mean = [np.mean([c[e] for c in curves if len(c) > e]) for e in range(n)]
            # a val curve one longer than the train curve starts before the first epoch (0)
            start = 1 + len(hs[0]["train_loss"]) - len(curves[0]) if key == "val_loss" else 1
            ax.plot(np.arange(start, start + n), mean, style, color=color,
                    label=f"{v} ({'train' if key == 'train_loss' else 'inner val'})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE, log2(TPM+1)")
    ax.set_title("Training curves (mean over folds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, path)
