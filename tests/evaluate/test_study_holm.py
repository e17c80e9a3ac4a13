"""The pretraining study's verdict reads p-values Holm-adjusted across its points (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from raviso.evaluate.stats.paired import corrected_t, holm
from raviso.evaluate.study.report import analyse

SHAPE = np.array([0.0, -1.0, 1.0, -0.7, 0.7])     # per-fold spread of the VAE-PCA difference


def _point(spread: float, n_train: int) -> dict:
    pca = 0.5 + 0.002 * np.arange(5)
    vae = pca + 0.01 + spread * SHAPE
    base = pca + 0.05
    cols = {"share_net": pca, "share_net[context=vae]": vae, "pca_ridge": base}
    return {"scheme": "kfold", "fraction": 1.0, "repeats": 1, "variants": list(cols),
            "per_fold": {k: v.tolist() for k, v in cols.items()},
            "n_train": [n_train] * 5, "n_test": [n_train // 4] * 5,
            "mean": {k: float(v.mean()) for k, v in cols.items()}}


def test_verdict_uses_holm_across_points():
    """Three points, raw p ~1e-6, 0.026, 0.045: all three < 0.05 raw, but Holm over the three
    keeps only the first, and the verdict calls only that one a significant difference."""
    points = {"f0.1": _point(0.001, 40), "f0.25": _point(0.005, 100), "f1": _point(0.006, 400)}
    doc = analyse(points)
    rows = doc["points"]
    raw = [rows[n]["contexts"][0]["p"] for n in points]
    for n, spread in zip(points, (0.001, 0.005, 0.006)):
        d = 0.01 + spread * SHAPE
        ref = corrected_t(d, points[n]["n_train"], points[n]["n_test"])["p"]
        assert rows[n]["contexts"][0]["p"] == pytest.approx(ref)
    assert all(p < 0.05 for p in raw)                      # every raw p is "significant"
    adjusted = [rows[n]["contexts"][0]["p_holm"] for n in points]
    assert adjusted == pytest.approx(holm(raw))
    assert adjusted[0] < 0.05 and adjusted[1] >= 0.05 and adjusted[2] >= 0.05
    verdict = doc["verdict"]
    hurts, neutral = verdict.split("it hurts at ")[1].split("; and makes no significant")
    assert "~40 training samples" in hurts and "~100" not in hurts and "~400" not in hurts
    assert "~100 training samples" in neutral and "~400 training samples" in neutral
    assert "Holm" in verdict
    # the learning curve against the best baseline is its own family, adjusted the same way
    curve = [rows[n]["vs_baseline"][0] for n in points]
    assert [c["p_holm"] for c in curve] == pytest.approx(holm([c["p"] for c in curve]))


def test_study_points_an_empty_fractions_list_leaves_only_the_held_out_tissue_point(tmp_path):
    from raviso.core.errors import RavisoError
    from raviso.evaluate.study.run import StudyConfig, run_study, study_points

    only = study_points(StudyConfig.build(fractions="", tissue=True, folds=5, folds_full=3))
    assert [(p.name, p.fold_scheme, p.fraction, p.folds) for p in only] == [
        ("tissue", "tissue", 1.0, 3)]
    both = study_points(StudyConfig.build(fractions="0.05,1", tissue=True))
    assert [p.name for p in both] == ["f0.05", "f1", "tissue"]
    with pytest.raises(RavisoError, match="no point to run"):
        run_study(tmp_path / "store", StudyConfig.build(fractions="", tissue=False),
              out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(RavisoError, match="comma list"):
        StudyConfig.build(fractions="0.05,x")
