"""The report's first section, "What this means": the model that ships and how it did against the
best baseline in plain words, how many isoforms it predicts well enough to read one by one, whether
its intervals held on unseen donors, and what to do next. A reader who stops here knows what to
use and how far to trust it; the sections below are the evidence.
"""

from __future__ import annotations

from ..stats.leaderboard import board
from .sections import Section, Where, ci, fmt
from .verdict import shipped, versus_baseline

LEVEL = "0.9"              # the interval level the section quotes (`raviso predict --interval 0.9`)
COVERAGE_SLACK = 0.02      # coverage this far below the level is called under-coverage
FEW_DONORS_PER_FOLD = 2    # a fold with this few validation donors: suggest leave-one-donor-out
FEW_DONORS = 10            # below this many donors every figure is uncertain


def _p(x) -> str:
    return "–" if x is None else (f"{x:.2e}" if x < 1e-3 else f"{x:.2g}")


def _donor_words(doc: dict, s: dict) -> str:
    """' Paired over the 6 donors, recommended's error was lower for 4 (donor-level p 0.31).'"""
    base = (s["baseline"] or {}).get("variant")
    pair = next((t for t in doc.get("tests") or [] if {t["a"], t["b"]} == {s["variant"], base}),
                None)
    pooled = (pair or {}).get("donor_pooled")
    if not pooled or s["variant"] == base:
        return ""
    wins = pooled["a_better"] if pair["a"] == s["variant"] else pooled["b_better"]
    return (f" Paired over the {pooled['n_donors']} donors (each donor's held-out error averaged, "
            f"all folds pooled), its error was lower for {wins} of them (donor-level paired t "
            f"p {_p(pooled['paired_t']['p'])}, not corrected for the folds' shared training "
            "rows).")


def model_line(doc: dict, s: dict) -> str:
    v, r = s["variant"], s["row"]
    who = ("the model this run saved" if s["saved"] else "what `raviso fit` ships")
    if r is None:
        top = next((x for x in board(doc) if x["mse_mean"] is not None
                    and not x.get("optimistic")), None)
        return (f"**The model that ships, {v}** ({who}), **was not scored** by this run: nothing "
                "here measures it on donors it never saw"
                + (f" (of the variants scored, the best is {top['variant']}, MSE "
                   f"{top['mse_mean']:.4g})" if top else "") + ".")
    return (f"**The model that ships: {v}** ({who}). On donors it never saw its mean squared error "
            f"is {r['mse_mean']:.4g} (log2(TPM+1) scale; 95% CI {ci(r.get('mse_ci95'))}): "
            f"**{versus_baseline(s)}**.{_donor_words(doc, s)}")


def reliable_line(doc: dict, s: dict) -> str:
    v = s["variant"]
    rel = (doc.get("reliability") or {}).get(v)
    if not rel:
        return (f"How many isoforms {v} predicts reliably was not recorded "
                + ("(it was not scored)." if s["row"] is None else
                   "(a results.json from before raviso recorded it, or trials that kept no "
                   "out-of-fold arrays)."))
    n, k = rel["n_isoforms"], rel["n_reliable"]
    flat = (f" {rel['n_no_r2']:,} barely vary out of fold and have no R^2." if rel["n_no_r2"]
            else "")
    return (f"**{k:,} of {n:,} isoforms ({100 * k / max(n, 1):.1f}%) are `reliable`** "
            f"(out-of-fold R^2 >= {rel['min_r2']:g}; median R^2 {fmt(rel['median_r2'], 2)}): "
            f"`raviso predict` flags them, and only they are worth reading one by one.{flat}")


def _coverage(doc: dict, v: str) -> tuple[str, dict] | None:
    levels = (doc.get("intervals") or {}).get(v) or {}
    level = LEVEL if LEVEL in levels else next(iter(levels), None)
    return None if level is None or levels[level].get("coverage") is None \
        else (level, levels[level])


def interval_line(doc: dict, s: dict) -> str:
    got = _coverage(doc, s["variant"])
    if got is None:
        return f"Prediction-interval coverage was not measured for {s['variant']}."
    level, c = got
    nominal = float(level)
    verdict = ("they **under-cover**: narrower than they claim on new donors"
               if c["coverage"] < nominal - COVERAGE_SLACK else
               "they held their nominal level on donors the model never saw")
    return (f"**{100 * nominal:g}% prediction intervals covered {c['coverage']:.3f}** of the "
            f"held-out donors' values (nominal {nominal:.2f}; mean half-width "
            f"{fmt(c.get('mean_halfwidth'), 3)} log2(TPM+1)): {verdict}.")


def _fold_donors(doc: dict) -> list[int]:
    return [f["n_donors"] for f in doc["folds"] if f.get("n_donors")]


def next_steps(doc: dict, s: dict) -> list[str]:
    """What to do next, most important first."""
    g, out = doc.get("grouping") or {}, []
    n = doc["data"].get("n_donors")
    base = (s["baseline"] or {}).get("variant")
    if s["outcome"] == "unscored":
        out.append(f"Score the model that ships: `raviso cv STORE --variants {s['variant']}"
                   + (f",{base}`" if base else "`") + ".")
    if g.get("grouped_by") == "none":
        out.append("Give each sample its donor (a `donor` column in the sample sheet): these folds "
                   "are not grouped by donor, so a donor's other samples may have been in "
                   "training and every figure above may be optimistic.")
    elif n and g.get("scheme") != "logo" and min(_fold_donors(doc) or [n]) <= FEW_DONORS_PER_FOLD:
        out.append(f"With {n} donors use `--fold-scheme logo` (leave-one-donor-out: {n} folds, "
                   f"each trained on {n - 1} donors), so every fold trains on as many donors as "
                   "it can and the donor-level test pairs every donor.")
    if n and n < FEW_DONORS:
        out.append(f"With {n} donors every figure here is uncertain: more donors, not more "
                   "samples per donor, are what narrow it.")
    if s["outcome"] == "as_good" and s["variant"] != base:
        out.append(f"Expect predictions no better than {base}'s: a baseline is as good here.")
    elif s["outcome"] == "worse":
        out.append(f"Expect predictions worse than {base}'s: a baseline predicts better here, so "
                   "the model that ships is not the best choice for data like this.")
    got = _coverage(doc, s["variant"])
    if got and got[1]["coverage"] < float(got[0]) - COVERAGE_SLACK:
        out.append("Treat the intervals as optimistic, or ask for a wider level "
                   "(`raviso predict --interval 0.95`).")
    if s["row"] is not None:
        out.append("Predict with `raviso predict MODEL GENES --interval 0.9` and read single "
                   "isoforms only where `reliable` is true.")
    return out


def meaning_section(doc: dict, where: Where = Where()) -> Section:
    """The report's opening: what to use, how good it is, how far to trust it, what next."""
    s = shipped(doc, board(doc))
    steps = next_steps(doc, s)
    return Section(["## What this means", "",
                    f"- {model_line(doc, s)}", f"- {reliable_line(doc, s)}",
                    f"- {interval_line(doc, s)}"]
                   + (["- **What to do next:**"] + [f"  - {x}" for x in steps] if steps else [])
                   + [""])
