"""`recommended`: inner-CV selection/blend at small labelled sizes, share_net above, saved whole."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raviso.data.folds import make_folds, training_subset
from raviso.models.recommended import inner_folds, simplex_weights
from raviso.models.variants import make_variant


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from raviso.data.labelled import Labelled
    from raviso.data.reader import Store
    from raviso.io.convert import convert
    from raviso.synth.generate import generate

    root = tmp_path_factory.mktemp("tiny")
    generate(root / "src", "tiny", seed=1, heldout=False)
    convert(root / "store", root / "src", checksum=False)
    return Labelled.from_store(Store(root / "store"))


def _mse(model, data, rows):
    return float(np.mean((model.predict(data, rows) - data.isoforms[rows]) ** 2))


def test_small_subset_not_worse_than_best_baseline(tiny, one_torch_thread):
    """~50 training samples (3 donors) of the tiny preset, three folds: the recommended model's
    mean validation MSE is at most the best baseline's plus 1% (noise); its choice is recorded."""
    folds = make_folds(tiny.tissue, tiny.donor, k=5, seed=0)
    scores = {v: [] for v in ("recommended", "pca_ridge", "isoform_fraction_fit")}
    for f in range(3):
        train, val = folds.split(f)
        sub = training_subset(train, tiny.donor, 0.25, seed=0, fold=f)
        assert 40 <= len(sub) <= 80
        for v in scores:
            model = make_variant(v, epochs=20).fit(tiny, sub)
            scores[v].append(_mse(model, tiny, val))
            if v == "recommended":
                sel = model.selection_
                assert sel["mode"] == "inner-cv" and sel["n_train"] == len(sub)
                assert abs(sum(sel["weights"].values()) - 1) < 1e-3
                assert set(sel["inner_mse"]) == set(model.candidates)
                assert sel["blend_mse"] <= min(sel["inner_mse"].values()) + 1e-6
    best = min(np.mean(scores["pca_ridge"]), np.mean(scores["isoform_fraction_fit"]))
    assert np.mean(scores["recommended"]) <= best * 1.01, scores


def test_full_size_is_share_net_unchanged(tiny, one_torch_thread):
    rows = np.arange(120)
    rec = make_variant("recommended", epochs=3, select_below=100).fit(tiny, rows)
    net = make_variant("share_net", epochs=3).fit(tiny, rows)
    assert rec.selection_["mode"] == "fixed" and rec.weights_ == {"share_net": 1.0}
    assert np.array_equal(rec.predict(tiny, np.arange(200, 210)),
                          net.predict(tiny, np.arange(200, 210)))


def test_saved_model_round_trip_and_selection_in_metadata(tiny, tmp_path, one_torch_thread):
    from raviso.models.saved import MODEL_JSON, REGRESSOR_DIR, fit_model, load_predictor

    data = tiny
    model = fit_model(data, "recommended", tmp_path / "m",
                      options={"epochs": 3, "select_below": 10_000})
    meta = json.loads((tmp_path / "m" / MODEL_JSON).read_text())
    assert meta["selection"]["mode"] == "inner-cv" and meta["selection"]["weights"]
    back = load_predictor(tmp_path / "m" / REGRESSOR_DIR)
    rows = np.arange(5)
    np.testing.assert_allclose(back.predict(data, rows), model.predict(data, rows), atol=1e-5)
    assert back.selection_ == model.selection_


def test_simplex_weights_exact_and_inner_folds_donor_grouped():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(3, 400))
    y = 0.7 * P[0] + 0.3 * P[1] + rng.normal(0, 0.01, 400)
    w = simplex_weights(P @ P.T, P @ y)
    np.testing.assert_allclose(w, [0.7, 0.3, 0.0], atol=0.01)
    assert np.isclose(w.sum(), 1) and (w >= 0).all()
    groups = np.repeat(np.array(["a", "b", "c", "d", "e"]), 4)
    fold = inner_folds(groups, 3, seed=1)
    assert len(set(fold.tolist())) == 3
    for g in set(groups):
        assert len(set(fold[groups == g].tolist())) == 1
    assert len(set(inner_folds(groups[:8], 3, seed=1).tolist())) == 2
