"""The recipe share_net and ffnn_plus share: options checked, the inner early-stopping split (by
rows as documented defaults, or a fraction of the donors stratified by tissue), the early-stopping
bookkeeping, and every context choice fitting end to end."""

import numpy as np
import pytest
import torch

from raviso.core.errors import RavisoError
from raviso.models.context.recipe import RecipeOptions
from raviso.models.training import EarlyStopping, inner_split
from raviso.models.variants import make_variant
from tests.models.test_share_net import world_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_options_are_checked_and_named():
    with pytest.raises(RavisoError, match="val_split"):
        RecipeOptions(val_split="tissues")
    with pytest.raises(RavisoError, match="ffnn_plus: .*unexpected keyword"):
        make_variant("ffnn_plus").__class__(nope=1)


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
