"""``share_net``: the gene-anchored share model. The segment softmax against a dense reference,
shares summing to one per gene, the starting point (= ``isoform_fraction_fit``), GTEx width, no
leakage from validation rows, and that it beats the strong baselines on the generator's data."""

import numpy as np
import pytest
import torch

from raviso.core.errors import RavisoError
from raviso.data.labelled import Labelled
from raviso.models.baselines.standard import IsoformFractionBaseline
from raviso.models.context.share_net import segment_softmax
from raviso.models.training import inner_split
from raviso.models.context.share_net import ShareNet
from raviso.models.variants import make_variant, variant_needs

FAST = dict(epochs=3, lr=1e-2, batch_size=16, n_components=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def world_data(n=240, n_genes=40, n_isoforms=120, seed=3, structure=None) -> Labelled:
    """A labelled set from the synthetic generator itself (`raviso.synth.world`): shares that move
    with tissue and a hidden state, noisy genes and isoforms, donors giving several tissues."""
    from raviso.synth import world as w

    world = w.build_world(seed, 10, n, n_genes, n_isoforms, structure)
    genes, iso, truth = w.gtex_block(world, slice(0, n), np.random.default_rng([seed, 1]))
    gene_col = np.argsort(world.gtex_gene_order)           # internal gene -> file column
    iso_gene = gene_col[world.iso_gene[world.isoform_order]]
    return Labelled(sample_id=np.array(world.gtex_ids),
                    tissue=np.array([f"t{t}" for t in world.gtex_tissue]),
                    donor=np.array([f"d{d}" for d in world.gtex_donor]),
                    genes=genes, isoforms=iso, gene_names=[f"g{k}" for k in range(n_genes)],
                    isoform_names=[f"i{k}" for k in range(n_isoforms)],
                    isoform_gene=iso_gene.astype(np.int64), truth=truth)


def test_segment_softmax_matches_a_dense_reference():
    rng = np.random.default_rng(0)
    seg = torch.from_numpy(rng.integers(0, 7, 50))
    logits = torch.from_numpy(rng.normal(0, 30, (5, 50)).astype(np.float32))  # large: stability
    got = segment_softmax(logits, seg, 8)                  # segment 7 has no columns
    want = torch.empty_like(logits)
    for s in range(7):
        cols = (seg == s).nonzero().flatten()
        want[:, cols] = torch.softmax(logits[:, cols].double(), dim=1).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    sums = torch.zeros(5, 8).index_add_(1, seg, got)
    torch.testing.assert_close(sums[:, :7], torch.ones(5, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):      # bf16 input: still float32 shares
        assert segment_softmax(logits.bfloat16(), seg, 8).dtype == torch.float32


def test_registered_with_its_options_and_needs():
    assert variant_needs("share_net") == {"genes", "tissue"}
    m = make_variant("share_net", n_components=8, epochs=None, hidden="9")  # hidden: not its own
    assert m.opts.n_components == 8 and m.opts.epochs == 60 and m.opts.tissue
    assert m.opts.context_scale == "variance" and m.opts.tissue_scale == 4.0
    assert not m.opts.refit
    with pytest.raises(RavisoError, match="share_net: bad option lr=0.0 \\(> 0\\)"):
        make_variant("share_net", lr=0)
    with pytest.raises(RavisoError, match="context_scale"):
        make_variant("share_net", context_scale="log")
    shared = dict(lr=1e-3, epochs=20, share_net={"lr": 3e-3, "epochs": 25})  # per-variant dict
    assert make_variant("share_net", **shared).opts.lr == 3e-3
    assert make_variant("share_net", **shared).opts.epochs == 25
    assert make_variant("ffnn_plus", **shared).opts.lr == 1e-3


def test_starts_at_isoform_fraction_fit_and_shares_sum_to_one():
    """epochs=0, no ridge start: the model is isoform_fraction_fit fitted on the same rows;
    the shares of every measured gene's isoforms sum to 1; unmeasured-gene isoforms are free."""
    data = world_data(n=120)
    data.isoform_gene[:3] = -1                              # three isoforms without a gene
    train, val = np.arange(90), np.arange(90, 120)
    m = ShareNet(epochs=0, ridge_start=False, anchor="none", n_components=4, seed=2).fit(data,
                                                                                        train)
    fit_rows, _ = inner_split(train, data.donor, 0.15, 2)
    base = IsoformFractionBaseline("f", share="fit").fit(data, fit_rows)
    keep = base.share_ > 1e-3                               # away from the start's share floor
    np.testing.assert_allclose(m.predict(data, val)[:, keep], base.predict(data, val)[:, keep],
                               atol=2e-4)
    np.testing.assert_allclose(m.predict(data, val)[:, :3],
                               np.repeat(base.mean_[None, :3], len(val), 0), atol=1e-6)
    shares = m.shares(data, val)
    sums = np.zeros((len(val), data.genes.shape[1]))
    for j, g in enumerate(data.isoform_gene):
        if g >= 0:
            sums[:, g] += shares[:, j]
    measured = np.unique(data.isoform_gene[data.isoform_gene >= 0])
    np.testing.assert_allclose(sums[:, measured], 1.0, atol=1e-5)


def test_trains_at_gtex_width():
    """A few rows x 156,958 isoforms over 18,965 genes: trains, predicts, shares sum to 1."""
    n, n_genes, n_iso = 6, 18_965, 156_958
    rng = np.random.default_rng(0)
    iso_gene = np.sort(rng.integers(0, n_genes, n_iso))
    iso_gene[:5] = -1
    data = Labelled(sample_id=np.array([f"s{k}" for k in range(n)]),
                    tissue=np.array(["a", "b"] * 3), donor=None,
                    genes=rng.gamma(1, 2, (n, n_genes)).astype(np.float32),
                    isoforms=rng.gamma(1, 1, (n, n_iso)).astype(np.float32),
                    gene_names=[f"g{k}" for k in range(n_genes)],
                    isoform_names=[f"i{k}" for k in range(n_iso)], isoform_gene=iso_gene)
    m = ShareNet(epochs=1, batch_size=4, n_components=3).fit(data, np.arange(n))
    assert m.history_["epochs_run"] == 1 and np.isfinite(m.history_["train_loss"][0])
    pred = m.predict(data, np.arange(2))
    assert pred.shape == (2, n_iso) and pred.dtype == np.float32 and np.isfinite(pred).all()
    shares = torch.from_numpy(m.shares(data, np.arange(2)))
    sums = torch.zeros(2, n_genes + 1).index_add_(1, m.module.segment, shares)[:, :n_genes]
    measured = torch.from_numpy(np.unique(iso_gene[iso_gene >= 0]))
    torch.testing.assert_close(sums[:, measured], torch.ones(2, len(measured)))


def test_no_validation_row_influences_training():
    """Scrambled validation genes/isoforms/tissues before fit: bit-identical parameters and
    predictions; every batch drew training rows only."""
    data = world_data(n=120)
    train = np.arange(0, 120, 2)
    val = np.setdiff1d(np.arange(120), train)
    other = world_data(n=120)
    rng = np.random.default_rng(5)
    for arr in (other.genes, other.isoforms):
        arr[val] = rng.permutation(arr[val].ravel()).reshape(arr[val].shape) * 3
    other.tissue[val] = "scrambled"
    data.genes.flags.writeable = False                     # as in a cv trial (object-store)
    data.isoforms.flags.writeable = False
    seen = set()
    a = ShareNet(seed=4, **FAST).fit(data, train, on_batch=lambda e, r: seen.update(r.tolist()))
    b = ShareNet(seed=4, **FAST).fit(other, train)
    assert seen <= set(train.tolist())
    for (k, va), vb in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(va, vb), k
    np.testing.assert_array_equal(a.predict(data, val), b.predict(data, val))


def test_refit_trains_on_every_training_row_for_the_chosen_epochs():
    """refit=True: the inner split picks the epoch count, then the model is refitted on ALL
    training rows (never a validation row) for exactly that many epochs."""
    data = world_data(n=120)
    train = np.arange(0, 120, 2)
    seen = []
    m = ShareNet(seed=4, refit=True, **FAST).fit(
        data, train, on_batch=lambda e, r: seen.append(set(r.tolist())))
    h = m.history_
    assert h["best_epoch"] > 0, "the toy data must let training beat the start"
    assert h["refit"] == {"rows": len(train), "epochs": h["best_epoch"],
                          "train_loss": h["refit"]["train_loss"]}
    assert len(h["refit"]["train_loss"]) == h["best_epoch"]
    fit_rows, _ = inner_split(train, data.donor, 0.15, 4)
    refit_batches = seen[-(-len(train) // FAST.get("batch_size", 64)) * h["best_epoch"]:]
    assert set().union(*refit_batches) == set(train.tolist())      # every row, the inner val too
    assert set().union(*seen) <= set(train.tolist()) and len(fit_rows) < len(train)


def test_variance_context_scale_shrinks_weak_components_hardest():
    """context_scale="variance": column k of the context has std var_k / mean(var) (so the
    decay prior favours the top components); "unit" standardises; tissue_scale is the one-hot."""
    data = world_data(n=120)
    rows = np.arange(120)
    for scale in ("variance", "unit"):
        m = ShareNet(n_components=5, context_scale=scale, tissue_scale=4.0)
        m.features.fit(data, rows)
        c = m.features(data, rows, "cpu").numpy().astype(np.float64)
        raw = m.features._project(data, rows).std(axis=0).astype(np.float64)
        want = raw ** 2 / np.mean(raw ** 2) if scale == "variance" else np.ones(5)
        np.testing.assert_allclose(c[:, :5].std(axis=0), want, rtol=1e-3)
        assert set(np.unique(c[:, 5:])) == {0.0, 4.0} and (c[:, 5:] > 0).sum(1).max() == 1


def test_deterministic_by_seed():
    data = world_data(n=100)
    train, val = np.arange(80), np.arange(80, 100)
    pa = ShareNet(seed=1, **FAST).fit(data, train).predict(data, val)
    pb = ShareNet(seed=1, **FAST).fit(data, train).predict(data, val)
    pc = ShareNet(seed=2, **FAST).fit(data, train).predict(data, val)
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)


def test_beats_the_strong_baselines_on_generator_data():
    data = world_data(n=400, n_genes=60, n_isoforms=240)
    val = np.flatnonzero(np.isin(data.donor, np.unique(data.donor)[::5]))  # held-out donors
    train = np.setdiff1d(np.arange(data.n), val)
    m = ShareNet(seed=0, n_components=16).fit(data, train)
    assert m.history_["best_epoch"] > 0                    # training beat the starting point
    mse = lambda p: float(np.mean((p - data.isoforms[val]) ** 2))  # noqa: E731
    got = mse(m.predict(data, val))
    for name in ("isoform_fraction_fit", "tissue_mean", "pca_ridge"):
        base = mse(make_variant(name, n_components=16).fit(data, train).predict(data, val))
        assert got < base, (name, got, base)


def test_fitted_anchor_recovers_genes_quantified_apart_from_their_isoforms():
    """Genes quantified separately (``gene_extra``: a per-tissue and a per-sample factor on the
    measured gene): the fitted anchor is kept by the held-out donors and wins back MSE the raw
    gene loses; saved and loaded it predicts the same. On the clean world it costs nothing."""
    from raviso.synth.structure import Structure

    def held_out(data, **opts):
        val = np.flatnonzero(np.isin(data.donor, np.unique(data.donor)[::5]))
        train = np.setdiff1d(np.arange(data.n), val)
        m = ShareNet(seed=0, n_components=16, epochs=10, **opts).fit(data, train)
        return m, val, float(np.mean((m.predict(data, val) - data.isoforms[val]) ** 2))

    extra = world_data(n=400, n_genes=60, n_isoforms=240, structure=Structure(gene_extra=0.5))
    fitted, val, got = held_out(extra)
    _, _, raw = held_out(extra, anchor="none")
    assert fitted.history_["anchor_start"]["used"]
    assert got < raw - 0.008, (got, raw)          # 0.583 vs 0.598 when written
    assert 0.05 < float(fitted.module.blend.detach().mean()) < 0.95     # blended, not replaced
    clean = world_data(n=400, n_genes=60, n_isoforms=240)
    assert held_out(clean)[2] <= held_out(clean, anchor="none")[2] + 0.002


def test_a_model_saved_before_the_anchor_offset_loads_with_it_at_zero(tmp_path):
    data = world_data(n=100)
    m = ShareNet(seed=1, **FAST).fit(data, np.arange(80))
    state = {k: v for k, v in m.module.state_dict().items() if k not in ("shift", "A")}
    again = m.empty_module(state)
    again.load_state_dict(state)
    assert float(again.shift.abs().sum() + again.A.abs().sum()) == 0.0
    with pytest.raises(RavisoError, match="anchor"):
        ShareNet(anchor="sum")


def test_ffnn_plus_trains_and_beats_tissue_mean():
    """The FFNN done well (same context and recipe): tissue one-hot, wide layer, skip."""
    data = world_data(n=400, n_genes=60, n_isoforms=240)
    val = np.flatnonzero(np.isin(data.donor, np.unique(data.donor)[::5]))
    train = np.setdiff1d(np.arange(data.n), val)
    m = make_variant("ffnn_plus", n_components=16, hidden="64", seed=0).fit(data, train)
    assert m.hidden == (64,) and variant_needs("ffnn_plus") == {"genes", "tissue"}
    pred = m.predict(data, val)
    assert pred.shape == (len(val), 240) and np.isfinite(pred).all()
    mse = lambda p: float(np.mean((p - data.isoforms[val]) ** 2))  # noqa: E731
    base = make_variant("tissue_mean").fit(data, train).predict(data, val)
    assert mse(pred) < mse(base), (mse(pred), mse(base))


def test_start_residual_torch_path_matches_numpy():
    """The ridge start's residual targets as a GPU computes them (torch, here on CPU tensors)
    equal the numpy path's, block by block, including isoforms without a gene."""
    from raviso.models.context.residual import StartResidual

    data = world_data(n=60, n_genes=10, n_isoforms=30)
    data.isoform_gene[[3, 17]] = -1
    rng = np.random.default_rng(0)
    share, free = rng.uniform(0.05, 1, 30), rng.normal(0, 0.3, 30)
    rows = np.arange(5, 50)
    ref, fast = StartResidual(data, share, free), StartResidual(data, share, free, use_torch=True)
    for cols in (slice(0, 12), slice(12, 30)):
        np.testing.assert_allclose(fast[rows, cols], ref[rows, cols], rtol=1e-12, atol=1e-12)
    assert ref[rows, slice(0, 30)].shape == (45, 30)
    anchored = rng.normal(2, 1, (len(rows), 10)).astype(np.float32)   # share_net's fitted anchor
    shuffled = rng.permutation(rows)
    a = StartResidual(data, share, free, genes=anchored, rows=rows)
    b = StartResidual(data, share, free, use_torch=True, genes=anchored, rows=rows)
    np.testing.assert_allclose(a.gene_values(shuffled), anchored[shuffled - 5])
    np.testing.assert_allclose(b[rows, slice(0, 30)], a[rows, slice(0, 30)], rtol=1e-12,
                               atol=1e-12)
    assert not np.allclose(a[rows, slice(0, 30)], ref[rows, slice(0, 30)])
