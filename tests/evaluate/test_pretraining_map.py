"""bench.pretraining_map: a later study's column joins the same point only on the same folds, and
Holm runs over every cell of the map (every world, size and context together). No Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.pretraining_map import map_cells, merged_points
from raviso.evaluate.stats.paired import corrected_t, holm

SHAPE = np.array([0.0, -1.0, 1.0, -0.7, 0.7])


def _write(path, fraction, cols: dict, n_train=100):
    folds = [{"fold": f, "n_train": n_train, "n_test": 25} for f in range(5)]
    trials = [{"fold": f, "variant": v, "mse": float(x[f]), "status": "ok"}
              for v, x in cols.items() for f in range(5)]
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(
        {"config": {"variants": list(cols), "train_fraction": fraction, "repeats": 1},
         "folds": folds, "trials": trials}))


def test_map_merges_a_later_context_and_holms_over_every_cell(tmp_path):
    pca = 0.5 + 0.002 * np.arange(5)
    for world, shift in (("default", 0.01), ("structured", -0.02)):
        vae = pca + shift + 0.004 * SHAPE
        _write(tmp_path / world / "study-f1" / "points" / "f1", 1.0,
               {"share_net": pca, "share_net[context=vae]": vae, "pca_ridge": pca + 0.05})
    # the fine-tuned context, run later on the same folds, joins the structured world's point
    _write(tmp_path / "structured" / "study-f1-ft" / "points" / "f1", 1.0,
           {"share_net[context=finetune]": pca - 0.03 + 0.002 * SHAPE})
    cells = map_cells(merged_points(tmp_path))
    assert [(c["world"], c["context"]) for c in cells] == [
        ("default", "vae"), ("structured", "vae"), ("structured", "finetune")]
    d = 0.01 + 0.004 * SHAPE
    assert cells[0]["diff"] == pytest.approx(0.01)
    assert cells[0]["p"] == pytest.approx(corrected_t(d, [100] * 5, [25] * 5)["p"])
    assert cells[2]["diff"] == pytest.approx(-0.03)
    assert [c["p_holm"] for c in cells] == pytest.approx(holm([c["p"] for c in cells]))
    first = min(cells, key=lambda c: c["p"])               # three tests, not one
    assert first["p_holm"] == pytest.approx(min(1.0, 3 * first["p"]))


def test_a_column_on_other_folds_is_refused(tmp_path):
    pca = 0.5 + 0.002 * np.arange(5)
    _write(tmp_path / "default" / "study-f1" / "points" / "f1", 1.0,
           {"share_net": pca, "share_net[context=vae]": pca + 0.01})
    _write(tmp_path / "default" / "study-f1-ft" / "points" / "f1", 1.0,
           {"share_net[context=finetune]": pca}, n_train=90)
    with pytest.raises(SystemExit, match="not the same folds"):
        merged_points(tmp_path)


def test_anchor_pairs_contrast_the_fitted_anchor_and_the_worlds_on_the_same_folds(tmp_path):
    from bench.pretraining_map import anchor_pairs

    base = 0.4 + 0.002 * np.arange(5)
    _write(tmp_path / "clean", 1.0, {"share_net": base, "share_net[anchor=none]": base + 0.002 + 0.001 * SHAPE,
                                     "pca_ridge": base + 0.01})
    _write(tmp_path / "extra", 1.0, {"share_net": base + 0.004 + 0.001 * SHAPE,
                                     "share_net[anchor=none]": base + 0.02,
                                     "pca_ridge": base + 0.012})
    _write(tmp_path / "other", 1.0, {"share_net": base}, n_train=90)      # other folds: no pairs
    rows = anchor_pairs([tmp_path / "clean", tmp_path / "extra", tmp_path / "other"]).splitlines()
    assert "| share_net - share_net[anchor=none] | -0.0020 [" in rows[2]
    assert "| share_net - share_net[anchor=none] | -0.0160 [" in rows[3]
    cost = [r for r in rows if "minus" in r]
    assert [r.split(" | ")[1] for r in cost] == ["share_net", "share_net[anchor=none]", "pca_ridge"]
    assert "| +0.0040 [" in cost[0] and "| +0.0180 [" in cost[1] and "other" not in "".join(cost)


def test_the_held_out_tissue_point_is_its_own_cell_after_the_sizes(tmp_path):
    pca = 0.5 + 0.002 * np.arange(5)
    _write(tmp_path / "default" / "study-f1" / "points" / "f1", 1.0,
           {"share_net": pca, "share_net[context=vae]": pca + 0.01 + 0.004 * SHAPE})
    # fraction 1 too, on other folds: joined to f1 it would be refused; it is a cell of its own
    _write(tmp_path / "default" / "study-tissue" / "points" / "tissue", 1.0,
           {"share_net": pca, "share_net[context=vae]": pca + 0.02 + 0.004 * SHAPE}, n_train=90)
    _write(tmp_path / "default" / "study-f0.05" / "points" / "f0.05", 0.05,
           {"share_net": pca, "share_net[context=vae]": pca - 0.01 + 0.004 * SHAPE})
    cells = map_cells(merged_points(tmp_path))
    assert [c["point"] for c in cells] == ["f0.05", "f1", "tissue"]
    assert [round(c["diff"], 4) for c in cells] == [-0.01, 0.01, 0.02]
    from bench.pretraining_map import table

    assert "| default | 1, held-out tissues | 90 |" in table(cells)
