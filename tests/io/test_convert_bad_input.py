"""Every bad input to `raviso convert`: one error line naming the file and the problem, exit status
1 through the real CLI entry point, and nothing left behind (no store, no temporary directory)."""

from __future__ import annotations

import gzip
import sys

import h5py
import numpy as np
import pytest

import cli
from test_convert import STEMS, course_data, write_course_dir
from raviso.io.course import write_course_hdf5, write_course_tsv


def _path(src, role, fmt):
    return src / f"{STEMS[role]}.{fmt}"


def _rewrite(src, data, role, fmt, X=None, ids=None, feats=None):
    """Replace one matrix file of the good set with modified values / ids / feature names."""
    feat_key = {"archs4": "genes", "gtex_gene": "gtex_genes"}.get(role, "isoforms")
    ids_key = "archs4_ids" if role == "archs4" else "gtex_ids"
    X = data[role] if X is None else X
    ids = data[ids_key] if ids is None else ids
    feats = data[feat_key] if feats is None else feats
    p = _path(src, role, fmt)
    p.unlink()
    if fmt == "hdf5":
        return write_course_hdf5(p, X, ids, feats)
    return write_course_tsv(p, X, ids, feats)


def _set(data, role, r, c, v):
    X = data[role].copy()
    X[r, c] = v
    return X


def _edit_text(p, fn):
    """Apply `fn` to the lines of a text (or gzip) file."""
    gz = p.name.endswith(".gz")
    raw = gzip.decompress(p.read_bytes()) if gz else p.read_bytes()
    out = "\n".join(fn(raw.decode().rstrip("\n").split("\n"))) + "\n"
    p.write_bytes(gzip.compress(out.encode()) if gz else out.encode())
    return p


def _drop_field(lines):
    lines[3] = lines[3].rsplit("\t", 1)[0]
    return lines


def _bad_value(lines):
    f = lines[2].split("\t")
    f[4] = "abc"
    lines[2] = "\t".join(f)
    return lines


def _empty_feature(lines):
    f = lines[0].split("\t")
    f[3] = ""
    lines[0] = "\t".join(f)
    return lines


def _truncate(p, frac=0.6):
    data = p.read_bytes()
    p.write_bytes(data[:int(len(data) * frac)])
    return p


def _scribble(p):
    data = bytearray(p.read_bytes())
    data[8:3000] = np.random.default_rng(0).integers(0, 256, 2992, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    return p


def _replace(p, content: bytes):
    p.write_bytes(content)
    return p


def _dup_feature(data):
    feats = list(data["genes"])
    feats[5] = feats[2]
    return feats


def _gct(p, declared_rows):
    p.write_text("#1.2\n%d\t2\ntranscript_id\tgene_id\tGTEX-A-1\tGTEX-B-1\n"
                 "ENST1\tENSG1\t1.5\t0\nENST2\tENSG1\t3\t7.25\n" % declared_rows)
    return p


def _drop_last_line(p):
    return _edit_text(p, lambda lines: lines[:-1])


# name -> (format of the good set, mutation(src, data) -> offending file, expected message part,
#          extra CLI args)
CASES = {
    "nan": ("hdf5", lambda s, d: _rewrite(s, d, "archs4", "hdf5", _set(d, "archs4", 3, 2, np.nan)),
            "NaN", []),
    "inf": ("tsv", lambda s, d: _rewrite(s, d, "gtex_gene", "tsv",
                                         _set(d, "gtex_gene", 1, 1, np.inf)), "infinite", []),
    "negative": ("hdf5", lambda s, d: _rewrite(s, d, "gtex_isoform", "hdf5",
                                               _set(d, "gtex_isoform", 0, 4, -0.5)),
                 "negative value", []),
    "not_log_scale": ("tsv", lambda s, d: _rewrite(s, d, "archs4", "tsv", d["archs4"] * 1000),
                      "not on a log scale", []),
    "ragged_row": ("tsv", lambda s, d: _edit_text(_path(s, "gtex_gene", "tsv"), _drop_field),
                   "ragged row", []),
    "non_numeric": ("tsv.gz", lambda s, d: _edit_text(_path(s, "archs4", "tsv.gz"), _bad_value),
                    "non-numeric value 'abc'", []),
    "duplicate_sample_tsv": ("tsv", lambda s, d: _rewrite(
        s, d, "archs4", "tsv", ids=d["archs4_ids"][:-1] + [d["archs4_ids"][0]]),
        "duplicate sample id", []),
    "duplicate_sample_hdf5": ("hdf5", lambda s, d: _rewrite(
        s, d, "gtex_gene", "hdf5", ids=d["gtex_ids"][:-1] + [d["gtex_ids"][2]]),
        "duplicate sample ids", []),
    "duplicate_feature": ("hdf5", lambda s, d: _rewrite(s, d, "archs4", "hdf5",
                                                        feats=_dup_feature(d)),
                          "duplicate feature names", []),
    "missing_feature_name": ("tsv", lambda s, d: _edit_text(_path(s, "gtex_isoform", "tsv"),
                                                            _empty_feature),
                             "empty feature names", []),
    "empty_file": ("tsv", lambda s, d: _replace(_path(s, "archs4", "tsv"), b""), "empty file", []),
    "empty_gzip": ("tsv.gz", lambda s, d: _replace(_path(s, "gtex_gene", "tsv.gz"),
                                                   gzip.compress(b"")), "empty file", []),
    "header_only": ("tsv", lambda s, d: _edit_text(_path(s, "truth", "tsv"), lambda ln: ln[:1]),
                    "no data rows", []),
    "tissue_table_misses_samples": ("tsv.gz", lambda s, d: _drop_last_line(s / "gtex_annot.tsv.gz"),
                                    "misses 1", []),
    "annotation_misses_isoforms": ("hdf5", lambda s, d: _drop_last_line(
        s / "gtex_gene_isoform_annoation.tsv.gz"), "annotation misses 1", []),
    "truncated_hdf5": ("hdf5", lambda s, d: _truncate(_path(s, "gtex_gene", "hdf5")),
                       "truncated or corrupt", []),
    "truncated_gzip": ("tsv.gz", lambda s, d: _truncate(_path(s, "gtex_isoform", "tsv.gz"), 0.7),
                       "cannot parse", []),
    "corrupt_hdf5": ("hdf5", lambda s, d: _scribble(_path(s, "archs4", "hdf5")),
                     "truncated or corrupt", []),
    "unknown_format": ("tsv", lambda s, d: _replace(_path(s, "archs4", "tsv"),
                                                    b"a,b,c\n1,2,3\n"), "unknown format", []),
    "binary_garbage": ("tsv", lambda s, d: _replace(_path(s, "gtex_gene", "tsv"),
                                                    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
                       "unknown format", []),
    "gene_set_mismatch": ("hdf5", lambda s, d: _rewrite(s, d, "gtex_gene", "hdf5",
                                                        np.delete(d["gtex_gene"], 0, axis=1),
                                                        feats=d["gtex_genes"][1:]),
                          "missing", []),
    "sample_set_mismatch": ("tsv", lambda s, d: _rewrite(s, d, "gtex_isoform", "tsv",
                                                         d["gtex_isoform"][:-1],
                                                         ids=d["gtex_ids"][:-1]),
                            "sample mismatch", []),
}


def _h5_names(p, dataset, names):
    """Replace an HDF5 name dataset by raw bytes (e.g. Latin-1, not UTF-8)."""
    with h5py.File(p, "r+") as f:
        del f[dataset]
        f.create_dataset(dataset, data=np.array(names, dtype=object),
                         dtype=h5py.vlen_dtype(bytes))
    return p


def _latin1_ids(s, d):
    p = _path(s, "gtex_gene", "hdf5")
    ids = [x.encode() for x in d["gtex_ids"]]
    ids[3] = "Probe-\u00e9".encode("latin-1")
    return _h5_names(p, "row_names", ids)


def _latin1_features(s, d):
    p = _path(s, "archs4", "hdf5")
    feats = [x.encode() for x in d["genes"]]
    feats[0] = b"\xff\xfe"
    return _h5_names(p, "col_names", feats)


CASES_12 = {
    "non_utf8_sample_id_hdf5": ("hdf5", _latin1_ids, "row_names", []),
    "non_utf8_feature_hdf5": ("hdf5", _latin1_features, "not UTF-8", []),
    "tab_in_sample_id_hdf5": ("hdf5", lambda s, d: _rewrite(
        s, d, "gtex_gene", "hdf5", ids=d["gtex_ids"][:1] + ["GTEX-A\tB"] + d["gtex_ids"][2:]),
        "contain a tab", []),
}
CASES.update(CASES_12)


def _one_error_line(err: str) -> str:
    """stderr may carry progress lines; the error is exactly one line, the last, no traceback."""
    lines = err.rstrip("\n").split("\n")
    assert "Traceback" not in err, err
    assert [ln for ln in lines if "error" in ln] == [lines[-1]], err
    assert lines[-1].startswith("raviso: error: "), err
    return lines[-1]


def run_cli(monkeypatch, capsys, args):
    """`raviso ...` through `cli.main` in-process (the console script's own entry point)."""
    monkeypatch.setattr(sys, "argv", ["raviso", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(tmp_path, monkeypatch, capsys, case):
    fmt, mutate, message, extra = CASES[case]
    data = course_data(seed=11)
    src = write_course_dir(tmp_path / "src", data, fmt)
    bad = mutate(src, data)
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_cli(monkeypatch, capsys, ["convert", src, out / "store", *extra])
    assert code == 1
    last = _one_error_line(err)
    assert message in last, err
    assert f"raviso: error: {bad}: " in last, err  # names the offending file
    assert list(out.iterdir()) == []               # no store, no temp dir, no scratch file


@pytest.mark.parametrize("declared", [3, 1])
def test_bad_gct_row_count(tmp_path, monkeypatch, capsys, declared):
    gct = _gct(tmp_path / "x.gct", declared)
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_cli(monkeypatch, capsys, ["convert", out / "store", "--gct", gct])
    assert code == 1 and f"raviso: error: {gct}: " in _one_error_line(err)
    assert ("truncated" in err) if declared == 3 else ("more than" in err)
    assert list(out.iterdir()) == []


def test_good_gct_converts_after_the_bad_ones(tmp_path, monkeypatch, capsys):
    """The tiny GCT used above is valid when its row count is right (so the errors are not an
    artefact of the writer)."""
    gct = _gct(tmp_path / "x.gct", 2)
    code, err = run_cli(monkeypatch, capsys, ["convert", tmp_path / "store", "--gct", gct])
    assert code == 0, err
    from raviso.data import Store

    X = Store(tmp_path / "store").numpy("gtex_isoform")
    np.testing.assert_allclose(X, np.log2(np.array([[1.5, 3], [0, 7.25]]) + 1), rtol=1e-6)


def test_missing_file_and_wrong_kind(tmp_path, monkeypatch, capsys):
    code, err = run_cli(monkeypatch, capsys, ["convert", tmp_path / "store",
                                              "--archs4", tmp_path / "nope.hdf5"])
    assert code == 1 and "nope.hdf5: no such file" in err
    h5 = write_course_hdf5(tmp_path / "a.hdf5", np.ones((2, 2), np.float32), ["s1", "s2"],
                           ["A", "B"])
    code, err = run_cli(monkeypatch, capsys, ["convert", tmp_path / "store", "--archs4-h5", h5])
    assert code == 1 and "expects an ARCHS4 H5" in err and str(h5) in err
    code, err = run_cli(monkeypatch, capsys, ["convert", tmp_path / "empty_dir_store"])
    assert code == 1 and "no expression matrices" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hdf5"]


def test_hdf5_without_expression_dataset(tmp_path, monkeypatch, capsys):
    p = tmp_path / "x.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("something", data=np.zeros(3))
    code, err = run_cli(monkeypatch, capsys, ["convert", tmp_path / "store", "--archs4", p])
    assert code == 1 and "neither `expressions`" in err and str(p) in err
