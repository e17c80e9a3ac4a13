"""The baselines that see genes and tissue: each against its gene-only parent on a small world
whose isoform shares depend on the tissue (numbers written out), shrinkage and unseen tissues,
and the tissue ridge against scikit-learn."""

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from raviso.data.labelled import Labelled
from raviso.models.baselines import standard as baselines, tissue as tb


def shares_by_tissue(seed: int = 0) -> Labelled:
    """12 genes x 2 isoforms; tissues A, B (40 rows each) and C (3 rows) with their own share of
    each gene's first isoform; isoform TPM = gene TPM x share x log-normal noise (sd 0.3)."""
    rng = np.random.default_rng(seed)
    sizes = {"A": 40, "B": 40, "C": 3}
    tissue = np.array([t for t, n in sizes.items() for _ in range(n)])
    n, g = len(tissue), 12
    gene_log = rng.normal(4, 1.0, (n, g))
    share_t = {t: rng.dirichlet([1, 1], g)[:, 0] for t in sizes}
    s = np.stack([share_t[t] for t in tissue])
    gene_tpm = 2.0 ** gene_log - 1
    iso = np.empty((n, 2 * g))
    iso[:, 0::2], iso[:, 1::2] = s * gene_tpm, (1 - s) * gene_tpm
    iso_log = np.log2(iso * 2 ** rng.normal(0, 0.3, iso.shape) + 1)
    return Labelled(sample_id=np.array([f"s{i}" for i in range(n)]), tissue=tissue, donor=None,
                    genes=gene_log.astype(np.float32), isoforms=iso_log.astype(np.float32),
                    gene_names=[f"g{j}" for j in range(g)],
                    isoform_names=[f"i{j}" for j in range(2 * g)],
                    isoform_gene=np.repeat(np.arange(g), 2))


DATA = shares_by_tissue()
VAL = np.r_[np.arange(30, 40), np.arange(70, 80), [82]]
TRAIN = np.setdiff1d(np.arange(DATA.n), VAL)


def mse(model, data=DATA) -> float:
    return float(((model.fit(data, TRAIN).predict(data, VAL) - data.isoforms[VAL]) ** 2).mean())


def test_each_beats_its_gene_only_parent_where_shares_depend_on_tissue():
    assert mse(baselines.IsoformFractionBaseline("f", share="fit")) == pytest.approx(0.4593,
                                                                                     abs=1e-3)
    assert mse(tb.IsoformFractionTissueBaseline()) == pytest.approx(0.1102, abs=1e-3)
    assert mse(baselines.PCARidgeBaseline(n_components=8)) == pytest.approx(0.7474, abs=1e-3)
    ridge = tb.PCATissueRidgeBaseline(n_components=8)
    assert mse(ridge) == pytest.approx(0.3544, abs=1e-3)
    assert ridge.tissue_scale_ == 3.0                    # chosen by leave-one-out


def test_without_tissue_signal_they_match_their_parents():
    one = dataclasses.replace(DATA, tissue=np.full(DATA.n, "A"))
    assert mse(tb.IsoformFractionTissueBaseline(shrink=0.0), one) == pytest.approx(
        mse(baselines.IsoformFractionBaseline("f", share="fit"), one), abs=1e-9)
    assert mse(tb.PCATissueRidgeBaseline(n_components=8), one) == pytest.approx(
        mse(baselines.PCARidgeBaseline(n_components=8), one), abs=1e-5)


def test_shrinkage_weight_goes_to_the_global_share_with_few_rows():
    np.testing.assert_allclose(tb.shrink_weight([0, 1, 5, 45, 1e9], 5.0),
                               [0, 1 / 6, 0.5, 0.9, 1.0])
    b = tb.IsoformFractionTissueBaseline(shrink=5.0).fit(DATA, TRAIN)
    assert b.weights_ == pytest.approx({"A": 30 / 35, "B": 30 / 35, "C": 2 / 7})
    glob = baselines.IsoformFractionBaseline("f", share="fit").fit(DATA, TRAIN)
    np.testing.assert_allclose(b.global_share_, glob.share_)
    raw = tb.IsoformFractionTissueBaseline(shrink=0.0).fit(DATA, TRAIN)   # own shares
    for t in "ABC":
        np.testing.assert_allclose(b.shares_[t] - b.global_share_,
                                   b.weights_[t] * (raw.shares_[t] - b.global_share_))
    huge = tb.IsoformFractionTissueBaseline(shrink=1e12).fit(DATA, TRAIN)
    np.testing.assert_allclose(huge.predict(DATA, VAL), glob.predict(DATA, VAL), atol=1e-6)


def test_unseen_tissue_falls_back_to_the_global_share_and_an_average_tissue():
    data = dataclasses.replace(DATA, tissue=np.where(np.arange(DATA.n) == 82, "Z", DATA.tissue))
    b = tb.IsoformFractionTissueBaseline().fit(data, TRAIN)
    glob = baselines.IsoformFractionBaseline("f", share="fit").fit(data, TRAIN)
    np.testing.assert_allclose(b.predict(data, [82]), glob.predict(data, [82]), atol=1e-6)
    assert b.n_unseen_tissue_rows_ == 1
    r = tb.PCATissueRidgeBaseline(n_components=8).fit(data, TRAIN)
    z = baselines.pca_transform(data.genes[[82]], r.pca_mean_, r.components_)
    np.testing.assert_allclose(r.predict(data, [82]),
                               z @ r.coef_[:8] + r.intercept_, rtol=1e-5, atol=1e-5)


def test_tissue_ridge_matches_sklearn_at_the_chosen_penalty():
    r = tb.PCATissueRidgeBaseline(n_components=8).fit(DATA, TRAIN)
    Z = np.concatenate([baselines.pca_transform(DATA.genes[TRAIN], r.pca_mean_, r.components_),
                        r.tissue_scale_ * tb.one_hot(DATA.tissue[TRAIN], r.tissues_)], axis=1)
    sk = Ridge(alpha=r.alpha_).fit(Z.astype(np.float64), DATA.isoforms[TRAIN].astype(np.float64))
    Zv = np.concatenate([baselines.pca_transform(DATA.genes[VAL], r.pca_mean_, r.components_),
                         r.tissue_scale_ * tb.one_hot(DATA.tissue[VAL], r.tissues_)], axis=1)
    np.testing.assert_allclose(r.predict(DATA, VAL), sk.predict(Zv), rtol=1e-4, atol=1e-4)
