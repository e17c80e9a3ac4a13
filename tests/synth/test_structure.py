"""Generator structure options (`raviso.synth.structure`): today's world is bit-identical by
default, and each option changes what it says and nothing else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.synth import names, world as W
from raviso.synth.generate import generate, get_preset
from raviso.synth.structure import Structure, parse_structure

# The tiny preset's World (seed 0) and its first 40 GTEx and ARCHS4 rows, as the code made them
# before the structure options existed (commit 4edf1c3; that code's full byte hash, c0bdad78...,
# was equal after the change on this machine): the exact hash of the integer and string fields,
# and the sum of |x| of every float array, which BLAS threading may move in the last bits only.
DEFAULT_EXACT = "d4b553f3489c1f4302efdb819a29dd9ea5f2e897b258b93ad91912dd347217a5"
DEFAULT_SUMS = [361.4806874, 159.4251284, 14.40958257, 681.948426, 973.6222896, 9728.0,
                100.1330667, 1652.407828, 51644.66667, 5974.652809, 1311.824153, 75606.0,
                202.9736699, 1990.830568, 328.7511287, 44.09629515, 3610.144325, 599.9999998,
                5130.23867, 829.1028625, 21325.63291, 65645.52747, 62351.92153, 20587.20826]


def _world(structure=None, seed=0):
    p = get_preset("tiny")
    return W.build_world(seed, p.n_archs4, p.n_gtex, p.n_genes, p.n_isoforms,
                         structure=structure)


def _blocks(w, seed=0):
    gene, iso, truth = W.gtex_block(w, slice(0, 40), np.random.default_rng([seed, 2, 0]))
    return gene, iso, truth, W.archs4_block(w, slice(0, 40), np.random.default_rng([seed, 1, 0]))


def world_hash(w, seed=0) -> str:
    h = hashlib.sha256()
    for f in fields(w):
        v = getattr(w, f.name)
        if v is None:
            continue
        a = np.asarray(v)
        h.update(f.name.encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else "\n".join(a.tolist()).encode())
    for a in _blocks(w, seed):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fingerprint(w) -> tuple[str, list[float]]:
    h, sums = hashlib.sha256(), []
    for f in fields(w):
        a = None if getattr(w, f.name) is None else np.asarray(getattr(w, f.name))
        if a is not None and a.dtype.kind == "f":
            sums.append(float(np.abs(a.astype(np.float64)).sum()))
        elif a is not None:
            h.update(f.name.encode())
            h.update(a.tobytes() if a.dtype.kind != "U" else "\n".join(a.tolist()).encode())
    sums += [float(np.abs(b.astype(np.float64)).sum()) for b in _blocks(w)]
    return h.hexdigest(), sums


def test_default_world_is_bit_identical():
    exact, sums = fingerprint(_world())
    assert exact == DEFAULT_EXACT
    assert sums == pytest.approx(DEFAULT_SUMS, rel=1e-7)
    same = world_hash(_world())                      # in one process: every byte
    assert world_hash(_world(Structure())) == same == world_hash(_world(parse_structure("")))


def test_programs_spectrum_and_platform_offset():
    base = _world()
    w = _world(Structure(n_programs=32, spectrum=1.0))
    assert w.gtex_z.shape[1] == 32 and w.w1.shape[0] == W.TISSUE_DIM + 32
    sd = w.gtex_z.std(axis=0)
    assert sd[0] > 5 * sd[-1]                                    # program 32 is ~32x weaker
    np.testing.assert_allclose(w.program_sd, 1 / np.arange(1, 33))
    shifted = _world(Structure(platform_offset=2.0))   # the rest of the world as today
    np.testing.assert_allclose(shifted.archs4_shift, 2 * base.archs4_shift, rtol=1e-6)
    np.testing.assert_array_equal(shifted.gtex_z, base.gtex_z)


def test_weak_usage_moves_isoforms_not_genes():
    base, w = _world(), _world(Structure(n_programs=16, spectrum=1.0, weak_usage=1.5))
    ref = _world(Structure(n_programs=16, spectrum=1.0))
    assert sorted(w.weak_idx) == [12, 13, 14, 15]                # the 4 weakest programs
    g0, i0, t0, _ = _blocks(ref)
    g1, i1, t1, _ = _blocks(w)
    np.testing.assert_array_equal(g0, g1)                         # genes: the same draws
    assert np.abs(t1 - t0).mean() > 0.05                           # usage moved
    assert base.iso_weak is None and w.iso_weak.shape == (4, w.n_isoforms)


def test_compendium_only_tissues():
    w = _world(Structure(compendium_only=5))
    gone = set(w.compendium_only.tolist())
    assert len(gone) == 5 and not gone & set(w.gtex_tissue.tolist())
    assert len(w.gtex_tissue) == get_preset("tiny").n_gtex
    assert w.archs4_mix[:, sorted(gone)].sum(axis=1).astype(bool).sum() > 0   # in ARCHS4


def test_genes_quantified_separately():
    base, w = _world(), _world(Structure(gene_extra=0.5))
    g0, i0, t0, a0 = _blocks(base)
    g1, i1, t1, a1 = _blocks(w)
    np.testing.assert_array_equal(i0, i1)                         # isoforms, truth, ARCHS4 as today
    np.testing.assert_array_equal(t0, t1)
    np.testing.assert_array_equal(a0, a1)
    expressed = (g0 > 3) & (g1 > 3)
    assert 0.2 < np.abs(g1 - g0)[expressed].mean() < 1.0           # log2 factor of sd ~0.56


def test_generate_records_structure_and_refuses_it_for_switch(tmp_path):
    info = generate(tmp_path / "s", preset="tiny", seed=0, workers=1, heldout=False,
                    structure="compendium_only=5,spectrum=1,n_programs=16")
    assert info["structure"] == {"n_programs": 16, "spectrum": 1.0, "compendium_only": 5}
    assert info["tissues"]["n"] < len(names.TISSUES)
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["structure"] == \
        info["structure"]
    with pytest.raises(RavisoError, match="share family only"):
        generate(tmp_path / "w", preset="tiny", family="switch", structure="gene_extra=0.5")
    with pytest.raises(RavisoError, match="bad structure option"):
        parse_structure("programs=3")
    with pytest.raises(RavisoError, match="n_weak"):
        Structure(n_programs=2, n_weak=4)


def test_cli_structure_flag(tmp_path):
    """`raviso synth --structure`: recorded in synth.json; a bad option is one line, exit 1,
    nothing written."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "cli", "synth", str(out), "--preset", "tiny", "--structure"]
    r = subprocess.run(cmd + ["gene_extra=0.5"], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "synth.json").read_text())["structure"] == {"gene_extra": 0.5}
    bad = tmp_path / "bad"
    r = subprocess.run([*cmd[:4], str(bad), *cmd[5:], "bogus=1"], cwd=root, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "bad structure option 'bogus=1'" in r.stderr
    assert not bad.exists()
