"""The report's figures (PNG, drawn without pyplot) from results.json alone: MSE per fold, per
tissue, and the training curves."""

from __future__ import annotations

from pathlib import Path

import math

import numpy as np

from ...core.atomic import atomic_file
from ...core.plots import new_figure
from ..stats.leaderboard import best_baseline, board

FOLD_PLOT = "mse_per_fold.png"
TISSUE_PLOT = "mse_per_tissue.png"
CURVES_PLOT = "training_curves.png"


def mse_grid(doc: dict) -> tuple[list[str], list[list]]:
    """(variants, rows): one row per fold ``[fold, mse per variant...]`` (None where failed)."""
    variants = doc["config"]["variants"]
    by = {(t["fold"], t["variant"]): t for t in doc["trials"]}
    rows = []
    for f in doc["folds"]:
        rows.append([f["fold"] + 1] + [by.get((f["fold"], v), {}).get("mse") for v in variants])
    return variants, rows


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_folds(doc: dict, path: Path) -> Path:
    """Validation MSE per fold and variant, with the floors where known."""
    variants, rows = mse_grid(doc)
    fig = new_figure(figsize=(max(5, 1 + 0.9 * len(variants)), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(rows))
    for k, row in enumerate(rows):
        xs = [j + (k - (len(rows) - 1) / 2) * width for j in range(len(variants))]
        ax.bar(xs, [math.nan if v is None else v for v in row[1:]], width, label=f"fold {row[0]}")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("validation MSE, log2(TPM+1)")
    for key, label, style in (("floor_heldout_donor", "held-out-donor floor", "-"),
                              ("noise_floor", "measurement floor", "--")):
        floor = (doc.get(key) or {}).get("mean")
        if floor:
            ax.axhline(floor, color="k", ls=style, lw=1, label=label)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Validation MSE per fold")
    return _save(fig, path)


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
