"""Each baseline against a hand computation on a tiny matrix (numbers written out), and PCA+ridge
against scikit-learn and a brute-force leave-one-out."""

from math import log2

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV

from raviso.models.baselines import standard as baselines
from raviso.core import metrics
from raviso.data.labelled import Labelled

TRAIN, VAL = np.array([0, 1, 2, 3]), np.array([4, 5])


def tiny() -> Labelled:
    """Rows 0-3 train, 4-5 validate. Gene TPMs (2^x - 1): gene0 train 1, 3, 7, 0; gene1 never
    expressed in training. iso0/iso1 belong to gene0, iso2 to gene1, iso3's gene is absent."""
    genes = np.array([[1, 0], [2, 0], [3, 0], [0, 0], [4, 1], [1, 2]], np.float32)
    isoforms = np.array([[1, 0, 0, 2],
                         [1, 1, 0, 2],
                         [2, 1, 1, 2],
                         [0, 0, 1, 4],
                         [3, 1, 2, 0],
                         [0, 1, 1, 0]], np.float32)
    return Labelled(sample_id=np.array([f"s{k}" for k in range(6)]),
                    tissue=np.array(["A", "A", "B", "B", "A", "C"]), donor=None,
                    genes=genes, isoforms=isoforms, gene_names=["g0", "g1"],
                    isoform_names=["i0", "i1", "i2", "i3"],
                    isoform_gene=np.array([0, 0, 1, -1]))


def test_mean_is_the_whole_training_fold_mean():
    pred = baselines.MeanBaseline().fit(tiny(), TRAIN).predict(tiny(), VAL)
    # iso0 (1+1+2+0)/4, iso1 (0+1+1+0)/4, iso2 (0+0+1+1)/4, iso3 (2+2+2+4)/4
    np.testing.assert_array_equal(pred, [[1.0, 0.5, 0.5, 2.5]] * 2)
    assert pred.dtype == np.float32


def test_tissue_mean_with_unseen_tissue_falling_back_to_overall_mean():
    b = baselines.TissueMeanBaseline().fit(tiny(), TRAIN)
    pred = b.predict(tiny(), VAL)
    # row 4 is tissue A (train rows 0, 1); row 5 is tissue C, never seen in training
    np.testing.assert_array_equal(pred, [[1.0, 0.5, 0.0, 2.0], [1.0, 0.5, 0.5, 2.5]])
    assert b.n_unseen_tissue_rows_ == 1
    np.testing.assert_array_equal(b.predict(tiny(), np.array([2])), [[1.0, 0.5, 1.0, 3.0]])


def test_isoform_fraction_ratio_of_sums_in_tpm_space():
    b = baselines.IsoformFractionBaseline().fit(tiny(), TRAIN)
    # gene0 training TPM sum 1+3+7+0 = 11; iso0 TPM 1+1+3+0 = 5; iso1 TPM 0+1+1+0 = 2
    np.testing.assert_allclose(b.share_[:2], [5 / 11, 2 / 11])
    assert b.n_fallback_ == 2          # iso2: gene never expressed in training; iso3: no gene
    pred = b.predict(tiny(), VAL)
    # row 4: gene0 = 4 -> TPM 15; row 5: gene0 = 1 -> TPM 1
    expect = [[log2(15 * 5 / 11 + 1), log2(15 * 2 / 11 + 1), 0.5, 2.5],
              [log2(1 * 5 / 11 + 1), log2(1 * 2 / 11 + 1), 0.5, 2.5]]
    np.testing.assert_allclose(pred, expect, rtol=1e-6)


def test_isoform_fraction_fit_recovers_an_exact_share():
    """iso0 = log2(0.25 * TPM_gene0 + 1) exactly, so the log-space fit must find 0.25."""
    data = tiny()
    data.isoforms[:, 0] = np.log2(0.25 * (np.exp2(data.genes[:, 0]) - 1) + 1)
    b = baselines.IsoformFractionBaseline(share="fit").fit(data, TRAIN)
    assert b.share_[0] == pytest.approx(0.25, rel=1e-3)
    assert b.n_fallback_ == 2
    pred = b.predict(data, VAL)
    np.testing.assert_allclose(pred[:, 0], [log2(0.25 * 15 + 1), log2(0.25 * 1 + 1)], rtol=1e-3)
    np.testing.assert_allclose(pred[:, 2:], [[0.5, 2.5]] * 2)


def test_fit_log_share_is_the_least_squares_share():
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(3)
    gene_tpm = np.exp2(rng.gamma(2, 1.5, (50, 6))) - 1
    y = np.log2(0.3 * gene_tpm * rng.lognormal(0, 1, (50, 6)) + 1)
    y[:, 5] = 0.0                                        # never expressed: share 0
    got = baselines.fit_log_share(gene_tpm, y)
    assert got[5] == 0.0
    def loss(share, g, yy):          # the objective, written out independently
        return np.sum((np.log2(share * g + 1) - yy) ** 2, axis=0)
    for j in range(5):
        ref = minimize_scalar(lambda s: loss(np.array([s]), gene_tpm[:, j:j + 1], y[:, j:j + 1])[0],
                              bounds=(0, 4), method="bounded", options={"xatol": 1e-10})
        assert got[j] == pytest.approx(ref.x, rel=2e-3)
        ratio = np.sum(np.exp2(y[:, j]) - 1) / gene_tpm[:, j].sum()
        assert loss(got[j:j + 1], gene_tpm[:, j:j + 1], y[:, j:j + 1]) <= \
            loss(np.array([ratio]), gene_tpm[:, j:j + 1], y[:, j:j + 1])


def test_fit_log_shares_torch_path_matches_numpy():
    """The torch path (what a GPU runs, `share_net` on ``device="cuda"``) gives the numpy
    path's shares, here on CPU tensors: same algorithm, float64 both."""
    rng = np.random.default_rng(5)
    genes = rng.gamma(2, 1.5, (60, 7)).astype(np.float32)
    gene_of = np.array([0, 0, 1, 2, 2, 2, 4, 6, 6])
    isoforms = np.log2(np.exp2(genes[:, gene_of]) * rng.dirichlet(np.ones(9), 60) + 1)
    rows, cols = np.arange(5, 60), np.array([0, 1, 2, 3, 5, 6, 8])
    ref = baselines.fit_log_shares(genes, isoforms.astype(np.float16), rows, cols, gene_of)
    got = baselines.fit_log_shares(genes, isoforms.astype(np.float16), rows, cols, gene_of,
                                   use_torch=True)
    assert ref.shape == (7,) and 0 < ref.min() and ref.max() < 4
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_baselines_on_real_geuvadis_transcripts(realdata):
    """91 real LCL samples, chr19: genes = sums of their transcripts, log2(CPM+1). The fitted
    share and PCA+ridge must beat the training mean on held-out samples; the ratio-of-sums share
    does not (see raviso.models.baselines.standard), which this pins down as a known property."""
    import pandas as pd

    df = pd.read_csv(realdata / "geuvadis_chr19" / "TrQuantCount_CEU_chr19.tsv.gz", sep="\t")
    counts = df.iloc[:, 2:].to_numpy(float).T
    genes = sorted(df.Gene_Symbol.unique())
    gene_of = np.searchsorted(genes, df.Gene_Symbol.to_numpy())
    gene_counts = np.zeros((counts.shape[0], len(genes)))
    np.add.at(gene_counts.T, gene_of, counts.T)
    lib = gene_counts.sum(axis=1, keepdims=True) / 1e6
    n = counts.shape[0]
    data = Labelled(sample_id=np.array(df.columns[2:]), tissue=np.full(n, "LCL"), donor=None,
                    genes=np.log2(gene_counts / lib + 1).astype(np.float32),
                    isoforms=np.log2(counts / lib + 1).astype(np.float32),
                    gene_names=genes, isoform_names=df.TargetID.tolist(), isoform_gene=gene_of)
    fold = np.random.default_rng(0).permutation(np.arange(n) % 5)
    train, val = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    Y = data.isoforms[val]
    mse = {name: metrics.per_sample_mse(b.fit(data, train).predict(data, val), Y).mean()
           for name, b in [("mean", baselines.MeanBaseline()),
                           ("ratio", baselines.IsoformFractionBaseline()),
                           ("fit", baselines.IsoformFractionBaseline(share="fit")),
                           ("pca_ridge", baselines.PCARidgeBaseline(n_components=20))]}
    assert mse["fit"] < 0.95 * mse["mean"] and mse["pca_ridge"] < 0.95 * mse["mean"]
    assert mse["ratio"] > mse["mean"]


def _regression(seed=0, n=40, g=12, m=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g)).astype(np.float32)
    Y = (X[:, :3] @ rng.normal(size=(3, m)) + rng.normal(0, 0.5, (n, m))).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("block_bytes", [None, 8 * 15])   # None: one block; else 1 column each
def test_ridge_select_fit_is_exact_leave_one_out(block_bytes, monkeypatch):
    """Every alpha's LOO error equals refitting without each row; the coefficients at the
    chosen alpha equal sklearn's Ridge on all rows; blocks of one column give the same."""
    if block_bytes:
        monkeypatch.setattr(metrics, "BLOCK_BYTES", block_bytes)
    Z, Y = _regression(n=15, g=4, m=3)
    alphas = (0.1, 3.0, 100.0)
    alpha, loo, z_mean, coef, y_mean = baselines.ridge_select_fit(Z, Y, alphas)
    assert alpha == alphas[int(np.argmin(loo))]
    full = Ridge(alpha=alpha).fit(Z.astype(float), Y.astype(float))
    np.testing.assert_allclose(coef, full.coef_.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_mean - z_mean @ coef, full.intercept_, rtol=1e-5, atol=1e-6)
    for a, got in zip(alphas, loo):
        errs = []
        for i in range(len(Z)):
            keep = np.arange(len(Z)) != i
            fit = Ridge(alpha=a).fit(Z[keep].astype(float), Y[keep].astype(float))
            errs.append((fit.predict(Z[i:i + 1].astype(float))[0] - Y[i]) ** 2)
        assert got == pytest.approx(np.mean(errs), rel=1e-6)


def test_pca_ridge_matches_sklearn():
    X, Y = _regression()
    data = Labelled(sample_id=np.arange(40).astype(str), tissue=np.full(40, "t"), donor=None,
                    genes=X, isoforms=Y, gene_names=list("abcdefghijkl"),
                    isoform_names=list("vwxyz"), isoform_gene=np.full(5, -1))
    train, val = np.arange(30), np.arange(30, 40)
    b = baselines.PCARidgeBaseline(n_components=6).fit(data, train)
    pca = PCA(n_components=6, svd_solver="full").fit(X[train])
    ridge = RidgeCV(alphas=baselines.DEFAULT_ALPHAS).fit(pca.transform(X[train]), Y[train])
    assert b.alpha_ == pytest.approx(ridge.alpha_)
    assert baselines.DEFAULT_ALPHAS[0] < b.alpha_ < baselines.DEFAULT_ALPHAS[-1]  # interior
    np.testing.assert_allclose(b.predict(data, val), ridge.predict(pca.transform(X[val])),
                               rtol=1e-4, atol=1e-4)
    fixed = baselines.PCARidgeBaseline(n_components=6, alpha=5.0).fit(data, train)
    ref = Ridge(alpha=5.0).fit(pca.transform(X[train]), Y[train])
    np.testing.assert_allclose(fixed.predict(data, val), ref.predict(pca.transform(X[val])),
                               rtol=1e-4, atol=1e-4)
