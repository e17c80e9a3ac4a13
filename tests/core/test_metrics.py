"""Per-trial metrics against plain numpy/scipy computations, in one block and in many."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from raviso.core import metrics


@pytest.fixture(params=["one_block", "many_blocks"])
def blocks(request, monkeypatch):
    if request.param == "many_blocks":
        monkeypatch.setattr(metrics, "BLOCK_BYTES", 8 * 7 * 3)   # 3 columns per block at 7 rows


def _case():
    rng = np.random.default_rng(1)
    Y = rng.normal(2, 1, (7, 10)).astype(np.float32)
    pred = (Y + rng.normal(0, 0.5, Y.shape)).astype(np.float32)
    Y[:, 4] = 1.25            # constant in validation: r undefined, excluded
    pred[:, 6] = 0.5          # constant prediction: r defined as 0
    train_mean = rng.normal(2, 0.3, 10)
    truth = (Y + rng.normal(0, 0.2, Y.shape)).astype(np.float32)
    return pred, Y, train_mean, truth


def test_column_blocks_cover_every_column_once(blocks):
    cols = np.concatenate([np.arange(10)[s] for s in metrics.column_blocks(7, 10)])
    assert cols.tolist() == list(range(10))


def test_per_sample_mse_and_mean_match_numpy(blocks):
    pred, Y, _, _ = _case()
    expect = ((pred.astype(np.float64) - Y) ** 2).mean(axis=1)
    np.testing.assert_allclose(metrics.per_sample_mse(pred, Y), expect, rtol=1e-12)
    rows = np.array([0, 3, 5])
    np.testing.assert_allclose(metrics.column_mean(Y, rows), Y[rows].astype(np.float64).mean(0))
    np.testing.assert_allclose(metrics.column_std(Y, rows), Y[rows].astype(np.float64).std(0))


def test_pearson_matches_scipy_and_handles_constant_columns(blocks):
    pred, Y, _, _ = _case()
    r, defined = metrics.per_isoform_pearson(pred, Y)
    assert defined.tolist() == [j != 4 for j in range(10)]
    assert r[6] == 0.0
    for j in range(10):
        if j not in (4, 6):
            ref = sps.pearsonr(pred[:, j].astype(float), Y[:, j].astype(float)).statistic
            assert r[j] == pytest.approx(ref, abs=1e-9)


def test_evaluate_numbers(blocks):
    pred, Y, train_mean, truth = _case()
    m = metrics.evaluate(pred, Y, train_mean, truth=truth)
    Yd = Y.astype(np.float64)
    mse = ((pred - Yd) ** 2).mean()
    mse_mean = ((train_mean[None, :] - Yd) ** 2).mean()
    assert m["mse"] == pytest.approx(mse, rel=1e-12)
    assert m["mse_mean_baseline"] == pytest.approx(mse_mean, rel=1e-12)
    assert m["r2"] == pytest.approx(1 - mse / mse_mean, rel=1e-12)
    P, Yd64 = pred.astype(float), Y.astype(float)
    rs = [sps.pearsonr(P[:, j], Yd64[:, j]).statistic if j != 6 else 0.0
          for j in range(10) if j != 4]
    assert m["median_pearson"] == pytest.approx(np.median(rs), abs=1e-9)
    assert m["frac_r_gt_05"] == pytest.approx(np.mean(np.array(rs) > 0.5))
    assert (m["n_isoforms_r"], m["n_isoforms_excluded"], m["n_samples"]) == (9, 1, 7)
    assert m["mse"] == pytest.approx(m["per_sample"].mean())
    floor = ((truth - Yd) ** 2).mean()
    assert m["noise_floor"] == pytest.approx(floor, rel=1e-12)
    assert m["mse_over_noise_floor"] == pytest.approx(mse / floor, rel=1e-12)
    assert m["mse_excess"] == pytest.approx(mse - floor, rel=1e-9)
    assert m["mse_vs_truth"] == pytest.approx(((pred - truth.astype(np.float64)) ** 2).mean())


def test_perfect_prediction_and_mean_prediction():
    _, Y, _, _ = _case()
    perfect = metrics.evaluate(Y.copy(), Y, Y.mean(0))
    assert perfect["mse"] == 0 and perfect["r2"] == 1.0 and perfect["frac_r_gt_05"] == 1.0
    mean = Y.astype(np.float64).mean(0)
    as_mean = metrics.evaluate(np.repeat(mean[None].astype(np.float32), 7, 0), Y, mean)
    assert as_mean["r2"] == pytest.approx(0.0, abs=1e-6)
    assert as_mean["median_pearson"] == 0.0 and "noise_floor" not in as_mean
    assert not math.isnan(as_mean["mse"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.per_sample_mse(np.zeros((3, 4)), np.zeros((3, 5)))
