"""`raviso convert`: exact round trips aligned by name, the real course heads, the real GTEx GCT
slice, the public ARCHS4 H5 normalisation. Bad inputs are in test_convert_bad_input.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from raviso.io.convert import convert
from raviso.data import Store
from raviso.io.course import write_course_hdf5, write_course_tsv

STEMS = {"archs4": "archs4_gene_expression_norm_transposed",
         "gtex_gene": "gtex_gene_expression_norm_transposed",
         "gtex_isoform": "gtex_isoform_expression_norm_transposed",
         "truth": "truth_isoform_expression_norm_transposed"}


def course_data(seed=0, n_archs4=30, n_gtex=23, g=12, i=20):
    """Small course-shaped data: GTEx gene columns in another order than ARCHS4's, isoform columns
    in no sorted order, donors giving several tissues."""
    rng = np.random.default_rng(seed)
    genes = [f"GENE{j}" for j in range(g)]                      # ARCHS4 order
    gtex_genes = [genes[j] for j in rng.permutation(g)]         # GTEx order differs
    iso_gene = [genes[j % g] for j in range(i)]
    isoforms = [f"ENST{j * 7919 % 100000:05d}.{j % 3 + 1}" for j in range(i)]
    tissues = ["Lung", "Whole Blood", "Kidney - Medulla"]
    gtex_ids = [f"GTEX-D{j % 9}-{j:04d}-SM-X{j}" for j in range(n_gtex)]

    def expr(n, d):
        X = rng.gamma(1.5, 1.5, (n, d)).astype(np.float32)
        X[rng.random((n, d)) < 0.3] = 0
        return X
    return dict(
        genes=genes, gtex_genes=gtex_genes, isoforms=isoforms, iso_gene=iso_gene,
        archs4_ids=[f"GSM{1000 + j}" for j in range(n_archs4)], gtex_ids=gtex_ids,
        tissue=[tissues[j % 3] for j in range(n_gtex)],
        archs4=expr(n_archs4, g), gtex_gene=expr(n_gtex, g), gtex_isoform=expr(n_gtex, i),
        truth=expr(n_gtex, i))


def write_course_dir(d, data, fmt="hdf5", iso_order=None):
    """The course's file set in directory `d` (`fmt` "hdf5", "tsv.gz" or "tsv"); `iso_order`
    permutes the isoform/truth rows against the gene file's."""
    d.mkdir(parents=True, exist_ok=True)
    rows = np.arange(len(data["gtex_ids"])) if iso_order is None else np.asarray(iso_order)
    mats = {"archs4": (data["archs4"], data["archs4_ids"], data["genes"], None),
            "gtex_gene": (data["gtex_gene"], data["gtex_ids"], data["gtex_genes"], data["tissue"]),
            "gtex_isoform": (data["gtex_isoform"][rows], [data["gtex_ids"][k] for k in rows],
                             data["isoforms"], [data["tissue"][k] for k in rows]),
            "truth": (data["truth"][rows], [data["gtex_ids"][k] for k in rows],
                      data["isoforms"], None)}
    for role, (X, ids, feats, tissue) in mats.items():
        if fmt == "hdf5":
            write_course_hdf5(d / f"{STEMS[role]}.hdf5", X, ids, feats, tissue)
        else:
            write_course_tsv(d / f"{STEMS[role]}.{fmt}", X, ids, feats)
    pd.DataFrame({"isoform_id": data["isoforms"], "gene_id": [f"ENSG{g}" for g in
                                                             data["iso_gene"]],
                  "gene_name": data["iso_gene"]}).to_csv(
        d / "gtex_gene_isoform_annoation.tsv.gz", sep="\t", index=False)
    pd.DataFrame({"sample_id": data["gtex_ids"], "tissue": data["tissue"]}).to_csv(
        d / "gtex_annot.tsv.gz", sep="\t", index=False)
    return d


@pytest.fixture
def small_groups(monkeypatch):
    """7-row row groups: conversions of 23-30 rows then stream several slabs (reused buffers,
    a partial last slab), as the real 167,884-row file does with 1,769-row groups."""
    import raviso.data.store as store

    monkeypatch.setattr(store, "ROW_GROUP_BYTES", 7 * 4 * 12)
    return 7


def _by_name(X, names, wanted):
    return X[:, [list(names).index(w) for w in wanted]]


def check_store(path, data, expect_rows=None):
    st = Store(path)
    assert st.genes == data["genes"]                      # ARCHS4 order is canonical
    assert st.isoforms == data["isoforms"]
    assert st.isoform_gene == data["iso_gene"]
    np.testing.assert_array_equal(st.numpy("archs4"), data["archs4"])
    G = st.numpy("gtex_gene")
    assert data["gtex_genes"] != data["genes"]           # the columns really were permuted
    np.testing.assert_array_equal(G, _by_name(data["gtex_gene"], data["gtex_genes"], st.genes))
    for name in ("gtex_isoform", "truth"):
        np.testing.assert_array_equal(st.numpy(name), data[name])
        assert list(st.meta(name).sample_id) == data["gtex_ids"]
    meta = st.meta("gtex_gene")
    assert list(meta.sample_id) == data["gtex_ids"]
    assert list(meta.tissue) == data["tissue"]
    assert list(meta.donor) == [s.rsplit("-", 3)[0] for s in data["gtex_ids"]]
    assert st.meta("archs4").donor.isna().all() and st.meta("archs4").tissue.isna().all()
    return st


@pytest.mark.parametrize("fmt", ["hdf5", "tsv.gz"])
def test_round_trip_exact_aligned_by_name(tmp_path, small_groups, fmt):
    data = course_data()
    src = write_course_dir(tmp_path / "src", data, fmt)
    summary = convert(tmp_path / "store", src)
    assert summary["datasets"]["gtex_gene"]["rows"] == 23
    st = check_store(tmp_path / "store", data)
    files = {p.name: p for p in src.iterdir()}
    sources = {s["dataset"]: s for s in st.manifest["sources"]}
    assert set(sources) == {"archs4", "gtex_gene", "gtex_isoform", "truth", "annotation",
                            "tissues"}
    for s in st.manifest["sources"]:
        f = files[s["path"].rsplit("/", 1)[1]]
        assert s["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert sources["archs4"]["kind"] == ("course-hdf5" if fmt == "hdf5" else "course-tsv")
    # several row groups were written: the 7-row slabs were streamed, not one block
    assert st.manifest["datasets"]["archs4"]["row_group_rows"] == 7
    assert not list(tmp_path.glob(".store*"))


@pytest.mark.parametrize("fmt", ["hdf5", "tsv"])
def test_isoform_rows_realigned_to_gene_rows(tmp_path, small_groups, fmt):
    """Isoform/truth files listing the samples in another order come out in gene-file order (TSV:
    found mid-stream, the dataset is redone; HDF5: known from the header)."""
    data = course_data(seed=3)
    order = np.random.default_rng(1).permutation(len(data["gtex_ids"]))
    src = write_course_dir(tmp_path / "src", data, fmt, iso_order=order)
    convert(tmp_path / "store", src, checksum=False)
    check_store(tmp_path / "store", data)
    assert not list((tmp_path / "store").rglob(".reorder*"))


def test_explicit_files_cli_subprocess(tmp_path):
    """The installed console path end to end: explicit per-file options, no SRC."""
    data = course_data(seed=5)
    src = write_course_dir(tmp_path / "src", data, "hdf5")
    args = [sys.executable, "-c", "import cli; cli.main()", "convert", str(tmp_path / "store"),
            "--archs4", str(src / f"{STEMS['archs4']}.hdf5"),
            "--gtex-gene", str(src / f"{STEMS['gtex_gene']}.hdf5"),
            "--gtex-isoform", str(src / f"{STEMS['gtex_isoform']}.hdf5"),
            "--truth", str(src / f"{STEMS['truth']}.hdf5"),
            "--annotation", str(src / "gtex_gene_isoform_annoation.tsv.gz"),
            "--tissues", str(src / "gtex_annot.tsv.gz")]
    res = subprocess.run(args, capture_output=True, text=True, cwd=str(_root()))
    assert res.returncode == 0, res.stderr
    check_store(tmp_path / "store", data)
    res = subprocess.run(args, capture_output=True, text=True, cwd=str(_root()))
    assert res.returncode == 1 and "already exists" in res.stderr
    assert res.stderr.count("\n") == 1


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------ real data
def test_real_course_heads_convert_aligned(realdata, tmp_path):
    heads = realdata / "course_heads"
    convert(tmp_path / "store", heads)
    st = Store(tmp_path / "store")
    raw_a = pd.read_csv(heads / "head_archs4_gene_expression_norm_transposed.tsv", sep="\t",
                        index_col=0)
    raw_g = pd.read_csv(heads / "head_gtex_gene_expression_norm_transposed.tsv", sep="\t",
                        index_col=0)
    assert st.genes == list(raw_a.columns)                   # ARCHS4's (alphabetical) order
    assert list(raw_g.columns) != st.genes and set(raw_g.columns) == set(st.genes)
    A, G = st.numpy("archs4"), st.numpy("gtex_gene")
    np.testing.assert_allclose(A, raw_a.to_numpy(np.float32), rtol=1e-6, atol=0)
    np.testing.assert_allclose(G, raw_g[st.genes].to_numpy(np.float32), rtol=1e-6, atol=0)
    # a few values by name, read straight from the text
    with open(heads / "head_gtex_gene_expression_norm_transposed.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        first = f.readline().rstrip("\n").split("\t")
    for gene in ("TMEM38B", "A1BG", "MX1", "ZZZ3"):
        text = first[header.index(gene)]
        assert G[0, st.genes.index(gene)] == pytest.approx(float(text), rel=1e-6), gene
    meta = st.meta("gtex_gene")
    assert meta.sample_id[0] == first[0]
    annot = pd.read_csv(heads / "head_gtex_annot.tsv", sep="\t")
    assert list(meta.tissue) == list(annot.tissue)
    assert set(meta.donor) == {"GTEX-1117F"}


def test_real_gtex_gct_slice_converts_with_tissues(realdata, tmp_path):
    d = realdata / "gtex_v8_hk1"
    convert(tmp_path / "store", gct=[d / "gtex_hk1.tsv.gz"], attributes=d / "gtex_meta.tsv.gz")
    st = Store(tmp_path / "store")
    raw = pd.read_csv(d / "gtex_hk1.tsv.gz", sep="\t", skiprows=2, index_col=0)
    gene_id = raw.pop("gene_id")
    X = st.numpy("gtex_isoform")
    assert X.shape == (17382, 17)
    assert st.isoforms == list(raw.index) and st.isoform_gene == list(gene_id)
    np.testing.assert_allclose(X, np.log2(raw.T.to_numpy(np.float64) + 1), rtol=1e-6, atol=1e-6)
    meta = st.meta("gtex_isoform")
    assert list(meta.sample_id) == list(raw.columns)
    table = pd.read_csv(d / "gtex_meta.tsv.gz", sep="\t").set_index("SampleID").Tissue
    assert meta.tissue.nunique() == 54
    assert list(meta.tissue) == list(table[meta.sample_id])
    assert meta.donor.nunique() == 948
    src = st.manifest["sources"][0]
    assert src["kind"] == "gct" and st.manifest["dataset_units"]["gtex_isoform"] == "log2(TPM+1)"


# ------------------------------------------------------------------------------ public ARCHS4
def write_archs4_h5(path, counts_gxs, symbols, samples):
    with h5py.File(path, "w") as f:
        f.create_dataset("data/expression", data=counts_gxs, chunks=(len(symbols), 4))
        f.create_dataset("meta/genes/symbol", data=symbols, dtype=h5py.string_dtype())
        f.create_dataset("meta/samples/geo_accession", data=samples, dtype=h5py.string_dtype())
    return path


def test_public_archs4_h5_log2_cpm(tmp_path, small_groups):
    rng = np.random.default_rng(7)
    symbols = ["B2M", "ACTB", "Y_RNA", "GAPDH", "Y_RNA", "XIST"]      # a repeated symbol
    counts = rng.poisson(50, (len(symbols), 11)).astype(np.uint32)
    counts[:, 3] = 0
    counts[0, 3] = 7                                                  # tiny library
    samples = [f"GSM{k}" for k in range(11)]
    h5 = write_archs4_h5(tmp_path / "human_gene_v2.h5", counts, symbols, samples)
    # a GTEx gene matrix with a subset of those genes, columns in another order
    gtex_genes = ["XIST", "B2M", "Y_RNA", "ACTB"]
    Xg = rng.gamma(2.0, 1.0, (5, 4)).astype(np.float32)
    gtex = write_course_hdf5(tmp_path / "gtex.hdf5", Xg, [f"GTEX-A{k}-1-SM" for k in range(5)],
                             gtex_genes)
    convert(tmp_path / "store", archs4_h5=h5, gtex_gene=gtex, gene_set="intersect")
    st = Store(tmp_path / "store")
    assert st.genes == ["B2M", "ACTB", "Y_RNA", "XIST"]               # ARCHS4 order, common genes
    lib = counts.sum(axis=0).astype(np.float64)                        # over ALL genes
    summed = {s: counts[[k for k, t in enumerate(symbols) if t == s]].sum(axis=0)
              for s in st.genes}
    want = np.stack([np.log2(summed[s] / lib * 1e6 + 1) for s in st.genes], axis=1)
    np.testing.assert_allclose(st.numpy("archs4"), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(st.numpy("gtex_gene"), _by_name(Xg, gtex_genes, st.genes))
    assert st.manifest["dataset_units"] == {"archs4": "log2(CPM+1)", "gtex_gene": "log2(TPM+1)"}
    assert list(st.meta("archs4").sample_id) == samples
    # without --gene-set intersect the mismatch is an error naming genes
    from raviso.core.errors import RavisoError

    with pytest.raises(RavisoError, match="GAPDH"):
        convert(tmp_path / "store2", archs4_h5=h5, gtex_gene=gtex)
    assert not (tmp_path / "store2").exists()


def test_manifest_is_json_with_shapes(tmp_path):
    data = course_data(seed=9)
    src = write_course_dir(tmp_path / "src", data, "hdf5")
    convert(tmp_path / "store", src, checksum=False)
    m = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert m["datasets"]["gtex_isoform"]["rows"] == 23
    assert m["datasets"]["gtex_isoform"]["features"] == 20
    assert m["dtype"] == "float32" and m["raviso_version"]
    assert all(s["sha256"] is None for s in m["sources"])
    assert gzip.decompress((src / "gtex_annot.tsv.gz").read_bytes()).startswith(b"sample_id")


def test_prefetch_reraises_and_stops_its_thread():
    """The read-ahead thread hands reader errors to the consumer and ends when the consumer
    stops early (no thread left reading a file the converter is closing)."""
    import contextlib
    import threading

    from raviso.io.background import prefetch
    from raviso.core.errors import RavisoError

    def failing():
        yield 1
        yield 2
        raise RavisoError("bad chunk", "f.hdf5")

    got = []
    with pytest.raises(RavisoError, match="f.hdf5: bad chunk"):
        for x in prefetch(failing):
            got.append(x)
    assert got == [1, 2]
    with contextlib.closing(prefetch(lambda: iter(range(10**9)))) as it:
        assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "raviso-read"]


def test_bench_convert_prints_table_then_json(tmp_path):
    """`raviso bench convert` contract: table lines, then one JSON object as the last line, with
    the ratio equal to read / convert time and nothing left in the work directory."""
    from bench.convert import run

    lines = []
    res = run(rows=24, workdir=tmp_path, reps=1, ray=False, echo=lines.append)
    last = json.loads(lines[-1])
    assert last == res
    for key in ("convert_gbps", "h5_read_gbps", "ratio", "arrow_read_gbps",
                "convert_permuted_gbps", "convert_cpu_gbps"):
        assert last[key] > 0, key
    # both gbps are rounded to 3 decimals, so their quotient is only that exact: on 24 rows of a
    # loaded machine (convert_gbps ~0.02) the rounding alone moves it by several percent
    r = last["convert_gbps"] / last["h5_read_gbps"]
    rounding = r * (5e-4 / last["convert_gbps"] + 5e-4 / last["h5_read_gbps"]) + 5e-4
    assert abs(last["ratio"] - r) <= 0.05 * r + rounding
    assert last["rows"] == 24 and last["features"] == 18965
    assert any("HDF5 sequential read" in ln for ln in lines[:-1])
    assert list(tmp_path.iterdir()) == []


def test_gene_and_transcript_gct_pair(tmp_path):
    """GTEx gene GCT (Name=Ensembl id, Description=symbol; a repeated symbol is summed in TPM)
    plus transcript GCT (gene_id = Ensembl id): genes named by symbol, isoforms mapped to them."""
    samples = ["GTEX-A1-0001-SM-1", "GTEX-A1-0002-SM-2", "GTEX-B2-0001-SM-3"]
    gene_tpm = np.array([[10.0, 0.0, 3.5], [1.0, 2.0, 0.0], [4.0, 4.0, 4.0]])
    (tmp_path / "genes.gct").write_text(
        "#1.2\n3\t3\nName\tDescription\t" + "\t".join(samples) + "\n"
        + "".join(f"{n}\t{d}\t" + "\t".join(map(str, row)) + "\n" for n, d, row in
                  zip(["ENSG1.1", "ENSG2.4", "ENSG3.1"], ["HK1", "Y_RNA", "Y_RNA"], gene_tpm)))
    (tmp_path / "tx.gct").write_text(
        "#1.2\n2\t3\ntranscript_id\tgene_id\t" + "\t".join(samples) + "\n"
        "ENST1.1\tENSG1.1\t6\t0\t1\nENST2.1\tENSG3.1\t2\t2\t2\n")
    (tmp_path / "attr.tsv").write_text("SAMPID\tSMTSD\tOTHER\n" + "".join(
        f"{s}\t{t}\tx\n" for s, t in zip(samples, ["Lung", "Liver", "Lung"])))
    convert(tmp_path / "store", gct=[tmp_path / "genes.gct", tmp_path / "tx.gct"],
            attributes=tmp_path / "attr.tsv")
    st = Store(tmp_path / "store")
    assert st.genes == ["HK1", "Y_RNA"] and st.isoform_gene == ["HK1", "Y_RNA"]
    want = np.log2(np.stack([gene_tpm[0], gene_tpm[1] + gene_tpm[2]], axis=1) + 1)
    np.testing.assert_allclose(st.numpy("gtex_gene"), want, rtol=1e-6)
    assert list(st.meta("gtex_isoform").tissue) == ["Lung", "Liver", "Lung"]
    assert list(st.meta("gtex_gene").donor) == ["GTEX-A1", "GTEX-A1", "GTEX-B2"]
