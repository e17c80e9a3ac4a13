"""Real data through `raviso import`: GEUVADIS chr19 counts (91 samples) and GTEx v8's transcript
GCT (HK1). Skipped when ../shared/realdata is absent."""

from __future__ import annotations

import gzip

import numpy as np

from raviso.data import Store
from raviso.io.importer import import_matrix
from raviso.data.folds import small_data_folds


def test_geuvadis_chr19_imports_with_right_shapes(realdata, tmp_path, capsys):
    src = realdata / "geuvadis_chr19" / "TrQuantCount_CEU_chr19.tsv.gz"
    st = Store(import_matrix(src, tmp_path / "geu", units="counts", tx_col="TargetID",
                             gene_col="Gene_Symbol", as_compendium=True))
    assert "log2(CPM+1)" in capsys.readouterr().err       # the loud flag
    assert (st.n_rows("gtex_gene"), len(st.genes)) == (91, 1939)
    assert (st.n_rows("gtex_isoform"), len(st.isoforms)) == (91, 5408)
    assert st.n_rows("archs4") == 91
    assert st.manifest["units"] == "log2(CPM+1)"
    assert st.manifest["import"]["tx2gene"]["unmapped"] == 0
    G, I = st.numpy("gtex_gene"), st.numpy("gtex_isoform")
    # CPM over the slice's transcripts: each sample sums to a million, genes and isoforms alike
    np.testing.assert_allclose((2.0 ** I.astype(np.float64) - 1).sum(1), 1e6, rtol=1e-4)
    # gene = sum of its transcripts (linear scale), checked through the stored isoform -> gene map
    lin = 2.0 ** I.astype(np.float64) - 1
    gi = {g: j for j, g in enumerate(st.genes)}
    summed = np.zeros_like(G, dtype=np.float64)
    for k, g in enumerate(st.isoform_gene):
        summed[:, gi[g]] += lin[:, k]
    np.testing.assert_allclose(2.0 ** G.astype(np.float64) - 1, summed, rtol=1e-4, atol=1e-2)
    assert st.meta("gtex_gene").sample_id.tolist()[:2] == ["NA06984", "NA06985"]
    # no donors or tissues (nulls, which pandas reads as NaN): 91 singleton groups, so the
    # requested 5 folds are kept
    meta = st.meta("gtex_gene")
    f = small_data_folds(meta.tissue, meta.donor, k=5)
    assert f.k == 5 and f.scheme == "kfold" and f.grouped_by == "none"
    assert np.bincount(f.fold).min() >= 18


def test_gtex_transcript_gct_with_tissue_sheet(realdata, tmp_path):
    src = realdata / "gtex_v8_hk1" / "gtex_hk1.tsv.gz"
    with gzip.open(src, "rt") as f:
        f.readline(), f.readline()
        samples = f.readline().rstrip("\n").split("\t")[2:]
    keep = set(samples[:300])
    sheet = tmp_path / "meta.tsv"
    with gzip.open(realdata / "gtex_v8_hk1" / "gtex_meta.tsv.gz", "rt") as f, open(sheet, "w") as o:
        o.write(f.readline())
        o.writelines(line for line in f if line.split("\t")[0] in keep)
    st = Store(import_matrix(src, tmp_path / "hk1", units="tpm", samplesheet=sheet, label="Tissue"))
    assert (st.n_rows("gtex_isoform"), len(st.isoforms), len(st.genes)) == (300, 17, 1)
    assert st.genes == ["ENSG00000156515.21"] and st.manifest["units"] == "log2(TPM+1)"
    meta = st.meta("gtex_gene")
    assert meta.tissue.notna().all() and meta.tissue.nunique() > 5
    G, I = st.numpy("gtex_gene"), st.numpy("gtex_isoform")
    np.testing.assert_allclose(2.0 ** G[:, 0] - 1, (2.0 ** I - 1).sum(1), rtol=1e-4, atol=1e-3)


def test_gtex_gct_with_the_whole_annotation_table(realdata, tmp_path, capsys):
    """On the real case: GTEx's sample table lists 22,951 samples, the GCT has
    17,382 columns. Refused by default; --sample-set intersect imports the 17,382 and says that
    5,569 were dropped; donors come from the GTEX-<donor>-... ids, so folds group by donor."""
    import pytest

    from raviso.core.errors import RavisoError
    from raviso.data import make_folds

    src = realdata / "gtex_v8_hk1" / "gtex_hk1.tsv.gz"
    meta = realdata / "gtex_v8_hk1" / "gtex_meta.tsv.gz"
    sheet = tmp_path / "meta.tsv"
    sheet.write_bytes(gzip.decompress(meta.read_bytes()))
    with pytest.raises(RavisoError, match=r"5569 samples of the sheet are not columns"):
        import_matrix(src, tmp_path / "st", units="tpm", samplesheet=sheet, label="Tissue")
    st = Store(import_matrix(src, tmp_path / "st", units="tpm", samplesheet=sheet, label="Tissue",
                             sample_set="intersect", quiet=True))
    assert "5569 of 22951 samples of the sheet are not in the matrix" in capsys.readouterr().err
    m = st.meta("gtex_gene")
    assert len(m) == 17382 and st.manifest["import"]["sheet_samples_dropped"] == 5569
    assert m.donor.notna().all() and m.donor.str.match(r"^GTEX-[0-9A-Z]+$").all()
    assert 900 < m.donor.nunique() < 1000          # GTEx v8: 948 donors with RNA-seq
    folds = make_folds(m.tissue.to_numpy(), m.donor.to_numpy(), k=5)
    assert folds.grouped_by == "donor"
    fold_of_donor = m.assign(fold=folds.fold).groupby("donor").fold.nunique()
    assert (fold_of_donor == 1).all()               # no donor's tissues in two folds
