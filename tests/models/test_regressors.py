"""FFNN regressors and the variant registry: learning, real epochs, early stopping, determinism,
no leakage from validation rows (every variant), saving and loading."""

import json

import numpy as np
import pytest
import torch

from raviso.models import training
from raviso.core.errors import RavisoError
from raviso.data.labelled import Labelled
from raviso.core.metrics import column_mean, evaluate
from raviso.models.ffnn.regressors import FFNNRegressor
from raviso.models.training import inner_split
from raviso.models.variants import BASELINES, PAPER_VARIANTS, VARIANTS, make_variant, variant_needs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_data(n=200, g=12, seed=0, noise=0.05, donors=False) -> Labelled:
    """Latent z (4-d); isoforms are NONLINEAR in z (|z0| has zero linear correlation with z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)).astype(np.float32)
    Y = np.stack([np.abs(z[:, 0]), np.maximum(z[:, 1] - z[:, 2], 0), z[:, 0] * z[:, 3],
                  np.abs(z[:, 3]) + 1], axis=1)
    Y = (Y + rng.normal(0, noise, Y.shape)).astype(np.float32)
    genes = np.abs(z @ rng.normal(size=(4, g)) + rng.normal(0, .1, (n, g))).astype(np.float32)
    return Labelled(sample_id=np.array([f"s{k}" for k in range(n)]),
                    tissue=np.array(["a", "b"])[np.arange(n) % 2],
                    donor=np.array([f"d{k // 3}" for k in range(n)]) if donors else None,
                    genes=genes, isoforms=Y, gene_names=[f"g{k}" for k in range(g)],
                    isoform_names=[f"i{k}" for k in range(4)],
                    isoform_gene=np.array([0, 0, 1, -1]), latent={"vae": z, "ae": z * 2 + 1})


def test_ffnn_learns_a_nonlinear_function_that_the_mean_and_a_linear_model_cannot():
    data = make_data(n=400)
    train, val = np.arange(320), np.arange(320, 400)
    ffnn = make_variant("vae_ffnn", epochs=20, lr=1e-2, seed=0).fit(data, train)
    m = evaluate(ffnn.predict(data, val), data.isoforms[val], column_mean(data.isoforms, train))
    assert m["r2"] > 0.8 and m["median_pearson"] > 0.9
    from sklearn.linear_model import Ridge

    lin = Ridge(1e-3).fit(data.latent["vae"][train], data.isoforms[train])
    lin_mse = ((lin.predict(data.latent["vae"][val]) - data.isoforms[val]) ** 2).mean()
    assert m["mse"] < 0.3 * lin_mse


def _rows_per_epoch(data, train, **opts):
    seen: dict[int, list] = {}
    model = make_variant("vae_ffnn", seed=3, **opts)
    model.fit(data, train, on_batch=lambda e, rows: seen.setdefault(e, []).append(rows.copy()))
    return model, seen


def test_every_epoch_visits_every_training_row_exactly_once():
    data = make_data(n=150)
    train = np.arange(1, 135, 3)                                   # 45 rows, not a batch multiple
    model, seen = _rows_per_epoch(data, train, epochs=3, batch_size=8)
    assert sorted(seen) == [0, 1, 2] and model.history_["epochs_run"] == 3
    for batches in seen.values():
        assert [len(b) for b in batches] == [8] * 5 + [5]
        assert sorted(np.concatenate(batches).tolist()) == sorted(train.tolist())
    assert not np.array_equal(np.concatenate(seen[0]), np.concatenate(seen[1]))  # reshuffled


def test_targets_gathered_per_batch_give_the_same_model(monkeypatch):
    """Large target matrices are gathered per batch instead of copied whole: same numbers."""
    data = make_data(n=100)
    train, val = np.arange(70), np.arange(70, 100)
    premade = make_variant("vae_ffnn", epochs=3, seed=2, early_stopping=True).fit(data, train)
    monkeypatch.setattr(training, "PREMADE_TARGET_BYTES", 0)
    gathered = make_variant("vae_ffnn", epochs=3, seed=2, early_stopping=True).fit(data, train)
    np.testing.assert_array_equal(premade.predict(data, val), gathered.predict(data, val))
    assert premade.history_ == gathered.history_


def test_early_stopping_split_comes_from_training_rows_and_keeps_donors_together():
    data = make_data(n=150, donors=True)
    train = np.arange(120)
    fit_rows, val_rows = inner_split(train, data.donor, 0.2, seed=0)
    assert sorted(np.concatenate([fit_rows, val_rows]).tolist()) == train.tolist()
    assert len(val_rows) >= 24
    assert not set(data.donor[fit_rows]) & set(data.donor[val_rows])
    _, seen = _rows_per_epoch(data, train, epochs=2, early_stopping=True, val_fraction=0.2,
                              patience=5)
    fit_seed3, _ = inner_split(train, data.donor, 0.2, seed=3)
    for batches in seen.values():
        assert sorted(np.concatenate(batches).tolist()) == sorted(fit_seed3.tolist())


def test_early_stopping_restores_the_best_weights():
    data = make_data(n=80, noise=0.0, seed=1)
    rng = np.random.default_rng(5)
    data.isoforms = rng.normal(size=data.isoforms.shape).astype(np.float32)   # pure noise
    train = np.arange(80)
    model = make_variant("vae_ffnn", hidden="128", epochs=100, lr=1e-2, seed=0,
                         early_stopping=True, val_fraction=0.25, patience=3).fit(data, train)
    h = model.history_
    assert h["stopped_early"] and h["epochs_run"] < 100
    best = h["best_epoch"]
    assert h["epochs_run"] == best + 1 + 3
    assert h["val_loss"][best] == min(h["val_loss"]) < h["val_loss"][-1]
    _, val_rows = inner_split(train, None, 0.25, seed=0)
    pred = model.predict(data, val_rows)
    mse = ((pred.astype(np.float64) - data.isoforms[val_rows]) ** 2).mean()
    assert mse == pytest.approx(h["val_loss"][best], rel=1e-5)


def test_training_is_deterministic_by_seed_and_leaves_thread_count_alone():
    data = make_data(n=100)
    train, val = np.arange(80), np.arange(80, 100)
    a = make_variant("gene_ffnn", epochs=2, seed=7).fit(data, train).predict(data, val)
    assert torch.get_num_threads() == 1          # set by the fixture, as the cv driver does
    b = make_variant("gene_ffnn", epochs=2, seed=7).fit(data, train).predict(data, val)
    c = make_variant("gene_ffnn", epochs=2, seed=8).fit(data, train).predict(data, val)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fit_reads_training_rows_only(name):
    """Scrambling every array in the validation rows (inputs, targets, latents, tissue) must not
    change what the model predicts for a fixed input."""
    data = make_data(n=90, donors=True)
    train, val = np.arange(60), np.arange(60, 90)
    other = make_data(n=90, donors=True)
    rng = np.random.default_rng(9)
    for arr in (other.genes, other.isoforms, other.latent["vae"], other.latent["ae"]):
        arr[val] = rng.permutation(arr[val].ravel()).reshape(arr[val].shape) * 3
    other.tissue = other.tissue.copy()
    other.tissue[val] = "x"
    for arr in (data.genes, data.isoforms, data.latent["vae"], data.latent["ae"]):
        arr.flags.writeable = False      # as in a cv trial, zero-copy from the object store
    opts = dict(epochs=2, seed=1, n_components=3, early_stopping=True, patience=2)
    a = make_variant(name, **opts).fit(data, train)
    b = make_variant(name, **opts).fit(other, train)
    pa, pb = a.predict(data, val), b.predict(data, val)
    assert pa.shape == (30, 4) and pa.dtype == np.float32
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(b.predict(other, val), pb) or name == "mean"   # inputs do matter


@pytest.mark.parametrize("name", ["vae_ffnn", "pca_ffnn"])
def test_save_and_load_round_trip(name, tmp_path):
    data = make_data(n=60)
    model = make_variant(name, epochs=2, n_components=3, early_stopping=True).fit(
        data, np.arange(50))
    model.save(tmp_path)
    back = FFNNRegressor.load(tmp_path)
    assert back.name == name and back.history_ == json.loads(json.dumps(model.history_))
    np.testing.assert_array_equal(back.predict(data, np.arange(50, 60)),
                                  model.predict(data, np.arange(50, 60)))
    src = data.genes if name == "pca_ffnn" else data.latent["vae"]
    np.testing.assert_array_equal(back.predict_source(src[:5]), model.predict(data, np.arange(5)))


def test_loading_a_broken_model_is_a_one_line_error(tmp_path):
    with pytest.raises(RavisoError, match="missing regressor.json"):
        FFNNRegressor.load(tmp_path)
    make_variant("vae_ffnn", epochs=1).fit(make_data(n=20), np.arange(20)).save(tmp_path)
    (tmp_path / "regressor.json").write_text("{not json")
    with pytest.raises(RavisoError, match="corrupt saved regressor"):
        FFNNRegressor.load(tmp_path)


def test_registry_names_options_and_needs():
    assert set(PAPER_VARIANTS) | set(BASELINES) <= set(VARIANTS)
    with pytest.raises(RavisoError, match="unknown variant 'vae'.*vae_ffnn"):
        make_variant("vae")
    with pytest.raises(RavisoError, match="unknown variant option.*epoch\\b"):
        make_variant("vae_ffnn", epoch=3)
    mean = make_variant("mean", epochs=5, seed=1, hidden="8")   # options it has no use for
    assert mean.name == "mean"
    m = make_variant("gene_ffnn", hidden="16, 8", epochs=None)     # None means the default
    assert m.hidden == (16, 8) and m.opts.epochs == 100
    assert make_variant("vae_ffnn").hidden == (32,)
    assert make_variant("gene_ffnn").hidden == (256, 32)
    with pytest.raises(RavisoError, match="hidden sizes"):
        make_variant("vae_ffnn", hidden="32,x")
    with pytest.raises(RavisoError, match="vae_ffnn: bad option lr=0.0 \\(> 0\\)"):
        make_variant("vae_ffnn", lr=0)
    assert variant_needs("vae_ffnn") == {"latent:vae"}
    assert variant_needs("ae_ffnn") == {"latent:ae"}
    assert variant_needs("vae_ffnn", latent="vae2") == {"latent:vae2"}
    assert variant_needs("gene_ffnn") == variant_needs("pca_ridge") == {"genes"}
    assert variant_needs("tissue_mean") == {"tissue"} and variant_needs("mean") == set()


def test_missing_latent_names_what_is_attached():
    data = make_data(n=20)
    data.latent.pop("ae")
    with pytest.raises(RavisoError, match="no latent 'ae' attached \\(have: vae\\)"):
        make_variant("ae_ffnn", epochs=1).fit(data, np.arange(20))
