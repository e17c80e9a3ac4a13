"""The format registry: detection by content for every command (HDF5 wherever its superblock sits),
and the gene tables predict reads: orientation, scale and id matching."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from raviso.core.errors import RavisoError
from raviso.io.formats import FORMATS, KINDS, detect, is_hdf5, sniff
from raviso.io.gene_table import GeneTable, detect_scale, match_index, orient, read_gene_table


def course_hdf5(path, userblock=0):
    with h5py.File(path, "w", userblock_size=userblock) as f:
        f["expressions"] = np.ones((2, 3), np.float32)
        f["row_names"] = [b"s1", b"s2"]
        f["col_names"] = [b"A", b"B", b"C"]
    return path


@pytest.mark.parametrize("userblock", [0, 512, 1024])
def test_hdf5_is_found_wherever_its_superblock_sits(tmp_path, userblock):
    p = course_hdf5(tmp_path / "x.bin", userblock)
    assert is_hdf5(p)
    assert sniff(p) == "course-hdf5" and detect(p, "predict").holds == "matrix"


def test_each_command_accepts_its_formats(tmp_path):
    assert KINDS == ("course-hdf5", "archs4-h5", "h5ad", "gct", "course-tsv")
    assert {f.name for f in FORMATS if "predict" in f.commands} == \
        {"course-hdf5", "archs4-h5", "h5ad", "parquet", "gct", "course-tsv", "csv"}
    csv = tmp_path / "t.csv"
    csv.write_text("gene,s1\nA,1\n")
    assert detect(csv, "predict").name == "csv"
    with pytest.raises(RavisoError, match="unknown format .*expected course HDF5"):
        sniff(csv)
    tsv = tmp_path / "t.txt"
    tsv.write_text("\ufeffgene\ts1\nA\t1\n")
    assert detect(tsv, "predict").name == "course-tsv" and not is_hdf5(tsv)
    assert not is_hdf5(tmp_path / "absent")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1]
    with pytest.raises(RavisoError, match="HDF5 file has neither"):
        detect(tmp_path / "other.h5", "predict")


def test_match_index_strips_versions_on_both_sides_and_uses_symbols():
    genes = ["ENSG1.3", "ENSG2", "ENSG3.1", "ENSG4.2"]
    labels = ["ENSG2.7", "ENSG1", "TP53", "ENSG3.1"]
    idx = match_index(labels, genes, symbols=[None, None, None, "TP53"])
    assert idx.tolist() == [1, 0, 3, 2]
    assert match_index(labels, genes).tolist() == [1, 0, 3, -1]


def table(values, rows, cols, gct=False):
    return GeneTable(np.asarray(values, np.float32), rows, cols, gct)


def test_orientation_is_the_side_matching_more_model_genes():
    genes = ["G1", "G2", "G3"]
    by_rows = table([[1, 2], [3, 4], [5, 6]], [["G1", "G2", "G3"]], ["s1", "s2"])
    o = orient(by_rows, genes)
    assert (o.orientation, o.sample_ids, o.scale) == ("genes-by-samples", ["s1", "s2"], "log2tpm")
    np.testing.assert_array_equal(o.X, [[1, 3, 5], [2, 4, 6]])
    by_cols = table([[1, 2, 3], [4, 5, 6]], [["s1", "s2"]], ["G3", "G1", "X"])
    o = orient(by_cols, genes)
    assert o.orientation == "samples-by-genes" and o.missing == ["G2"]
    np.testing.assert_array_equal(o.X[:, [0, 2]], [[2, 1], [5, 4]])
    assert np.isnan(o.X[:, 1]).all()


def test_gct_matches_on_name_or_description_whichever_matches_more():
    genes = ["ENSG1", "ENSG2"]
    t = table([[1, 2], [3, 4]], [["ENSG1.1", "ENSG2.1"], ["A", "B"]], ["s1", "s2"], gct=True)
    assert orient(t, genes).labels == "Name"
    t = table([[1, 2], [3, 4]], [["x1", "x2"], ["ENSG1", "ENSG2"]], ["s1", "s2"], gct=True)
    assert orient(t, genes).labels == "Description"


def test_scale_from_the_value_range():
    assert detect_scale(np.array([0.0, 12.5, 19.9])) == "log2tpm"
    assert detect_scale(np.array([0.0, 3.0, 407.551])) == "tpm"
    with pytest.raises(RavisoError, match="negative value -1"):
        detect_scale(np.array([-1.0, 2.0]))
    t = table([[0.0, 1.0], [3.0, 1000.0]], [["G1", "G2"]], ["s1", "s2"])
    o = orient(t, ["G1", "G2"])
    assert o.scale == "tpm"
    np.testing.assert_allclose(o.X, np.log2(np.array([[0.0, 3.0], [1.0, 1000.0]]) + 1), rtol=1e-6)


def test_read_gene_table_errors_are_one_line(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("gene\ts1\ts2\nA\t1\t\nB\t2\t3\n")
    with pytest.raises(RavisoError, match="empty, NA or infinite value in column 's2', row 1"):
        read_gene_table(p)
    p.write_text("gene\ts1\nA\t1\nB\tinf\n")
    with pytest.raises(RavisoError, match="infinite value in column 's1', row 2"):
        read_gene_table(p)
    p.write_text("a\tb\nx\ty\n")
    with pytest.raises(RavisoError, match="expected label column"):
        read_gene_table(p)


def test_a_model_gene_matched_twice_is_ambiguous():
    t = table([[1, 2], [3, 4], [5, 6]], [["G1", "G2", "G1"], ["a", "a", "b"]], ["s1", "s2"])
    with pytest.raises(RavisoError, match="duplicate genes: G1"):
        orient(t, ["G1", "G2"])
    t = table([[1, 2], [3, 4], [5, 6]], [["G1", "G2", "X"], ["a", "a", "b"]], ["s1", "s2"])
    assert orient(t, ["G1", "G2"]).missing == []     # repeated names elsewhere do not matter
