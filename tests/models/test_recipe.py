"""The recipe share_net and ffnn_plus share: options checked, the inner early-stopping split (by
rows as documented defaults, or a fraction of the donors stratified by tissue), the early-stopping
bookkeeping, and every context choice fitting end to end."""

import dataclasses

import numpy as np
import pytest
import torch

from raviso.core.errors import RavisoError
from raviso.models.context.recipe import RecipeOptions
from raviso.models.ffnn.regressors import FFNNOptions
from raviso.models.recommended import RecommendedOptions
from raviso.models.saved import is_savable
from raviso.models.training import EarlyStopping, inner_split
from raviso.models.vae.foldvae import FoldVAEOptions
from raviso.models.variants import SPECS, is_context_model, make_variant
from tests.models.test_share_net import world_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_options_are_checked_and_named():
    with pytest.raises(RavisoError, match="val_split"):
        RecipeOptions(val_split="tissues")
    with pytest.raises(RavisoError, match="ffnn_plus: .*unexpected keyword"):
        make_variant("ffnn_plus").__class__(nope=1)


def test_option_records_cast_check_and_explain_every_field():
    o = RecipeOptions(epochs="5", lr="0.01", tissue=0, val_split="donors")
    assert (o.epochs, o.lr, o.tissue, o.val_split) == (5, 0.01, False, "donors")
    with pytest.raises(RavisoError, match=r"bad option patience=0 \(>= 1\)"):
        RecipeOptions(patience=0)
    with pytest.raises(RavisoError, match=r"bad option epochs='x' \(a int\)"):
        FFNNOptions(epochs="x")
    assert FFNNOptions(hidden="64, 8").hidden == (64, 8) and FFNNOptions().hidden == (32,)
    for record in (RecipeOptions, FFNNOptions, FoldVAEOptions, RecommendedOptions):
        assert all(f.metadata["help"] for f in dataclasses.fields(record)), record


def test_the_registry_says_which_variants_are_context_models_and_savable():
    assert [s.name for s in SPECS if s.context_model] == ["share_net", "ffnn_plus"]
    assert is_context_model("share_net[context=vae]") and not is_context_model("gene_ffnn")
    assert not is_context_model("no_such_variant")
    assert all(is_savable(v) for v in ("share_net", "ffnn_plus", "gene_ffnn", "recommended"))
    assert not is_savable("pca_ridge") and not is_savable("foldvae_ffnn")


def test_donor_split_takes_a_fraction_of_donors_in_every_tissue():
    rng = np.random.default_rng(0)
    donor = np.array([f"d{k // 3}" for k in range(120)])            # 40 donors x 3 samples
    tissue = np.array([f"t{rng.integers(4)}" for _ in range(120)])
    fit, val = inner_split(np.arange(120), donor, 0.25, 0, tissue, by="donors")
    assert len(set(donor[val])) == 10 and not set(donor[val]) & set(donor[fit])
    assert set(tissue[val]) == set(tissue)
    by_rows = inner_split(np.arange(120), donor, 0.25, 0)           # the default is unchanged
    assert len(by_rows[1]) == 30


def test_early_stopping_keeps_the_best_weights():
    net = torch.nn.Linear(2, 1)
    stop = EarlyStopping(patience=2)
    assert stop.update(1.0, net)
    best = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not stop.update(2.0, net) and not stop.done
    assert not stop.update(3.0, net) and stop.done
    stop.restore(net)
    assert torch.equal(net.weight, best)


@pytest.mark.parametrize("context", ["pca", "vae", "vae+pca", "none"])
@pytest.mark.parametrize("variant", ["share_net", "ffnn_plus"])
def test_every_context_fits_and_beats_the_mean(variant, context):
    data = world_data(n=120)
    data.add_latent("vae", data.sample_id, np.random.default_rng(1).normal(
        size=(120, 4)).astype(np.float32))
    train, val = np.arange(90), np.arange(90, 120)
    m = make_variant(variant, context=context, epochs=2, n_components=4, hidden="16")
    pred = m.fit(data, train).predict(data, val)
    mean = data.isoforms[train].mean(axis=0)
    assert np.mean((pred - data.isoforms[val]) ** 2) < np.mean((mean - data.isoforms[val]) ** 2)
