"""The VAE and the shared training loop in plain torch (no Ray): loss maths, AE variant, sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raviso.models.vae.loop import evaluate, kl_weight, make_optimizer, tensor_batches, train_epoch
from raviso.models.vae.model import VAE, VAEConfig, kl_standard_normal, n_parameters


def tiny(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(n_genes=kw.pop("n_genes", 12), hidden=kw.pop("hidden", (10, 6)),
                         latent_dim=kw.pop("latent_dim", 3), **kw))


def test_paper_size_has_177_8m_parameters():
    # counted on the meta device: no 700 MB allocation
    with torch.device("meta"):
        vae = VAE(VAEConfig())
        ae = VAE(VAEConfig(beta=0))
        lv = VAE(VAEConfig(learned_variance=True))
    assert n_parameters(vae) == 177_809_429
    assert round(n_parameters(vae) / 1e6, 1) == 177.8
    assert n_parameters(vae) - n_parameters(ae) == 512 * 256 + 256   # no logvar head
    assert n_parameters(lv) - n_parameters(vae) == 18_965
    # heads are linear (no ReLU after mu/logvar), decoder output is linear
    assert isinstance(vae.mu, torch.nn.Linear) and isinstance(vae.logvar, torch.nn.Linear)
    assert isinstance(vae.decoder[-1], torch.nn.Linear)


def test_loss_matches_hand_computation():
    model = tiny()
    x = torch.randn(5, 12)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        rec = model(x, kl_weight=0.5, generator=gen)

    # by hand, replaying the same noise
    with torch.no_grad():
        h = x
        for layer in model.encoder:
            h = layer(h)
        mu, logvar = model.mu(h), model.logvar(h)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
        z = mu + torch.exp(0.5 * logvar) * eps
        xhat = model.decoder(z)
        recon = np.mean([0.5 * float(((x[i] - xhat[i]) ** 2).sum()) + 0.5 * 12 * math.log(2 * math.pi)
                         for i in range(5)])
        kl = np.mean([float(sum(0.5 * (mu[i, j] ** 2 + math.exp(logvar[i, j]) - 1 - logvar[i, j])
                                for j in range(3))) for i in range(5)])
    assert float(rec.recon) == pytest.approx(recon, rel=1e-5)
    assert float(rec.kl) == pytest.approx(kl, rel=1e-5)
    assert float(rec.elbo) == pytest.approx(-(recon + kl), rel=1e-5)
    assert float(rec.loss) == pytest.approx(recon + 0.5 * kl, rel=1e-5)   # beta=1, weight 0.5


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(1)
    mu = torch.randn(4, 3)
    logvar = torch.randn(4, 3) * 0.5
    closed = kl_standard_normal(mu, logvar)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(closed, mc, atol=0.02), (closed, mc)
    assert (closed > 0).all()


def test_learned_variance_nll():
    model = tiny(learned_variance=True)
    with torch.no_grad():
        model.log_s2.fill_(math.log(4.0))            # s^2 = 4 everywhere
    x = torch.randn(3, 12)
    with torch.no_grad():
        mu, _ = model.inference(x)
        xhat = model.generative(mu)
        rec = model.loss(x, xhat, mu, None)
    expected = 0.5 * (((x - xhat) ** 2 / 4.0) + math.log(4.0) + math.log(2 * math.pi)).sum(1).mean()
    assert float(rec.recon) == pytest.approx(float(expected), rel=1e-5)


def test_beta_zero_is_a_deterministic_autoencoder():
    model = tiny(beta=0.0)
    assert model.logvar is None
    x = torch.randn(6, 12)
    a, b = model(x), model(x)                         # no sampling: identical outputs
    assert torch.equal(a.loss, b.loss)
    assert float(a.kl) == 0.0 and float(a.loss) == pytest.approx(float(a.recon))
    # and it is exactly encode -> decode of the posterior mean
    xhat = model.generative(model.encode(x))
    assert float(a.recon) == pytest.approx(
        float(0.5 * (((x - xhat) ** 2).sum(1) + 12 * math.log(2 * math.pi)).mean()), rel=1e-6)
    # a VAE with beta>0 is stochastic
    v = tiny()
    assert not torch.equal(v(x).loss, v(x).loss)


def test_kl_warmup_schedule():
    assert [kl_weight(e, 4) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_weight(0, 0) == 1.0


def test_training_loop_learns_structured_data():
    # rank-2 structure + noise: a 2-d latent explains it, so the ELBO must improve a lot
    g = torch.Generator().manual_seed(0)
    X = (torch.randn(256, 2, generator=g) @ torch.randn(2, 12, generator=g) * 2 + 3
         + 0.1 * torch.randn(256, 12, generator=g))
    model = tiny(latent_dim=2, hidden=(32, 16))
    opt = make_optimizer(model, lr=3e-3)
    before = evaluate(model, tensor_batches(X, 64, shuffle=False), seed=0)
    for epoch in range(30):
        stats = train_epoch(model, opt, tensor_batches(X, 32, generator=g), kl_weight(epoch, 5))
    after = evaluate(model, tensor_batches(X, 64, shuffle=False), seed=0)
    assert stats.samples == 256 and stats.samples_per_s > 0
    assert after.samples == 256
    assert after.elbo > before.elbo + 50, (before.elbo, after.elbo)
    floor = 0.5 * 12 * math.log(2 * math.pi)          # unit-variance NLL with a perfect fit
    assert floor < after.recon < floor + 1.5, after.recon
    # evaluation is reproducible (seeded noise) and leaves the model unchanged
    again = evaluate(model, tensor_batches(X, 64, shuffle=False), seed=0)
    assert again.elbo == pytest.approx(after.elbo, rel=1e-9)


def test_fused_adam_available_on_cpu():
    opt = make_optimizer(tiny(), lr=1e-3)
    assert opt.defaults.get("fused") is True
    opt = make_optimizer(tiny(), lr=1e-3, fused=False)
    assert not opt.defaults.get("fused")


def test_device_cache_keeps_a_whole_first_pass_and_reshuffles_it():
    """`DeviceCache` (pretrain --gpu): the first epoch's batches pass through unchanged and are
    kept; later epochs get the same rows reshuffled per seed; a pass cut short (--max-steps) or
    over its byte budget keeps nothing."""
    import itertools

    from raviso.models.vae.loop import DeviceCache, device_cache_budget

    X = torch.arange(50 * 3, dtype=torch.float32).reshape(50, 3)
    cache = DeviceCache("cpu")
    seen = list(cache.first(tensor_batches(X, 8, shuffle=False), budget_bytes=1e9))
    assert torch.equal(torch.cat(seen), X) and cache.ready
    a = torch.cat(list(cache.batches(8, seed=1)))
    b = torch.cat(list(cache.batches(8, seed=2)))
    assert not torch.equal(a, X) and not torch.equal(a, b)
    key = lambda t: sorted(t[:, 0].tolist())  # noqa: E731
    assert key(a) == key(b) == key(X)
    assert [len(x) for x in cache.batches(8, seed=1)] == [8] * 6 + [2]
    assert torch.equal(torch.cat(list(cache.batches(8, shuffle=False))), X)

    cut = DeviceCache("cpu")
    assert len(list(itertools.islice(cut.first(tensor_batches(X, 8), 1e9), 3))) == 3
    assert not cut.ready
    small = DeviceCache("cpu")
    assert len(list(small.first(tensor_batches(X, 8), budget_bytes=X.numel() * 4 - 1))) == 7
    assert not small.ready
    assert device_cache_budget("cpu") == 0.0
