"""The report's numbers that are not tests: the error breakdown (within-tissue r, by level, by
isoform role) against a direct computation, and the leaderboard's order, CIs and Holm-corrected
tests against `raviso.evaluate.stats.paired` on a hand-made results document."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.evaluate.stats import paired as stats
from raviso.core.metrics import LEVELS
from raviso.evaluate.engine.scoring import Breakdown, isoform_roles
from raviso.evaluate.stats.leaderboard import leaderboard, variant_kind


def test_isoform_roles_by_hand():
    mean = np.array([1.0, 3.0, 2.0, 5.0, 0.5, 0.7])
    gene = np.array([0, 0, 0, 1, 2, -1])
    # gene 0: isoform 1 has the highest training mean; gene 1 and 2 have one isoform each
    assert isoform_roles(mean, gene).tolist() == [1, 0, 1, 2, 2, 3]


def test_breakdown_matches_direct_computation_and_is_chunk_invariant():
    rng = np.random.default_rng(0)
    n, m = 40, 12
    tissue = np.array(["A"] * 15 + ["B"] * 20 + ["C"] * 4 + ["D"])
    Y = rng.gamma(1.0, 2.0, (n, m)).astype(np.float32)
    pred = (Y + rng.normal(0, 1.0, (n, m))).astype(np.float32)
    train_mean = rng.gamma(1.0, 2.0, m)
    gene = np.repeat(np.arange(4), 3)
    whole = Breakdown(train_mean, gene)
    whole.add(pred, Y, tissue)
    chunks = Breakdown(train_mean, gene)
    for s in range(0, n, 7):
        chunks.add(pred[s:s + 7], Y[s:s + 7], tissue[s:s + 7])
    a, b = whole.result(), chunks.result()
    assert a["within_tissue_median_r"] == pytest.approx(b["within_tissue_median_r"], rel=1e-9)
    # direct: centre each tissue on its own mean, then one Pearson r per isoform
    pc, yc = pred.astype(np.float64).copy(), Y.astype(np.float64).copy()
    for t in np.unique(tissue):
        sel = tissue == t
        pc[sel] -= pc[sel].mean(0)
        yc[sel] -= yc[sel].mean(0)
    r = [np.corrcoef(pc[:, j], yc[:, j])[0, 1] for j in range(m)]
    assert a["within_tissue_median_r"] == pytest.approx(np.median(r), rel=1e-9)
    sq = ((pred.astype(np.float64) - Y) ** 2).mean(0)
    level = np.searchsorted([0.1, 1.0, 3.0, 6.0], train_mean, side="right")
    for j, name in enumerate(LEVELS):
        want = [pytest.approx(sq[level == j].mean(), rel=1e-9)] * 2 if (level == j).any() \
            else [None, None]
        assert [a["mse_by_level"][name], b["mse_by_level"][name]] == want
    role = isoform_roles(train_mean, gene)
    assert a["mse_by_role"]["dominant"] == pytest.approx(sq[role == 0].mean(), rel=1e-9)
    assert a["isoforms_by_role"] == {"dominant": 4, "minor": 8, "single": 0, "unmapped": 0}
    # a prediction constant within tissues has no within-tissue correlation
    flat = Breakdown(train_mean, gene)
    tmeans = {t: Y[tissue == t].mean(0) for t in np.unique(tissue)}
    flat.add(np.stack([tmeans[t] for t in tissue]), Y, tissue)
    assert flat.result()["within_tissue_median_r"] == 0.0


def _doc():
    """3 folds; `mean` and `tissue_mean` baselines, a paper and a raviso model."""
    mse = {"mean": [0.80, 0.82, 0.78], "tissue_mean": [0.50, 0.53, 0.49],
           "gene_ffnn": [0.70, 0.69, 0.72], "share_net": [0.40, 0.44, 0.41]}
    trials = [{"fold": f, "variant": v, "status": "ok", "mse": x[f]}
              for v, x in mse.items() for f in range(3)]
    folds = [{"fold": f, "n_train": 60, "n_test": 30, "floor_heldout_donor": 0.3 + 0.01 * f}
             for f in range(3)]
    return {"config": {"variants": list(mse), "folds": 3}, "trials": trials, "folds": folds,
            "summary": {}, "grouping": {}}, mse


def test_leaderboard_order_ci_and_holm_against_stats():
    doc, mse = _doc()
    board = leaderboard(doc)
    assert [r["variant"] for r in board] == ["share_net", "tissue_mean", "gene_ffnn", "mean"]
    assert [r["kind"] for r in board] == ["model", "baseline", "paper", "baseline"]
    top = board[0]
    assert top["mse_mean"] == pytest.approx(np.mean(mse["share_net"]))
    assert top["mse_ci95"] == pytest.approx(stats.mse_ci(mse["share_net"], 60, 30))
    assert top["x_floor_heldout_donor"] == pytest.approx(
        np.mean([x / (0.3 + 0.01 * f) for f, x in enumerate(mse["share_net"])]))
    # tests against the best baseline (tissue_mean), Holm over the two non-baselines
    p = {}
    for v in ("share_net", "gene_ffnn"):
        d = np.subtract(mse[v], mse["tissue_mean"])
        ref = stats.corrected_repeated_t(d, [60] * 3, [30] * 3, 1)
        row = next(r for r in board if r["variant"] == v)
        assert row["vs_best_baseline"]["baseline"] == "tissue_mean"
        assert row["vs_best_baseline"]["p"] == pytest.approx(ref["p"])
        assert row["vs_best_baseline"]["mean_diff"] == pytest.approx(d.mean())
        p[v] = ref["p"]
    holm = stats.holm([p["share_net"], p["gene_ffnn"]])
    assert board[0]["vs_best_baseline"]["p_holm"] == pytest.approx(holm[0])
    assert next(r for r in board if r["variant"] == "mean")["vs_best_baseline"] is None


def test_variant_kinds():
    assert variant_kind("pca_ridge") == "baseline" and variant_kind("vae_ffnn") == "paper"
    assert variant_kind("share_net") == "model" and variant_kind("gene_ffnn@tuned") == "paper"
