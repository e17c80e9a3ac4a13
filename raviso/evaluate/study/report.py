"""The pretraining study's numbers, words and plot, from its points' results.json alone.

For every point (labelled size, or held-out tissues) and every context model: each non-PCA context
minus the PCA context, per fold, with the corrected resampled t-test (Nadeau-Bengio over folds;
Bouckaert-Frank over the folds of all repeats) and its 95% interval; and the learning curve of the
recommended model and share_net against the best baseline of that point, tested the same way.
Each contrast (one context column minus PCA, or one model minus the best baseline) is a family
over the study's points: its p-values are Holm-adjusted across the points (``p_holm``), and the
verdict calls a difference significant only when its Holm p < 0.05. study.md says in one sentence
where the pretrained latent helps, where it hurts and by how much.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.atomic import atomic_file
from ...core.plots import new_figure
from ...models.recommended import SELECT_BELOW
from ..config import CvConfig

ALPHA = 0.05


def load_point(point_dir: Path) -> dict:
    """Per-fold MSE of every variant (folds where all succeeded), sizes, scheme and fraction."""
    doc = json.loads((Path(point_dir) / "results.json").read_text())
    cfg, folds = doc["config"], doc["folds"]
    ok = {(t["fold"], t["variant"]): t["mse"] for t in doc["trials"] if t["status"] == "ok"}
    variants = [v for v in cfg["variants"] if all((f["fold"], v) in ok for f in folds)]
    per_fold = {v: [ok[(f["fold"], v)] for f in folds] for v in variants}
    given = lambda k: cfg.get(k, CvConfig.__dataclass_fields__[k].default)  # noqa: E731
    return {"scheme": given("fold_scheme"), "fraction": given("train_fraction"),
            "repeats": int((doc.get("grouping") or {}).get("repeats") or given("repeats")),
            "variants": variants, "per_fold": per_fold,
            "n_train": [f["n_train"] for f in folds], "n_test": [f["n_test"] for f in folds],
            "mean": {v: float(np.mean(x)) for v, x in per_fold.items()}}


def compare(point: dict, a: str, b: str) -> dict:
    """a minus b over the point's folds: corrected t-test, 95% CI, relative difference."""
    from ..stats.paired import corrected_repeated_t

    d = np.subtract(point["per_fold"][a], point["per_fold"][b])
    test = corrected_repeated_t(d, point["n_train"], point["n_test"], point["repeats"])
    return {"a": a, "b": b, "mean_a": point["mean"][a], "mean_b": point["mean"][b],
            "diff": test["mean_diff"], "ci95": test["ci95"], "p": test["p"], "p_holm": None,
            "k": test["k"],
            "relative": test["mean_diff"] / point["mean"][b] if point["mean"][b] else None}


def _kind(variant: str) -> str:
    from ...models.variants import spec

    return spec(variant).kind


def _context_models(variants) -> list[str]:
    from ...models.variants import base_name, is_context_model

    return [v for v in variants if v == base_name(v) and is_context_model(v)]


def analyse(points: dict[str, dict]) -> dict:
    """study.json's body: per point, the context contrasts and the curve against the baseline."""
    rows = {}
    for name, pt in points.items():
        baselines = [v for v in pt["variants"] if _kind(v) == "baseline"]
        best = min(baselines, key=pt["mean"].get) if baselines else None
        contrasts = [compare(pt, f"{m}[context={c}]", m)
                     for m in _context_models(pt["variants"])
                     for c in ("vae", "ae", "vae+pca", "none", "finetune")
                     if f"{m}[context={c}]" in pt["per_fold"]]
        if "recommended" not in pt["per_fold"] and "share_net" in pt["per_fold"] \
                and min(pt["n_train"]) >= SELECT_BELOW \
                and "share_net[context=vae]" not in pt["per_fold"]:   # then it is share_net
            pt["per_fold"]["recommended"] = pt["per_fold"]["share_net"]
            pt["mean"]["recommended"] = pt["mean"]["share_net"]
        curve = [compare(pt, v, best) for v in ("recommended", "share_net")
                 if best and v in pt["per_fold"]]
        rows[name] = {"scheme": pt["scheme"], "fraction": pt["fraction"],
                      "repeats": pt["repeats"], "folds": len(pt["n_train"]),
                      "n_train": float(np.mean(pt["n_train"])), "mean_mse": pt["mean"],
                      "best_baseline": best, "contexts": contrasts, "vs_baseline": curve}
    adjust_across_points(rows)
    return {"points": rows, "verdict": verdict(rows)}


def adjust_across_points(rows: dict) -> None:
    """``p_holm`` of every contrast: Holm over the points for the same contrast (the same column
    a minus PCA, or the same model minus its point's best baseline)."""
    from ..stats.paired import holm

    for key in ("contexts", "vs_baseline"):
        families: dict[str, list[dict]] = {}
        for row in rows.values():
            for c in row[key]:
                families.setdefault(c["a"], []).append(c)
        for tests in families.values():
            for c, p in zip(tests, holm([c["p"] for c in tests])):
                c["p_holm"] = p


def _where(name: str, row: dict) -> str:
    return ("held-out tissues" if row["scheme"] == "tissue"
            else f"~{row['n_train']:.0f} training samples")


def verdict(rows: dict) -> str:
    """One sentence: where the VAE context helps / hurts share_net (Holm-adjusted p across the
    points < 0.05) and by how much."""
    helps, hurts, neutral = [], [], []
    for name, row in rows.items():
        for c in row["contexts"]:
            p = c.get("p_holm")
            if c["a"] != "share_net[context=vae]" or p is None:
                continue
            text = f"{_where(name, row)} ({100 * c['relative']:+.1f}%, Holm p = {p:.3g})"
            (helps if p < ALPHA and c["diff"] < 0 else
             hurts if p < ALPHA and c["diff"] > 0 else neutral).append(text)
    if not (helps or hurts or neutral):
        return "No VAE-context column was run (give --pretrained)."
    parts = [f"the pretrained VAE context helps share_net at {', '.join(helps)}" if helps else
             "the pretrained VAE context never helps share_net significantly"]
    if hurts:
        parts.append(f"it hurts at {', '.join(hurts)}")
    if neutral:
        parts.append(f"and makes no significant difference at {', '.join(neutral)}")
    return ("Against the per-fold PCA context, " + "; ".join(parts) + " (VAE minus PCA MSE; "
            "p Holm-adjusted over the study's points).")


def _fmt(x, nd=4):
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def _ci(c: dict) -> str:
    lo, hi = c["ci95"]
    return f"{c['diff']:+.4f} [{_fmt(lo)}, {_fmt(hi)}]"


def markdown(doc: dict) -> str:
    rows = doc["points"]
    out = ["# Pretraining study", "", doc["verdict"], "",
           "![validation MSE vs labelled samples](study.png)", "",
           "## Context minus PCA context (validation MSE, corrected paired t-test over folds)", "",
           "Holm p: the corrected p adjusted (Holm) over the study's points for the same column; "
           "the verdict above reads it.", "",
           "| point | training samples | folds | model | context | PCA | context MSE | "
           "difference [95% CI] | corrected p | Holm p |", "| --- | ---: | ---: | --- | --- | "
           "---: | ---: | --- | ---: | ---: |"]
    for name, r in rows.items():
        for c in r["contexts"]:
            ctx = c["a"].split("context=", 1)[1].rstrip("]")
            out.append(f"| {name} | {r['n_train']:.0f} | {r['folds']} | {c['b']} | {ctx} | "
                       f"{_fmt(c['mean_b'])} | {_fmt(c['mean_a'])} | {_ci(c)} | "
                       f"{_fmt(c['p'], 3)} | {_fmt(c.get('p_holm'), 3)} |")
    out += ["", "## Learning curve against the best baseline of each point", "",
            "| point | training samples | model | MSE | best baseline | its MSE | "
            "difference [95% CI] | corrected p | Holm p |", "| --- | ---: | --- | ---: | --- | "
            "---: | --- | ---: | ---: |"]
    for name, r in rows.items():
        for c in r["vs_baseline"]:
            out.append(f"| {name} | {r['n_train']:.0f} | {c['a']} | {_fmt(c['mean_a'])} | "
                       f"{c['b']} | {_fmt(c['mean_b'])} | {_ci(c)} | {_fmt(c['p'], 3)} | "
                       f"{_fmt(c.get('p_holm'), 3)} |")
    names = list(dict.fromkeys(v for r in rows.values() for v in r["mean_mse"]))
    out += ["", "## Mean validation MSE of every column", "",
            "| column | " + " | ".join(rows) + " |", "| --- |" + " ---: |" * len(rows)]
    for v in names:
        out.append(f"| {v} | " + " | ".join(_fmt(r["mean_mse"].get(v)) for r in rows.values())
                   + " |")
    return "\n".join(out) + "\n"


def plot(doc: dict, path: Path) -> None:
    """Validation MSE vs labelled samples, a line per context (plus the recommended model and the
    best baseline); bars for held-out tissues."""
    rows = doc["points"]
    curve = sorted((r for r in rows.values() if r["scheme"] != "tissue"),
                   key=lambda r: r["n_train"])
    tissue = [r for r in rows.values() if r["scheme"] == "tissue"]
    fig = new_figure(figsize=(10, 4.2), dpi=110)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    columns = [v for v in (curve or tissue)[0]["mean_mse"]
               if v.startswith("share_net") or v == "recommended"]
    for v in columns:
        ax.plot([r["n_train"] for r in curve], [r["mean_mse"].get(v, np.nan) for r in curve],
                marker="o", ms=3, label=v.replace("share_net", "share_net ").replace("[", ""
                                                  ).replace("]", "").replace("context=", ""))
    ax.plot([r["n_train"] for r in curve], [r["mean_mse"][r["best_baseline"]] for r in curve],
            "k--", label="best baseline")
    ax.set_xscale("log")
    ax.set_xlabel("training samples (log scale)")
    ax.set_ylabel("validation MSE, log2(TPM+1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if tissue:
        r = tissue[0]
        names = columns + [r["best_baseline"]]
        bx.bar(range(len(names)), [r["mean_mse"][v] for v in names], color="C0")
        bx.set_xticks(range(len(names)), [n.replace("share_net", "sn") for n in names],
                      rotation=60, fontsize=7, ha="right")
        lo = min(r["mean_mse"][v] for v in names)
        bx.set_ylim(lo * 0.95, max(r["mean_mse"][v] for v in names) * 1.02)
        bx.set_title("held-out tissues", fontsize=9)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")


def write_study(out: Path, names: list[str], config: dict) -> dict:
    points = {n: load_point(out / "points" / n) for n in names}
    doc = {"schema": "raviso.study/1", "config": config, **analyse(points)}
    (out / "study.json").write_text(json.dumps(doc, indent=1))
    plot(doc, out / "study.png")
    (out / "study.md").write_text(markdown(doc))
    return doc
