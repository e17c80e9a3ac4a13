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


# -- the share_net context chosen by inner CV when a pretrained latent is attached ---------------
def _context_world(helps: bool, n_donors: int = 16, per_donor: int = 8, g: int = 60,
                   n_multi: int = 20, seed: int = 0):
    """A labelled set whose isoform shares follow a 2-d per-sample state s, with a latent 'vae'
    attached directly (no pretraining). ``helps``: s is buried in 60 noisy genes (a PCA of 128
    samples cannot find it) and the latent is s; otherwise the genes carry s in their top
    components and the latent is noise."""
    from raviso.data.labelled import Labelled

    rng = np.random.default_rng(seed)
    n = n_donors * per_donor
    s = rng.normal(size=(n, 2))
    B = rng.normal(size=(2, g))
    if helps:
        G = 5 + rng.normal(0, 1.0, (n, g)) + 0.15 * s @ B
        Z = s + rng.normal(0, 0.05, s.shape)
    else:
        G = 5 + rng.normal(0, 0.3, (n, g)) + 1.5 * s @ B
        Z = rng.normal(size=(n, 2))
    logit = (s @ rng.normal(0, 1.5, (2, 2 * n_multi))).reshape(n, n_multi, 2)
    share = np.exp(logit) / np.exp(logit).sum(-1, keepdims=True)
    tpm = (np.exp2(G[:, :n_multi]) - 1)[:, :, None] * share
    Y = np.log2(tpm.reshape(n, -1) + 1) + rng.normal(0, 0.1, (n, 2 * n_multi))
    data = Labelled(sample_id=np.array([f"S{i:03d}" for i in range(n)]),
                    tissue=np.array(["Lung", "Liver"])[np.arange(n) % 2],
                    donor=np.repeat([f"D{i:02d}" for i in range(n_donors)], per_donor),
                    genes=G.astype(np.float32), isoforms=Y.astype(np.float32),
                    gene_names=[f"G{j}" for j in range(g)],
                    isoform_names=[f"T{j}" for j in range(2 * n_multi)],
                    isoform_gene=np.repeat(np.arange(n_multi), 2).astype(np.int64))
    data.latent["vae"] = Z.astype(np.float32)
    return data


@pytest.mark.parametrize("helps", [True, False])
def test_context_chosen_by_inner_cv_and_saved(helps, tmp_path, one_torch_thread):
    """From select_below up, with a 'vae' latent attached, recommended compares share_net's PCA
    and VAE contexts by inner donor-grouped CV and keeps ONE: the VAE context where the latent
    carries the isoform-driving state, PCA where the latent is noise. MODEL records the choice and
    its inner-CV figures, and carries the encoder only when the VAE context was chosen."""
    from cvdata import write_tiny_run

    from raviso.models.saved import MODEL_JSON, REGRESSOR_DIR, fit_model, load_predictor

    data = _context_world(helps)
    vae = "share_net[context=vae]"
    run = write_tiny_run(tmp_path / "run", data.gene_names, latent_dim=2)
    model = fit_model(data, "recommended", tmp_path / "m", runs={"vae": str(run)},
                      options={"epochs": 20, "select_below": 50})
    sel = model.selection_
    assert sel["mode"] == "inner-cv-context" and sel["candidates"][:2] == ["share_net", vae]
    assert set(sel["inner_mse"]) == {"share_net", vae} and sel["inner_folds"] == 3
    want, other = (vae, "share_net") if helps else ("share_net", vae)
    assert sel["chosen"] == want and sel["weights"] == {want: 1.0}
    assert sel["inner_mse"][want] < 0.5 * sel["inner_mse"][other]       # not a coin toss
    assert list(model.models_) == [want]
    meta = json.loads((tmp_path / "m" / MODEL_JSON).read_text())
    assert meta["selection"] == sel
    assert meta["encoders"] == ({"vae": "encoder-vae"} if helps else {})
    assert ("latent:vae" in meta["features"]) == helps
    assert (tmp_path / "m" / "encoder-vae").is_dir() == helps
    back = load_predictor(tmp_path / "m" / REGRESSOR_DIR)
    rows = np.arange(10)
    np.testing.assert_allclose(back.predict(data, rows), model.predict(data, rows), atol=1e-5)


def test_latent_joins_the_blend_below_select_below_and_nothing_changes_without_it(
        one_torch_thread):
    """Below select_below the VAE-context share_net is one more blend candidate (it takes the
    weight where the latent carries the state); without a latent, or with latent_context=none,
    the candidates and the selection are those of the model without it."""
    data = _context_world(True)
    rows = np.arange(96)
    vae = "share_net[context=vae]"
    rec = make_variant("recommended", epochs=20).fit(data, rows)
    sel = rec.selection_
    assert sel["mode"] == "inner-cv" and vae in sel["inner_mse"]
    assert sel["weights"].get(vae, 0) > 0.5 and rec.latents_ == ["vae"]
    off = make_variant("recommended", epochs=20, latent_context="none").fit(data, rows)
    data.latent.clear()
    plain = make_variant("recommended", epochs=20).fit(data, rows)
    assert plain.selection_ == off.selection_ and vae not in plain.selection_["candidates"]
    assert plain.latents_ == [] and plain.selection_["candidates"] == plain.candidates


def test_fit_and_cv_attach_the_latent_for_recommended_only_when_given(tmp_path):
    from raviso.evaluate.engine.inputs import latent_runs

    assert latent_runs(["recommended"]) == {}
    assert latent_runs(["recommended"], pretrained=tmp_path) == {"vae": str(tmp_path)}
    assert latent_runs(["recommended[latent_context=none]"], pretrained=tmp_path) == {}
    assert latent_runs(["pca_ridge"], pretrained=tmp_path) == {}


def test_fit_store_with_pretrained_records_the_choice_and_predicts(tmp_path, one_torch_thread):
    """`raviso fit STORE --pretrained RUN` (no CV): the VAE-context and fine-tuned share_net are
    among the candidates in model.json's selection, the encoder is in MODEL exactly when a chosen part reads
    it, fit prints the choice, and predict reproduces the fitted model through MODEL."""
    from cvdata import write_tiny_run, write_tiny_store

    from raviso.models.saved import MODEL_JSON
    from raviso.serve.fit import fit_store
    from raviso.serve.predict import predict_file, read_predictions

    store, d = write_tiny_store(tmp_path / "store", n_donors=9)
    run = write_tiny_run(tmp_path / "run", d["genes"])
    lines = []
    fit_store(store, out=tmp_path / "m", pretrained=run, cv_folds=0, epochs=3,
              progress=lines.append)
    meta = json.loads((tmp_path / "m" / MODEL_JSON).read_text())
    sel = meta["selection"]
    assert "share_net[context=vae]" in sel["candidates"] and sel["mode"] == "inner-cv"
    assert "share_net[context=vae]" in sel["inner_mse"]
    assert "share_net[context=finetune]" in sel["inner_mse"]
    reads_vae = any(k in c for c in sel["weights"] for k in ("context=vae", "context=finetune"))
    assert ("vae" in meta["encoders"]) == reads_vae == ("latent:vae" in meta["features"])
    assert any(line.startswith("recommended: ") and "share_net[context=vae]" in line
               for line in lines)
    ids, P, _ = read_predictions(predict_file(tmp_path / "m", store, tmp_path / "p.parquet"))
    assert ids == d["sample_id"] and np.isfinite(P).all()
