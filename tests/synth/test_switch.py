"""The generator families: the default ``share`` family's files are unchanged by the second
family's code (a hash of the tiny preset), and the ``switch`` family's genes, realism, floors
and its distance from share_net's functional form."""

from __future__ import annotations

import gzip
import hashlib
import json

import h5py
import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.synth import switch
from raviso.synth.generate import STEMS, generate

# sha256 over the tiny preset's (seed 0, hdf5) datasets and tables, in file-name order
SHARE_TINY_SEED0 = "7726a92fd874dd05e2108d299afe1d0838a1263446055778ad08b8805b55f168"


def content_hash(out) -> str:
    h = hashlib.sha256()
    for p in sorted(out.iterdir()):
        if p.suffix == ".hdf5":
            with h5py.File(p) as f:
                for k in sorted(f):
                    a = f[k][()]
                    h.update(k.encode())
                    h.update(np.ascontiguousarray(a).tobytes() if a.dtype.kind == "f"
                             else "\n".join(x.decode() for x in a).encode())
        elif p.name.endswith(".tsv.gz"):
            h.update(gzip.open(p).read())
    return h.hexdigest()


def read(out, kind: str):
    with h5py.File(out / (STEMS[kind] + ".hdf5")) as f:
        return f["expressions"][()], [c.decode() for c in f["col_names"][()]]


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    out = tmp_path_factory.mktemp("switch") / "synth"
    info = generate(out, "tiny", seed=0, family="switch", workers=1)
    return out, info


def test_default_family_is_bit_identical(tmp_path):
    generate(tmp_path / "s", "tiny", seed=0, workers=1)
    assert content_hash(tmp_path / "s") == SHARE_TINY_SEED0
    generate(tmp_path / "f", "tiny", seed=0, workers=1, family="share", gene_from="independent")
    assert content_hash(tmp_path / "f") == SHARE_TINY_SEED0


def test_switch_gene_is_the_sum_of_its_isoforms_tpm(sw):
    out, info = sw
    assert (info["family"], info["gene_from"]) == ("switch", "isoforms")
    assert info["heldout_expectation"] == "reference"      # not a bound: the gene shows noise
    genes, gene_names = read(out, "gtex_gene")
    iso, iso_names = read(out, "gtex_isoform")
    with gzip.open(out / "gtex_gene_isoform_annoation.tsv.gz", "rt") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    gene_of = {i: sym for i, _, sym in rows}
    col = {g: k for k, g in enumerate(gene_names)}
    summed = np.zeros(genes.shape)
    for j, name in enumerate(iso_names):
        summed[:, col[gene_of[name]]] += np.exp2(iso[:, j].astype(np.float64)) - 1
    np.testing.assert_allclose(genes, np.log2(summed + 1), atol=2e-5)


def test_switch_family_is_as_realistic_as_the_first(sw):
    out, info = sw
    iso = info["gtex_isoform"]
    assert 0.25 < iso["zero_fraction"] < 0.45          # calibration notes: ~0.3-0.4 filtered
    assert 0.6 < iso["mean_baseline_mse"] < 1.0        # the share family: 0.79
    assert 2.0 < info["gtex_gene"]["mean"] < 3.5       # GTEx 2.85
    truth, names = read(out, "truth")
    with gzip.open(out / "gtex_gene_isoform_annoation.tsv.gz", "rt") as f:
        gene_of = {i: g for i, g, _ in (line.split("\t") for line in list(f)[1:])}
    tpm = np.exp2(truth.astype(np.float64)) - 1
    groups = {}
    for j, n in enumerate(names):
        groups.setdefault(gene_of[n], []).append(j)
    dom = [np.median(tpm[:, c].max(1) / np.maximum(tpm[:, c].sum(1), 1e-12))
           for c in groups.values() if len(c) > 1]
    assert 0.55 < np.median(dom) < 0.97   # HK1 0.97, ZNF808 0.67; the share family 0.61


def test_floors_are_ordered(sw):
    iso = sw[1]["gtex_isoform"]
    assert iso["noise_floor_mse"] < iso["floor_heldout_donor_mse"] < iso["mean_baseline_mse"]
    assert iso["floor_heldout_donor_mse"] == pytest.approx(0.2490, abs=1e-3)


def test_usage_switches_sharply_on_a_regulator():
    w = switch.build_switch_world(0, 20, 60, 40, 120)
    g = int(np.flatnonzero((w.gated[w.group[0]] == 0) & (w.base.iso_counts > 1))[0])
    level = np.tile(w.threshold[:, None, :].max(0), (2, 1)).astype(np.float32)
    level[0, w.reg[0, g]] = w.threshold[0, g] - 3 * w.width[0, g]
    level[1, w.reg[0, g]] = w.threshold[0, g] + 3 * w.width[0, g]
    u = switch.switch_state(w, level, np.zeros(2, np.int64), np.zeros((2, 40), np.float32))
    assert abs(u[1, g] - u[0, g]) > 0.9            # a 6-width step (<= 1.8 log2) flips usage


def test_gene_only_and_tissue_baselines_stay_well_above_the_floor(sw, tmp_path):
    from raviso.data.folds import make_folds
    from raviso.data.labelled import Labelled
    from raviso.data.reader import Store
    from raviso.io.convert import convert
    from raviso.models.variants import make_variant

    convert(tmp_path / "store", sw[0], quiet=True)
    d = Labelled.from_store(Store(tmp_path / "store"))
    tr, va = make_folds(d.tissue, d.donor, k=5, seed=0).split(0)
    floor = float(d.floor_heldout[va].mean())
    mse = {v: float(((make_variant(v).fit(d, tr).predict(d, va) - d.isoforms[va]) ** 2).mean())
           for v in ("isoform_fraction_tissue", "pca_tissue_ridge", "mean")}
    assert mse["mean"] == pytest.approx(0.8134, abs=2e-3)
    assert min(mse["isoform_fraction_tissue"], mse["pca_tissue_ridge"]) > 1.4 * floor


def test_unknown_family_or_gene_source_fails_before_writing(tmp_path):
    with pytest.raises(RavisoError, match="family"):
        generate(tmp_path / "a", "tiny", family="splice")
    with pytest.raises(RavisoError, match="gene_from"):
        generate(tmp_path / "b", "tiny", family="switch", gene_from="sums")
    assert not any(tmp_path.iterdir())


def test_cli_family_options(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "cli", "synth", str(tmp_path / "s"), "--preset", "tiny",
           "--family", "switch", "--gene-from", "independent"]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "s" / "synth.json").read_text())
    assert (info["family"], info["gene_from"]) == ("switch", "independent")
    r = subprocess.run(cmd[:5] + ["--family", "splice"], cwd=root, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "unknown generator family 'splice'" in r.stderr
