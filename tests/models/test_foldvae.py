"""``foldvae_ffnn``: a VAE pretrained inside each fit on the training rows' genes only, then the
latent FFNN. Shapes, registry options, determinism, no leakage, and that it learns."""

import numpy as np
import pytest
import torch

from raviso.core.errors import RavisoError
from raviso.data.labelled import Labelled
from raviso.core.metrics import column_mean, evaluate
from raviso.models.variants import make_variant, variant_needs

FAST = dict(vae_epochs=8, vae_hidden="32", latent_dim=6, epochs=5, lr=1e-2, batch_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_data(n=160, g=20, seed=0) -> Labelled:
    """Genes are a noisy linear image of a 4-d z; isoforms are nonlinear functions of z, so a model
    that recovers z from the genes beats the mean clearly."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)).astype(np.float32)
    genes = (z @ rng.normal(size=(4, g)) + 3 + rng.normal(0, .1, (n, g))).astype(np.float32)
    Y = np.stack([np.abs(z[:, 0]), np.maximum(z[:, 1] - z[:, 2], 0), z[:, 0] + z[:, 3],
                  z[:, 1] ** 2], axis=1)
    Y = (Y + rng.normal(0, .05, Y.shape)).astype(np.float32)
    return Labelled(sample_id=np.array([f"s{k}" for k in range(n)]),
                    tissue=np.array(["a", "b"])[np.arange(n) % 2],
                    donor=np.array([f"d{k // 2}" for k in range(n)]),
                    genes=genes, isoforms=Y, gene_names=[f"g{k}" for k in range(g)],
                    isoform_names=[f"i{k}" for k in range(4)],
                    isoform_gene=np.array([0, 1, 2, -1]))


def test_registered_with_its_options_and_needs():
    assert variant_needs("foldvae_ffnn") == {"genes"}
    m = make_variant("foldvae_ffnn", vae_epochs=3, vae_hidden="16,8", latent_dim=4, beta=0.5,
                     hidden="8", epochs=None, n_components=3)   # n_components: not its option
    assert m.vae_opts.vae_hidden == (16, 8) and m.vae_opts.latent_dim == 4
    assert m.vae_opts.beta == 0.5 and m.ffnn.hidden == (8,) and m.ffnn.opts.epochs == 100
    d = make_variant("foldvae_ffnn")
    assert d.vae_opts.vae_epochs == 30 and d.vae_opts.vae_hidden == (256, 128)
    assert d.vae_opts.latent_dim == 32 and d.vae_opts.beta == 1.0
    with pytest.raises(RavisoError, match="foldvae_ffnn: bad option latent_dim=0 \\(>= 1\\)"):
        make_variant("foldvae_ffnn", latent_dim=0)
    with pytest.raises(RavisoError, match="hidden sizes"):
        make_variant("foldvae_ffnn", vae_hidden="x")


def test_shapes_and_determinism_by_seed():
    data = make_data(n=80)
    train, val = np.arange(60), np.arange(60, 80)
    a = make_variant("foldvae_ffnn", seed=1, **FAST).fit(data, train)
    pa = a.predict(data, val)
    assert pa.shape == (20, 4) and pa.dtype == np.float32 and np.isfinite(pa).all()
    assert a.encode(data.genes[val]).shape == (20, 6)
    pb = make_variant("foldvae_ffnn", seed=1, **FAST).fit(data, train).predict(data, val)
    pc = make_variant("foldvae_ffnn", seed=2, **FAST).fit(data, train).predict(data, val)
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)


def test_vae_is_pretrained_on_training_rows_only():
    """Scrambled validation genes/isoforms before fit: the same fold VAE (bit for bit) and the
    same predictions; every VAE epoch saw exactly the training rows."""
    data = make_data(n=90)
    train, val = np.arange(0, 90, 3), np.setdiff1d(np.arange(90), np.arange(0, 90, 3))
    other = make_data(n=90)
    rng = np.random.default_rng(5)
    for arr in (other.genes, other.isoforms):
        arr[val] = rng.permutation(arr[val].ravel()).reshape(arr[val].shape) * 3
    data.genes.flags.writeable = False          # as in a cv trial (object-store arrays)
    data.isoforms.flags.writeable = False
    opts = dict(FAST, seed=4, early_stopping=True, patience=2)
    a = make_variant("foldvae_ffnn", **opts).fit(data, train)
    b = make_variant("foldvae_ffnn", **opts).fit(other, train)
    assert [h["samples"] for h in a.vae_history_] == [len(train)] * FAST["vae_epochs"]
    for (k, va), vb in zip(a.vae.state_dict().items(), b.vae.state_dict().values()):
        assert torch.equal(va, vb), k
    np.testing.assert_array_equal(a.predict(data, val), b.predict(data, val))
    assert not np.array_equal(b.predict(other, val), b.predict(data, val))  # genes do matter


def test_beats_the_mean_baseline_on_a_structured_problem():
    data = make_data(n=240)
    train, val = np.arange(180), np.arange(180, 240)
    model = make_variant("foldvae_ffnn", seed=0, vae_epochs=40, vae_hidden="64", latent_dim=8,
                         epochs=40, lr=1e-2, hidden="32").fit(data, train)
    assert model.vae_history_[-1]["recon"] < model.vae_history_[0]["recon"]
    pred = model.predict(data, val)
    m = evaluate(pred, data.isoforms[val], column_mean(data.isoforms, train))
    mean = make_variant("mean").fit(data, train).predict(data, val)
    mean_mse = float(((mean - data.isoforms[val]) ** 2).mean())
    assert m["mse"] < 0.25 * mean_mse and m["r2"] > 0.7, (m, mean_mse)
