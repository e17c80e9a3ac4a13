"""`raviso synth`: the files have the course's exact layout, and the synthetic data's statistics
fall in the ranges of the real data (../shared/notes/synthetic-calibration.md). All on the tiny
preset or smaller, read back from the written files (not from the generator's own bookkeeping)."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from raviso.synth import generate as synth
from raviso.synth import world as synth_model
from raviso.data import donor_of
from raviso.core.errors import RavisoError
from raviso.synth.generate import STEMS, Preset, generate, plan

ROOT = Path(__file__).resolve().parents[2]
MINI = Preset("mini", n_archs4=40, n_gtex=70, n_genes=30, n_isoforms=240)


def read_h5(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    info = generate(out, preset="tiny", seed=0)
    return out, info


@pytest.fixture(scope="module")
def files(tiny) -> dict:
    out, _ = tiny
    return {k: read_h5(out / f"{stem}.hdf5") for k, stem in STEMS.items()}


@pytest.fixture(scope="module")
def annotation(tiny) -> pd.DataFrame:
    return pd.read_csv(tiny[0] / synth.ANNOTATION, sep="\t")


def _s(names) -> list[str]:
    return [n.decode() for n in names]


def test_plan_gives_the_course_shapes_without_generating():
    p = plan("course")
    assert p == {"archs4_gene_expression_norm_transposed.hdf5": (167_884, 18_965),
                 "gtex_gene_expression_norm_transposed.hdf5": (17_356, 18_965),
                 "gtex_isoform_expression_norm_transposed.hdf5": (17_356, 156_958),
                 "truth_isoform_expression_norm_transposed.hdf5": (17_356, 156_958),
                 "truth_heldout_isoform_expression_norm_transposed.hdf5": (17_356, 156_958)}
    assert all(name.endswith(".tsv.gz") for name in plan("course", fmt="tsv"))
    assert "truth_heldout_isoform_expression_norm_transposed.hdf5" not in plan("course",
                                                                              heldout=False)


def test_hdf5_layout_is_the_courses(tiny, files):
    out, _ = tiny
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*plan("tiny"), synth.ANNOTATION, synth.TISSUE_TABLE, synth.INFO])
    for role, stem in STEMS.items():
        with h5py.File(out / f"{stem}.hdf5", "r") as f:
            x = f["expressions"]
            assert x.dtype == np.float32 and x.chunks is None and x.compression is None
            assert x.shape == plan("tiny")[f"{stem}.hdf5"]
            for name in ("row_names", "col_names") + (("tissue",) if role != "archs4" else ()):
                assert h5py.check_string_dtype(f[name].dtype).encoding == "utf-8"
                assert isinstance(f[name][0], bytes)
            assert ("tissue" in f) == (role != "archs4")
            assert len(f["row_names"]) == x.shape[0] and len(f["col_names"]) == x.shape[1]


def test_sample_and_feature_ids_look_real(files):
    gtex = _s(files["gtex_gene"]["row_names"])
    assert all(re.fullmatch(r"GTEX-[0-9A-Z]{4,5}-\d{4}-SM-[0-9A-Z]{5}", s) for s in gtex)
    assert gtex == sorted(gtex) and len(set(gtex)) == len(gtex)
    archs4 = _s(files["archs4"]["row_names"])
    assert all(re.fullmatch(r"GSM\d{6,7}", s) for s in archs4) and len(set(archs4)) == len(archs4)
    isoforms = _s(files["gtex_isoform"]["col_names"])
    assert all(re.fullmatch(r"ENST\d{11}\.\d+", s) for s in isoforms)
    assert isoforms != sorted(isoforms)  # the real columns are in no sorted order
    assert _s(files["truth"]["col_names"]) == isoforms
    assert _s(files["truth"]["row_names"]) == gtex == _s(files["gtex_isoform"]["row_names"])


def test_archs4_and_gtex_share_genes_in_different_orders(files):
    a, g = _s(files["archs4"]["col_names"]), _s(files["gtex_gene"]["col_names"])
    assert a == sorted(a)  # ARCHS4: alphabetical, as the real file
    assert set(a) == set(g) and len(set(g)) == len(g)
    assert a != g


def test_isoforms_per_gene_long_tail_and_annotation(annotation, files):
    assert list(annotation.columns) == ["isoform_id", "gene_id", "gene_name"]
    assert set(annotation["isoform_id"]) == set(_s(files["gtex_isoform"]["col_names"]))
    assert set(annotation["gene_name"]) == set(_s(files["gtex_gene"]["col_names"]))
    assert annotation.groupby("gene_id")["gene_name"].nunique().max() == 1
    per_gene = annotation.groupby("gene_name").size()
    assert per_gene.min() == 1
    assert 8.0 <= per_gene.mean() <= 8.6          # course: 156,958 / 18,965 = 8.28
    assert per_gene.max() >= 4 * per_gene.mean()   # a few genes with dozens
    assert (per_gene <= 2).mean() >= 0.2           # many with one or two
    assert per_gene.median() < per_gene.mean()


def test_gene_marginals_like_gtex_and_archs4(files):
    g, a = files["gtex_gene"]["expressions"], files["archs4"]["expressions"]
    assert 2.5 <= g.mean() <= 3.2 and 0.06 <= (g == 0).mean() <= 0.18   # real: 2.85, 0.099
    assert 2.3 <= a.mean() <= 3.2 and 0.08 <= (a == 0).mean() <= 0.25   # real: 2.62, 0.144
    assert (g >= 0).all() and (a >= 0).all() and 12 <= g.max() <= 18
    # TPM back-transformed: rows sum to the same total (compositional), the genes a subset
    tpm = np.exp2(g.astype(np.float64)) - 1
    assert np.allclose(tpm.sum(1) / g.shape[1], synth_model.TPM_PER_GENE, rtol=0.25)
    # GTEx: log2 of TPM rounded to 0.01; ARCHS4 unrounded
    cents = (np.exp2(g.astype(np.float64)) - 1) * 100
    small = cents < 1000
    assert np.abs(cents[small] - np.round(cents[small])).max() < 0.02
    cents_a = (np.exp2(a.astype(np.float64)) - 1) * 100
    assert np.abs(cents_a - np.round(cents_a))[cents_a < 1000].mean() > 0.1


def test_archs4_is_batch_shifted_from_gtex(files):
    a, g = files["archs4"], files["gtex_gene"]
    order = [_s(g["col_names"]).index(n) for n in _s(a["col_names"])]
    shift = a["expressions"].mean(0) - g["expressions"][:, order].mean(0)
    assert np.abs(shift).mean() > 0.3


def test_tissues_unequal_and_donors_give_several(tiny, files):
    out, info = tiny
    table = pd.read_csv(out / synth.TISSUE_TABLE, sep="\t")
    gtex = files["gtex_gene"]
    assert table["sample_id"].tolist() == _s(gtex["row_names"])
    assert table["tissue"].tolist() == _s(gtex["tissue"])
    sizes = table["tissue"].value_counts()
    assert len(sizes) == 54
    assert (sizes < 5).sum() >= 3 and sizes.max() >= 10 * sizes.min()
    donors = table["sample_id"].map(donor_of)
    per_donor = table.assign(donor=donors).groupby("donor")["tissue"]
    assert per_donor.size().median() >= 5 and (per_donor.size() >= 3).mean() > 0.8
    assert (per_donor.nunique() == per_donor.size()).all()  # a donor gives a tissue once
    assert info["tissues"]["n"] == 54


def _tissue_means(x: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    pred = np.empty_like(x)
    for t in np.unique(tissue):
        pred[tissue == t] = x[tissue == t].mean(0)
    return pred


def test_isoform_zeros_noise_floor_and_baselines(tiny, files, annotation):
    obs, truth = files["gtex_isoform"]["expressions"], files["truth"]["expressions"]
    assert 0.22 <= (obs == 0).mean() <= 0.40                   # real: ~30%
    assert (truth >= 0).all() and (truth == 0).mean() < (obs == 0).mean()
    floor = ((obs - truth) ** 2).mean()
    mean_baseline = obs.var(0).mean()
    assert 0.15 <= floor / mean_baseline <= 0.45
    assert floor == pytest.approx(tiny[1]["gtex_isoform"]["noise_floor_mse"], rel=1e-4)

    tissue = files["gtex_isoform"]["tissue"]
    tissue_mse = ((obs - _tissue_means(obs, tissue)) ** 2).mean()   # in-sample, optimistic
    assert floor < tissue_mse < 0.75 * mean_baseline              # usage is tissue-dependent

    # "share of its own gene" baseline: strong, but not perfect (isoforms are not a function of
    # the observed gene values)
    genes = _s(files["gtex_gene"]["col_names"])
    iso_gene = annotation.set_index("isoform_id").loc[_s(files["gtex_isoform"]["col_names"]),
                                                      "gene_name"]
    g = files["gtex_gene"]["expressions"][:, [genes.index(n) for n in iso_gene]]
    g_tpm, i_tpm = np.exp2(g.astype(np.float64)) - 1, np.exp2(obs.astype(np.float64)) - 1
    pred = np.empty_like(i_tpm)
    for t in np.unique(tissue):
        m = tissue == t
        share = i_tpm[m].sum(0) / np.maximum(g_tpm[m].sum(0), 1e-9)
        pred[m] = np.log2(g_tpm[m] * share + 1)
    frac_mse = ((obs - pred) ** 2).mean()
    assert 1.2 * floor < frac_mse < 0.7 * mean_baseline


def test_dominant_isoform_per_gene(files, annotation):
    obs = files["gtex_isoform"]["expressions"].astype(np.float64)
    cols = _s(files["gtex_isoform"]["col_names"])
    gene = annotation.set_index("isoform_id").loc[cols, "gene_name"].to_numpy()
    mean_tpm = pd.Series((np.exp2(obs) - 1).mean(0)).groupby(gene)
    share = mean_tpm.max() / mean_tpm.sum()
    multi = mean_tpm.size() > 1
    assert 0.4 <= share[multi].median() <= 0.9   # real: 0.67 (ZNF808) .. 0.97 (HK1)


def test_genes_are_a_nonlinear_function_of_a_low_dimensional_state():
    """Genes follow (tissue, programs) through a tanh layer: linear in the hidden layer, clearly
    not linear in the state itself. That gap is what a VAE latent can exploit."""
    world = synth_model.build_world(0, 10, 600, 300, 2400)
    rng = np.random.default_rng(1)
    state = np.concatenate([np.eye(54)[world.gtex_tissue], world.gtex_z], axis=1)
    h, tpm = synth_model.true_gene_tpm(world, world.tissue_emb[world.gtex_tissue],
                                        world.gtex_z, world.gene_on[world.gtex_tissue], rng, None)
    y = np.log2(tpm + 1)

    def r2(x):
        x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        coef, *_ = np.linalg.lstsq(x1, y, rcond=None)
        return 1 - ((y - x1 @ coef) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()

    assert r2(state[:, 54:]) + 0.1 < r2(state) < r2(np.concatenate([state, h], axis=1)) - 0.05


def test_same_seed_same_files_whatever_the_threads(tmp_path):
    a = generate(tmp_path / "a", preset=MINI, seed=3, workers=1)
    b = generate(tmp_path / "b", preset=MINI, seed=3, workers=3)
    c = generate(tmp_path / "c", preset=MINI, seed=4)
    for stem in STEMS.values():
        fa, fb, fc = (read_h5(tmp_path / d / f"{stem}.hdf5") for d in "abc")
        for k in fa:
            assert np.array_equal(fa[k], fb[k]), (stem, k)
        assert not np.array_equal(fa["expressions"], fc["expressions"])
    assert a["gtex_isoform"] == b["gtex_isoform"] != c["gtex_isoform"]
    for table in (synth.ANNOTATION, synth.TISSUE_TABLE):
        assert (gzip.decompress((tmp_path / "a" / table).read_bytes())
                == gzip.decompress((tmp_path / "b" / table).read_bytes()))


def test_tsv_variant_holds_the_same_values(tmp_path):
    generate(tmp_path / "h", preset=MINI, seed=5, fmt="hdf5")
    generate(tmp_path / "t", preset=MINI, seed=5, fmt="tsv")
    for stem in STEMS.values():
        h = read_h5(tmp_path / "h" / f"{stem}.hdf5")
        t = pd.read_csv(tmp_path / "t" / f"{stem}.tsv.gz", sep="\t")
        assert t.columns[0] == "sample_id"
        assert t["sample_id"].tolist() == _s(h["row_names"])
        assert list(t.columns[1:]) == _s(h["col_names"])
        assert np.array_equal(t.iloc[:, 1:].to_numpy(np.float32), h["expressions"])


def test_bad_requests_fail_cleanly_and_leave_nothing(tmp_path, monkeypatch):
    with pytest.raises(RavisoError, match="unknown preset"):
        generate(tmp_path / "x", preset="huge")
    with pytest.raises(RavisoError, match="unknown format"):
        generate(tmp_path / "x", preset=MINI, fmt="csv")
    with pytest.raises(RavisoError, match="invalid synthetic shapes"):
        Preset("bad", 10, 10, 20, 10)
    generate(tmp_path / "x", preset=MINI)
    with pytest.raises(RavisoError, match="already exists"):
        generate(tmp_path / "x", preset=MINI)

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_model, "gtex_block", broken)  # fail half-way through writing
    with pytest.raises(RuntimeError):
        generate(tmp_path / "y", preset=MINI)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_cli_writes_the_files_and_reports_one_line_errors(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "cli", "synth", str(out), "--preset", "tiny", "--seed", "1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["files"] == {k: list(v) for k, v in plan("tiny").items()}
    assert json.loads((out / synth.INFO).read_text())["seed"] == 1
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip() == f"raviso: error: {out}: already exists (pass --overwrite to " \
                               "replace it)"
