"""``share_net[context=finetune]``: share_net whose context is the pretrained VAE's encoder, trained
with the head. It starts exactly at the frozen ``vae`` context (RUN genes matched by name), moves
the encoder and fits the training rows better than the frozen context; it saves and reloads to
identical predictions; recommended scores it by inner CV; without its run it is a one-line error."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch

from raviso.core.errors import RavisoError
from raviso.data.labelled import Labelled
from raviso.models.variants import make_variant

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FT = "share_net[context=finetune]"
OPTS = dict(epochs=12, patience=12, lr=1e-2, batch_size=16)


def _world(tmp_path, n_donors: int = 12, per_donor: int = 8, g: int = 40, n_multi: int = 15,
           seed: int = 0) -> Labelled:
    """Isoform shares driven by a 2-d state buried in noisy genes, with a RUN whose (untrained)
    encoder lists the genes in REVERSED order: its latent and its loader attached as
    `raviso.evaluate.engine.inputs.attach_latents` attaches them."""
    from cvdata import write_tiny_run

    from raviso.train.runs import load_run

    rng = np.random.default_rng(seed)
    n = n_donors * per_donor
    s = rng.normal(size=(n, 2))
    G = 5 + rng.normal(0, 1.0, (n, g)) + 0.6 * s @ rng.normal(size=(2, g))
    logit = (s @ rng.normal(0, 1.5, (2, 2 * n_multi))).reshape(n, n_multi, 2)
    share = np.exp(logit) / np.exp(logit).sum(-1, keepdims=True)
    tpm = (np.exp2(G[:, :n_multi]) - 1)[:, :, None] * share
    Y = np.log2(tpm.reshape(n, -1) + 1) + rng.normal(0, 0.1, (n, 2 * n_multi))
    names = [f"G{j}" for j in range(g)]
    data = Labelled(sample_id=np.array([f"S{i:03d}" for i in range(n)]),
                    tissue=np.array(["Lung", "Liver"])[np.arange(n) % 2],
                    donor=np.repeat([f"D{i:02d}" for i in range(n_donors)], per_donor),
                    genes=G.astype(np.float32), isoforms=Y.astype(np.float32),
                    gene_names=names, isoform_names=[f"T{j}" for j in range(2 * n_multi)],
                    isoform_gene=np.repeat(np.arange(n_multi), 2).astype(np.int64))
    run = write_tiny_run(tmp_path / "run", names[::-1], latent_dim=2)
    data.latent["vae"] = load_run(run).encode_named(data.genes, names)
    data.encoders["vae"] = partial(load_run, run)
    return data


def _train_mse(model, data, rows) -> float:
    return float(np.mean((model.predict(data, rows) - data.isoforms[rows]) ** 2))


def test_finetune_starts_at_the_frozen_context_then_moves_the_encoder_and_fits_better(tmp_path):
    from raviso.train.runs import load_run

    data = _world(tmp_path)
    rows = np.arange(data.n)
    frozen = make_variant("share_net[context=vae]", **OPTS).fit(data, rows)
    tuned = make_variant(FT, **OPTS).fit(data, rows)
    # same start (same scaled mu, same ridge decision): the genes were matched by name
    assert tuned.history_["val_loss"][0] == pytest.approx(frozen.history_["val_loss"][0],
                                                          rel=1e-5)
    assert tuned.history_["ridge_start"] == pytest.approx(frozen.history_["ridge_start"],
                                                          rel=1e-5)
    assert len(tuned.history_["train_loss"]) == len(frozen.history_["train_loss"]) == 12
    assert tuned.history_["train_loss"][-1] < 0.95 * frozen.history_["train_loss"][-1]
    assert _train_mse(tuned, data, rows) < _train_mse(frozen, data, rows)
    start = load_run(tmp_path / "run").model
    with torch.no_grad():
        moved = [float((a - b).abs().max()) for a, b in zip(
            tuned.module.encoder.parameters(), [*start.encoder.parameters(),
                                                *start.mu.parameters()])]
    assert len(moved) == 4 and min(moved) > 1e-4   # every encoder tensor was trained
    assert tuned.history_["encoder"]["name"] == "run"


def test_encoder_learning_rate_is_its_own_option(tmp_path):
    """encoder_lr moves the encoder (a tiny rate barely does) and leaves the head's lr alone."""
    data = _world(tmp_path)
    rows = np.arange(data.n)
    slow = make_variant("share_net[context=finetune,encoder_lr=1e-7]", **OPTS).fit(data, rows)
    groups = slow._optimizer().param_groups
    assert [g["lr"] for g in groups] == [OPTS["lr"], OPTS["lr"], 1e-7]
    from raviso.train.runs import load_run

    start = load_run(tmp_path / "run").model.mu.weight
    with torch.no_grad():
        assert float((slow.module.encoder[-1].weight - start).abs().max()) < 1e-4
    with pytest.raises(RavisoError, match="encoder_lr=0"):
        make_variant("share_net[context=finetune,encoder_lr=0]")


def test_save_load_round_trip_is_identical_and_model_json_names_the_run(tmp_path):
    from raviso.models.saved import MODEL_JSON, REGRESSOR_DIR, fit_model, load_predictor

    data = _world(tmp_path)
    model = fit_model(data, FT, tmp_path / "m", runs={"vae": str(tmp_path / "run")},
                      options=dict(OPTS, tissue=False))
    meta = json.loads((tmp_path / "m" / MODEL_JSON).read_text())
    assert meta["variant"] == FT and meta["encoders"] == {"vae": "encoder-vae"}
    assert meta["encoder_runs"] == {"vae": str(tmp_path / "run")}
    back = load_predictor(tmp_path / "m" / REGRESSOR_DIR)
    assert back.context == "finetune" and type(back) is type(model)
    rows = np.arange(data.n)
    data.encoders.clear()                          # predicting needs no RUN, only MODEL
    np.testing.assert_array_equal(back.predict(data, rows), model.predict(data, rows))


def test_recommended_scores_the_finetuned_context_by_inner_cv(tmp_path):
    data = _world(tmp_path)
    rows = np.arange(data.n)
    rec = make_variant("recommended", select_below=50, **OPTS).fit(data, rows)
    sel = rec.selection_
    assert sel["mode"] == "inner-cv-context"
    assert sel["candidates"][:3] == ["share_net", "share_net[context=vae]", FT]
    assert set(sel["inner_mse"]) == {"share_net", "share_net[context=vae]", FT}
    assert all(np.isfinite(v) and v > 0 for v in sel["inner_mse"].values())
    assert len(sel["inner_mse_per_fold"][FT]) == sel["inner_folds"] == 3
    best = min(sel["inner_mse"], key=sel["inner_mse"].get)
    assert sel["chosen"] == best and list(rec.models_) == [best]
    data.encoders.clear()                          # the latent alone: no fine-tuned candidate
    plain = make_variant("recommended", select_below=50, **OPTS).fit(data, rows)
    assert FT not in plain.selection_["candidates"]


def test_without_its_run_or_with_another_model_is_a_one_line_error(tmp_path):
    from raviso.evaluate.engine.inputs import latent_runs

    with pytest.raises(RavisoError, match=r"share_net\[context=finetune\] needs a pretrained "
                                          r"run: pass --pretrained RUN"):
        latent_runs([FT])
    assert latent_runs([FT], pretrained=tmp_path) == {"vae": str(tmp_path)}
    data = _world(tmp_path)
    data.encoders.clear()
    with pytest.raises(RavisoError, match="pass --pretrained RUN") as e:
        make_variant(FT, **OPTS).fit(data, np.arange(data.n))
    assert "\n" not in str(e.value)
    for bad in ("ffnn_plus[context=finetune]", "share_net[context=finetune+pca]"):
        with pytest.raises(RavisoError, match="share_net's context alone"):
            make_variant(bad)
    with pytest.raises(RavisoError, match="not in the data"):
        make_variant(FT, **OPTS).fit(
            Labelled(**{**vars(_world(tmp_path / "b")), "gene_names":
                        [f"X{j}" for j in range(40)]}), np.arange(96))


def test_study_runs_the_finetuned_context_for_share_net_when_given_a_run(tmp_path):
    from raviso.evaluate.study.run import StudyConfig, study_variants

    cfg = dict(contexts="pca,vae,finetune", models="share_net,ffnn_plus", others="")
    with_run = study_variants(StudyConfig(pretrained=tmp_path, **cfg))
    assert with_run[:5] == ["share_net", "share_net[context=vae]", FT, "ffnn_plus",
                            "ffnn_plus[context=vae]"]
    assert "ffnn_plus[context=finetune]" not in with_run
    assert "finetune" in StudyConfig().contexts.split(",")
    assert not any("context=" in c for c in study_variants(StudyConfig(**cfg)))
