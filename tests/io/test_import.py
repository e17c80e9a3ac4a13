"""`raviso import`: readers on small files in the quantifiers' exact formats, the transcript -> gene
map, normalisation, the store it writes, and the clear errors for bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raviso.io import quant
from raviso.io import tx2gene
from raviso.data import Store
from raviso.core.errors import RavisoError
from raviso.io.importer import import_matrix, import_samples
from raviso.io.gene_input import is_quant_input, read_gene_matrix

# three genes; G2 has two transcripts. Ids carry versions in the quantifications.
TX = ["ENST01.1", "ENST02.2", "ENST03.1", "ENST04.3"]
GENE = ["ENSG1.5", "ENSG2.1", "ENSG2.1", "ENSG3.2"]
LEN = np.array([1000.0, 2000.0, 500.0, 1500.0])
EFF = np.array([800.0, 1800.0, 300.0, 1300.0])


def _tpm(counts):
    rate = counts / EFF
    return rate / rate.sum() * 1e6


def _write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def salmon(path, counts, gz=False):
    lines = ["Name\tLength\tEffectiveLength\tTPM\tNumReads"]
    lines += [f"{t}\t{int(L)}\t{e:.3f}\t{v:.6f}\t{c:.3f}"
              for t, L, e, v, c in zip(TX, LEN, EFF, _tpm(counts), counts)]
    return _write(path, "\n".join(lines) + "\n", gz)


def kallisto(path, counts):
    lines = ["target_id\tlength\teff_length\test_counts\ttpm"]
    lines += [f"{t}\t{int(L)}\t{e:.3f}\t{c:.3f}\t{v:.6f}"
              for t, L, e, v, c in zip(TX, LEN, EFF, _tpm(counts), counts)]
    return _write(path, "\n".join(lines) + "\n")


def rsem_isoforms(path, counts):
    tpm = _tpm(counts)
    lines = ["transcript_id\tgene_id\tlength\teffective_length\texpected_count\tTPM\tFPKM\tIsoPct"]
    lines += [f"{t}\t{g}\t{int(L)}\t{e:.2f}\t{c:.2f}\t{v:.2f}\t{v / 2:.2f}\t100.00"
              for t, g, L, e, v, c in zip(TX, GENE, LEN, EFF, tpm, counts)]
    return _write(path, "\n".join(lines) + "\n")


def rsem_genes(path, tpm_by_gene: dict):
    lines = ["gene_id\ttranscript_id(s)\tlength\teffective_length\texpected_count\tTPM\tFPKM"]
    lines += [f"{g}\tx\t1000.00\t800.00\t10.00\t{v:.2f}\t{v / 2:.2f}" for g, v in
              tpm_by_gene.items()]
    return _write(path, "\n".join(lines) + "\n")


def gtf(path, gz=True):
    """A GENCODE-like GTF: gene, transcript and exon records; transcript ids WITHOUT versions."""
    rows = []
    for t, g in zip(TX, GENE):
        base = tx2gene.strip_version(t)
        rows.append(f'chr1\tHAVANA\tgene\t1\t100\t.\t+\t.\tgene_id "{g}"; gene_type "x";')
        for feat in ("transcript", "exon"):
            rows.append(f'chr1\tHAVANA\t{feat}\t1\t100\t.\t+\t.\tgene_id "{g}"; '
                        f'transcript_id "{base}"; exon_number 1;')
    return _write(path, "##description: test\n" + "\n".join(rows) + "\n", gz)


def sheet(path, rows, header="sample\tpath\ttissue\tdonor"):
    return _write(path, header + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")


COUNTS = {"s1": np.array([100.0, 50.0, 30.0, 0.0]), "s2": np.array([10.0, 200.0, 0.0, 70.0]),
          "s3": np.array([0.0, 5.0, 5.0, 500.0])}


def expected_log(counts):
    """(gene log2(TPM+1), isoform log2(TPM+1)) computed independently of the importer."""
    tpm = _tpm(counts)
    genes = np.array([tpm[0], tpm[1] + tpm[2], tpm[3]])
    return np.log2(genes + 1), np.log2(tpm + 1)


# -- readers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("writer,name", [(salmon, "salmon"), (kallisto, "kallisto"),
                                         (rsem_isoforms, "rsem-isoforms")])
def test_each_reader_reads_its_format(tmp_path, writer, name):
    p = writer(tmp_path / "q.txt", COUNTS["s1"])
    q = quant.read_quant(p)
    assert q.layout.name == name
    assert list(q.ids) == TX
    np.testing.assert_allclose(q.counts, COUNTS["s1"], atol=1e-3)
    np.testing.assert_allclose(q.tpm, _tpm(COUNTS["s1"]), rtol=1e-4, atol=0.01)
    np.testing.assert_allclose(q.eff_length, EFF, atol=0.01)
    assert (q.gene is not None) == (name == "rsem-isoforms")


def test_salmon_gzipped_detected_by_content_not_name(tmp_path):
    p = salmon(tmp_path / "quant.sf", COUNTS["s2"], gz=True)   # gzipped without a .gz suffix
    assert quant.read_quant(p).layout.name == "salmon"
    assert quant.read_ids(p)[0].tolist() == TX


def test_rsem_genes_reader(tmp_path):
    p = rsem_genes(tmp_path / "a.genes.results", {"ENSG1.5": 12.5, "ENSG2.1": 3.0})
    q = quant.read_quant(p)
    assert q.layout.level == "gene" and q.ids.tolist() == ["ENSG1.5", "ENSG2.1"]
    np.testing.assert_allclose(q.tpm, [12.5, 3.0])


def test_unknown_header_names_the_file(tmp_path):
    p = _write(tmp_path / "weird.tsv", "id\tvalue\tother\nA\t1\t2\n")
    with pytest.raises(RavisoError, match="weird.tsv.*unknown quantification header"):
        quant.detect_layout(p)


def test_negative_value_is_an_error(tmp_path):
    p = _write(tmp_path / "q.sf", "Name\tLength\tEffectiveLength\tTPM\tNumReads\nT1\t10\t5\t-1\t3\n")
    with pytest.raises(RavisoError, match="q.sf.*TPM holds -1"):
        quant.read_quant(p)


# -- transcript -> gene map ------------------------------------------------------------------------
def test_version_suffixes_match_both_ways(tmp_path):
    p = _write(tmp_path / "t2g.tsv", "TXNAME\tGENEID\nENST01\tG1\nENST02.7\tG2\nENST05.1\tG5\n"
               "ENST06_PAR_Y\tG6\n")
    m = tx2gene.from_tsv(p)
    genes, rep = m.lookup(["ENST01.3", "ENST02", "ENST05.1", "ENST09.1", "ENST06.2_PAR_Y"])
    assert genes.tolist() == ["G1", "G2", "G5", None, "G6"]
    assert rep.mapped == 4 and rep.by_stripped_version == 3 and rep.unmapped == ["ENST09.1"]


def test_gtf_map_streams_gz_and_skips_gene_records(tmp_path):
    m = tx2gene.from_gtf(gtf(tmp_path / "a.gtf.gz"))
    assert len(m) == 4
    genes, rep = m.lookup(TX)
    assert genes.tolist() == GENE and rep.by_stripped_version == 4


def test_conflicting_map_is_an_error(tmp_path):
    p = _write(tmp_path / "t2g.tsv", "T1\tG1\nT1\tG2\n")
    with pytest.raises(RavisoError, match="t2g.tsv.*more than one gene"):
        tx2gene.from_tsv(p)


# -- import_samples --------------------------------------------------------------------------------
def _salmon_sheet(tmp_path, gz=False):
    for s, c in COUNTS.items():
        salmon(tmp_path / "quant" / s / "quant.sf", c, gz=gz)
    return sheet(tmp_path / "samples.tsv",
                 [[s, f"quant/{s}/quant.sf", t, d] for s, t, d in
                  zip(COUNTS, ["liver", "liver", "brain"], ["d1", "d2", "d1"])])


def test_salmon_import_gene_is_sum_of_transcripts(tmp_path):
    sh = _salmon_sheet(tmp_path, gz=True)
    out = import_samples(sh, tmp_path / "store", gtf=gtf(tmp_path / "a.gtf.gz"))
    st = Store(out)
    assert st.genes == ["ENSG1.5", "ENSG2.1", "ENSG3.2"]
    assert st.isoforms == TX and st.isoform_gene == GENE
    assert st.manifest["units"] == "log2(TPM+1)"
    assert st.manifest["import"]["normalisation"] == "tpm"
    G, I = st.numpy("gtex_gene"), st.numpy("gtex_isoform")
    for k, c in enumerate(COUNTS.values()):
        g, i = expected_log(c)
        np.testing.assert_allclose(G[k], g, atol=1e-4)
        np.testing.assert_allclose(I[k], i, atol=1e-4)
    meta = st.meta("gtex_gene")
    assert meta.sample_id.tolist() == list(COUNTS)
    assert meta.tissue.tolist() == ["liver", "liver", "brain"]
    assert meta.donor.tolist() == ["d1", "d2", "d1"]
    assert not st.has("archs4")


def test_kallisto_counts_become_tpm_with_effective_lengths(tmp_path):
    for s, c in COUNTS.items():
        kallisto(tmp_path / s / "abundance.tsv", c)
    t2g = _write(tmp_path / "t2g.csv", "\n".join(f"{tx2gene.strip_version(t)},{g}"
                                                 for t, g in zip(TX, GENE)) + "\n")
    sh = sheet(tmp_path / "s.csv", [[s, f"{s}/abundance.tsv"] for s in COUNTS],
               header="sample,path")
    sh.write_text(sh.read_text().replace("\t", ","))
    st = Store(import_samples(sh, tmp_path / "st", tx2gene_path=t2g, units="counts",
                              as_compendium=True))
    assert st.manifest["import"]["normalisation"] == "tpm-from-counts"
    G = st.numpy("gtex_gene")
    for k, c in enumerate(COUNTS.values()):
        np.testing.assert_allclose(G[k], expected_log(c)[0], atol=1e-4)
    np.testing.assert_array_equal(st.numpy("archs4"), G)
    assert st.meta("gtex_gene").tissue.isna().all()


def test_rsem_uses_own_gene_column_and_genes_results(tmp_path):
    rows = []
    for s, c in COUNTS.items():
        rsem_isoforms(tmp_path / f"{s}.isoforms.results", c)
        rows.append([s, f"{s}.isoforms.results", "lcl", s])
    # sample s1's genes.results overrides ENSG1 only; others fall back to the transcript sum
    rsem_genes(tmp_path / "s1.genes.results", {"ENSG1.5": 1234.0})
    rows[0].append("s1.genes.results")
    for r in rows[1:]:
        r.append("")
    sh = sheet(tmp_path / "s.tsv", rows, header="sample_id\tquant\tcondition\tgroup\tgene_quant")
    st = Store(import_samples(sh, tmp_path / "st", label="condition"))
    G = st.numpy("gtex_gene")
    g1, _ = expected_log(COUNTS["s1"])
    assert G[0, 0] == pytest.approx(np.log2(1235.0), abs=1e-4)
    np.testing.assert_allclose(G[0, 1:], g1[1:], atol=1e-3)
    np.testing.assert_allclose(G[1], expected_log(COUNTS["s2"])[0], atol=1e-3)
    assert st.meta("gtex_gene").tissue.tolist() == ["lcl"] * 3
    assert st.meta("gtex_gene").donor.tolist() == list(COUNTS)


# -- bad input -------------------------------------------------------------------------------------
def test_missing_quant_file_is_an_error_and_writes_nothing(tmp_path):
    sh = _salmon_sheet(tmp_path)
    (tmp_path / "quant" / "s2" / "quant.sf").unlink()
    with pytest.raises(RavisoError, match=r"samples.tsv: line 3: .*'s2' not found"):
        import_samples(sh, tmp_path / "store", gtf=gtf(tmp_path / "a.gtf"))
    assert [p.name for p in tmp_path.iterdir() if "store" in p.name] == []


def test_duplicate_sample_is_an_error(tmp_path):
    for name in ("a.sf", "b.sf", "c.sf"):
        salmon(tmp_path / name, COUNTS["s1"])
    sh = sheet(tmp_path / "s.tsv", [["x", "a.sf"], ["y", "b.sf"], ["x", "c.sf"]],
               header="sample\tpath")
    with pytest.raises(RavisoError, match=r"s.tsv: line 4: duplicate sample 'x' \(first on line 2"):
        import_samples(sh, tmp_path / "store", gtf=gtf(tmp_path / "a.gtf"))


def test_unknown_label_column_is_an_error(tmp_path):
    sh = _salmon_sheet(tmp_path)
    with pytest.raises(RavisoError, match="needs a column named condition"):
        import_samples(sh, tmp_path / "store", label="condition", gtf=gtf(tmp_path / "a.gtf"))


def test_unmapped_transcript_warns_and_is_reported(tmp_path, capsys):
    sh = _salmon_sheet(tmp_path)
    t2g = _write(tmp_path / "t2g.tsv", "".join(f"{t}\t{g}\n" for t, g in zip(TX[:3], GENE[:3])))
    st = Store(import_samples(sh, tmp_path / "st", tx2gene_path=t2g, max_unmapped=0.5))
    err = capsys.readouterr().err
    assert "1 of 4 transcripts are not in the transcript -> gene map" in err and "ENST04.3" in err
    assert st.isoforms == TX[:3] and st.genes == ["ENSG1.5", "ENSG2.1"]
    rep = st.manifest["import"]["tx2gene"]
    assert rep["unmapped"] == 1 and rep["unmapped_examples"] == ["ENST04.3"]
    # above the allowed fraction it is an error (wrong annotation), and nothing is written
    with pytest.raises(RavisoError, match=r"1 of 4 transcripts .*25.0% > --max-unmapped 5.0%"):
        import_samples(sh, tmp_path / "st2", tx2gene_path=t2g)
    assert not (tmp_path / "st2").exists()


def test_mixed_tpm_and_counts_is_an_error_unless_units_counts(tmp_path, capsys):
    salmon(tmp_path / "a.sf", COUNTS["s1"])
    _write(tmp_path / "b.tsv", "transcript\tcounts\n" +
           "".join(f"{t}\t{c}\n" for t, c in zip(TX, COUNTS["s2"])))
    sh = sheet(tmp_path / "s.tsv", [["a", "a.sf"], ["b", "b.tsv"]], header="sample\tpath")
    g = gtf(tmp_path / "a.gtf")
    with pytest.raises(RavisoError, match=r"samples mix TPM \(1, e.g. a\) and counts-only input "
                                          r"\(1, e.g. b\)"):
        import_samples(sh, tmp_path / "st", gtf=g)
    # --units counts: every sample from its counts; b has no lengths -> CPM for ALL, flagged
    st = Store(import_samples(sh, tmp_path / "st", gtf=g, units="counts"))
    assert "log2(CPM+1)" in capsys.readouterr().err
    assert st.manifest["units"] == "log2(CPM+1)"
    assert st.manifest["import"]["normalisation"] == "cpm"
    I = st.numpy("gtex_isoform")
    for k, c in enumerate([COUNTS["s1"], COUNTS["s2"]]):
        np.testing.assert_allclose(I[k], np.log2(c / c.sum() * 1e6 + 1), atol=1e-3)


# -- matrices --------------------------------------------------------------------------------------
def _gct(path, values):
    """GTEx's transcript GCT: #1.2, dims, transcript_id gene_id samples..."""
    lines = ["#1.2", f"{len(TX)}\t{values.shape[1]}",
             "transcript_id\tgene_id\t" + "\t".join(f"GTEX-{k}-0001" for k in range(values.shape[1]))]
    lines += [f"{t}\t{g}\t" + "\t".join(f"{v:.2f}" for v in row)
              for t, g, row in zip(TX, GENE, values)]
    return _write(path, "\n".join(lines) + "\n", gz=True)


def test_gct_tpm_matrix_with_own_gene_column(tmp_path):
    V = np.array([[1.0, 0.0], [2.0, 4.0], [3.0, 8.0], [0.5, 0.25]])
    p = _gct(tmp_path / "tx.gct.gz", V)
    with pytest.raises(RavisoError, match="does not say whether it holds TPM or counts"):
        import_matrix(p, tmp_path / "st", units=None)
    st = Store(import_matrix(p, tmp_path / "st", units="tpm"))
    np.testing.assert_allclose(st.numpy("gtex_isoform"), np.log2(V.T + 1), atol=1e-5)
    np.testing.assert_allclose(st.numpy("gtex_gene")[:, 1], np.log2(V[1] + V[2] + 1), atol=1e-5)
    assert st.meta("gtex_gene").sample_id.tolist() == ["GTEX-0-0001", "GTEX-1-0001"]


def test_counts_matrix_to_cpm_with_sheet_labels(tmp_path):
    V = np.array([[10.0, 0.0, 5.0], [20.0, 40.0, 5.0], [30.0, 60.0, 0.0], [40.0, 0.0, 90.0]])
    text = "TargetID\tGene_Symbol\tA\tB\tC\n" + "".join(
        f"{t}\t{g}\t" + "\t".join(str(v) for v in row) + "\n" for t, g, row in zip(TX, GENE, V))
    p = _write(tmp_path / "m.tsv", text)
    sh = _write(tmp_path / "labels.csv", "SampleID,Tissue,donor\nC,t1,d1\nA,t2,d2\n")
    st = Store(import_matrix(p, tmp_path / "st", units="counts", samplesheet=sh, label="tissue",
                             tx_col="TargetID", gene_col="Gene_Symbol"))
    assert st.manifest["units"] == "log2(CPM+1)"
    meta = st.meta("gtex_isoform")
    assert meta.sample_id.tolist() == ["C", "A"] and meta.tissue.tolist() == ["t1", "t2"]
    cpm = V[:, [2, 0]] / V[:, [2, 0]].sum(axis=0) * 1e6
    np.testing.assert_allclose(st.numpy("gtex_isoform"), np.log2(cpm.T + 1), rtol=1e-5)
    bad = _write(tmp_path / "bad.csv", "sample\nA\nZ\n")
    with pytest.raises(RavisoError, match="bad.csv: 1 samples of the sheet are not columns.*Z"):
        import_matrix(p, tmp_path / "st2", units="counts", samplesheet=bad, tx_col="TargetID",
                      gene_col="Gene_Symbol")


def test_read_gene_matrix_for_predict(tmp_path):
    sh = _salmon_sheet(tmp_path)
    g = gtf(tmp_path / "a.gtf")
    ids, genes, X = read_gene_matrix(tmp_path / "quant" / "s2" / "quant.sf", gtf=g)
    assert ids.tolist() == ["s2"] and genes == ["ENSG1.5", "ENSG2.1", "ENSG3.2"]
    np.testing.assert_allclose(X[0], expected_log(COUNTS["s2"])[0], atol=1e-4)
    ids, _, X = read_gene_matrix(sh, gtf=g)
    assert ids.tolist() == list(COUNTS) and X.shape == (3, 3)
    assert is_quant_input(sh) and is_quant_input(tmp_path / "quant" / "s1" / "quant.sf")
    assert not is_quant_input(g)


def test_cli_import_and_one_line_error(tmp_path):
    sh = _salmon_sheet(tmp_path)
    g = gtf(tmp_path / "a.gtf")
    raviso = [sys.executable, "-c", "import sys; from cli import main; sys.argv[0]='raviso'; main()"]
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run(raviso + ["import", str(sh), str(tmp_path / "st"), "--gtf", str(g),
                                  "--as-compendium"], capture_output=True, text=True, cwd=root)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "st" / "manifest.json").read_text())["datasets"]["archs4"][
        "rows"] == 3
    bad = subprocess.run(raviso + ["import", str(sh), str(tmp_path / "st"), "--gtf", str(g)],
                         capture_output=True, text=True, cwd=root)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"raviso: error: {tmp_path / 'st'}: already exists (pass --overwrite to replace it)"]
