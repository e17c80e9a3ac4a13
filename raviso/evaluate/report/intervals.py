"""The report's section on trusting single predictions: held-out-donor coverage of the conformal
intervals `raviso predict --interval` writes (results.json ``intervals``, from
`raviso.trust.reliability.coverage`), and what a missing tissue costs (a variant's column
beside its ``[tissue=False]`` twin, the path predict takes for a sample of unknown tissue)."""

from __future__ import annotations

from ...core.metrics import LEVELS
from ...trust.reliability import tissue_free_column
from .sections import Section, Where, table


def intervals_section(doc: dict, where: Where = Where()) -> Section:
    iv = doc.get("intervals") or {}
    lines = tissue_cost_lines(doc)
    if not iv:
        return Section(lines)
    rows = [[v, level, c.get("coverage")] + [(c.get("by_level") or {}).get(b) for b in LEVELS]
            + [c.get("mean_halfwidth")]
            for v, levels in iv.items() for level, c in levels.items()]
    return Section(["## Prediction intervals: coverage on held-out donors", "",
                    "Conformal intervals per isoform, as `raviso predict --interval` writes them: "
                    "each fold's are calibrated on the other folds' out-of-fold residuals and "
                    "counted on its own held-out donors. Coverage = share of held-out values "
                    "inside (nominal = the level), overall and by the isoform's mean "
                    "log2(TPM+1); half-width in log2(TPM+1).", ""]
                   + table(["variant", "level", "coverage"] + [f"cov {b}" for b in LEVELS]
                           + ["mean half-width"], rows) + lines)


def tissue_cost_lines(doc: dict) -> list[str]:
    """'share_net: MSE 0.41 with tissue, 0.47 without' for every column with a tissue-free twin."""
    summ = doc.get("summary") or {}
    pairs = [(v, tissue_free_column(v, summ)) for v in summ if "tissue=False" not in v]
    rows = [[v, summ[v].get("mse_mean"), summ[f].get("mse_mean")] for v, f in pairs
            if f and summ[v].get("mse_mean") is not None]
    if not rows:
        return []
    return (["### What a missing tissue costs", "",
             "`raviso predict` sends a sample with no tissue, or one the model was not trained "
             "on, to the model's tissue-free twin (the same variant fitted without tissue); its "
             "cross-validated MSE is the price of not giving the tissue.", ""]
            + table(["variant", "MSE with tissue", "MSE tissue withheld"], rows))


