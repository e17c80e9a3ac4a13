"""The report's header, floors and paper sections (the leaderboard's is in `verdict`), each a
function of the results document and where figures go, returning a `Section`.

Older results.json files render what they have: missing columns show "–".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


# The DTU 02456 paper's Table 1 (mean validation MSE over its 5 folds): our variant -> its number
PAPER_TABLE1 = (("vae_ffnn", "VAE latent + FFNN", 0.321), ("gene_ffnn", "FFNN on raw genes", 0.477),
                ("mean", "mean baseline", 0.485))
COURSE_SHAPE = (18_965, 156_958)           # the course's genes and isoforms


@dataclass(frozen=True)
class Where:
    """Where a section may draw figures (None: draw none) and a pretraining run to plot."""
    cv_dir: Path | None = None
    pretrain: Path | None = None


@dataclass
class Section:
    lines: list[str]                                   # Markdown lines
    figures: list[Path] = field(default_factory=list)  # files the section wrote


def fmt(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.{digits}f}"
    return str(x)


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def ci(c) -> str:
    c = c or [None, None]
    return f"[{fmt(c[0])}, {fmt(c[1])}]"


def k_folds(doc: dict) -> int:
    """The k actually used (a small-data scheme may lower the k asked for)."""
    return (doc.get("grouping") or {}).get("k") or doc["config"]["folds"]


def header_section(doc: dict, where: Where = Where()) -> Section:
    cfg, data = doc["config"], doc["data"]
    reps = cfg.get("repeats") or 1
    return Section(["# raviso cross-validation report", "",
                    f"Store `{cfg['store']}`: {data['n_samples']} labelled samples, "
                    f"{data['n_genes']} genes, {data['n_isoforms']} isoforms, "
                    f"{data['n_tissues']} tissues"
                    + (f", {data['n_donors']} donors" if data.get("n_donors") else "") + ". "
                    f"{k_folds(doc)}-fold CV" + (f" x {reps} repeats" if reps > 1 else "")
                    + f", seed {cfg['seed']}, epochs {cfg.get('epochs') or 'default'}.", ""])


def floors_section(doc: dict, where: Where = Where()) -> Section:
    held, noise = doc.get("floor_heldout_donor"), doc.get("noise_floor")
    if not held and not noise:
        return Section([])
    out = ["## Floors (synthetic data)", ""]
    if held:
        out += [f"- **Held-out-donor floor {fmt(held['mean'])}** (per fold "
                + ", ".join(fmt(x) for x in held["per_fold"]) + "): the generator's best "
                "prediction of the observed isoforms for a donor that no model has seen "
                "(`raviso.synth.heldout`: it knows the sample's tissue, state, true gene "
                "expression and depth, not its donor's isoform-share effect nor the measurement "
                "noise). No predictor of unseen donors beats it in expectation; "
                "x floor near 1 means nothing learnable is left."]
        if (doc.get("grouping") or {}).get("grouped_by") != "donor":
            out += ["  These folds are NOT grouped by donor, so a model may learn a validation "
                    "donor's effects from its other samples and beat this floor."]
    if noise:
        out += [f"- Measurement floor {fmt(noise['mean'])} (MSE of the noise-free truth against "
                "the observations): the truth still holds the validation donor's own isoform-share "
                "effect, which donor-grouped CV cannot know, so it is not a bound any model is "
                "expected to reach (and with dropouts in log space the noise is not centred on the "
                "truth, so it is not strictly a lower bound either)."]
    return Section(out + [""])


def is_course_data(doc: dict) -> bool:
    """The course's data or a synthetic set in its format: course-format readers and log2(TPM+1)
    in the store's record; without a record, the course's exact shapes."""
    from ..results import store_origin

    origin = doc["data"].get("origin") or store_origin(doc["config"]["store"])
    if origin is None:
        return (doc["data"]["n_genes"], doc["data"]["n_isoforms"]) == COURSE_SHAPE
    return (not origin.get("imported") and origin.get("units") == "log2(TPM+1)"
            and bool(origin["formats"]) and all(f.startswith("course-")
                                                for f in origin["formats"]))


def paper_section(doc: dict, where: Where = Where()) -> Section:
    if not is_course_data(doc):
        return Section([])
    summ = doc["summary"]
    rows = [[f"{label} (`{v}`)", ref, (summ.get(v) or {}).get("mse_mean")]
            for v, label, ref in PAPER_TABLE1]
    return Section(["## The paper's Table 1 beside this run", ""]
                   + table(["model", "paper (mean MSE, 5 folds)", "this run"], rows)
                   + ["Not comparable as numbers: the paper's come from the real GTEx set under "
                      "the seed project's pipeline (gene columns not aligned by name, a mean not "
                      "fitted on the training fold, \"epochs\" of 101 batches), ours from this "
                      "store with donor-grouped folds, so only the ordering within each column "
                      "can be compared.", ""])
