"""Sample sheets as Excel writes them (BOM, `;`), files quantified against
different indexes, GTEx donors in `import --matrix`, sheets listing more samples than the matrix,
two sheet rows on one file, sample ids with tabs, stores of another format version."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_import import COUNTS, TX, _gct, _write, expected_log, gtf, salmon

from raviso.core.errors import RavisoError
from raviso.data import Store, make_folds
from raviso.io.importer import import_matrix, import_samples


def _quants(tmp_path):
    return {s: salmon(tmp_path / "quant" / s / "quant.sf", c) for s, c in COUNTS.items()}


# -- sample sheets with a BOM or `;` (Excel exports) ----------------------------------------------
@pytest.mark.parametrize("encoding,sep", [("utf-8-sig", ","), ("utf-8", ";"), ("utf-8-sig", ";"),
                                          ("utf-8-sig", "\t")])
def test_excel_sheets_with_bom_or_semicolons_import(tmp_path, encoding, sep):
    q = _quants(tmp_path)
    text = sep.join(["sample", "path", "tissue"]) + "\r\n" + "".join(
        sep.join([s, str(p), f"t{k}"]) + "\r\n" for k, (s, p) in enumerate(q.items()))
    sh = tmp_path / "sheet.csv"
    sh.write_bytes(text.encode(encoding))
    st = Store(import_samples(sh, tmp_path / "st", gtf=gtf(tmp_path / "a.gtf")))
    meta = st.meta("gtex_gene")
    assert meta.sample_id.tolist() == list(COUNTS) and meta.tissue.tolist() == ["t0", "t1", "t2"]
    np.testing.assert_allclose(st.numpy("gtex_gene")[1], expected_log(COUNTS["s2"])[0], atol=1e-4)


def test_sheet_without_sample_column_names_the_columns_found(tmp_path):
    sh = tmp_path / "sheet.csv"
    sh.write_bytes("\ufeffname;file;tissue\nA;a.sf;t\n".encode())
    with pytest.raises(RavisoError, match=r"sheet.csv: .*sample.*columns found: name, file, "
                                          r"tissue"):
        import_samples(sh, tmp_path / "st")


# -- quantified against different indexes ---------------------------------------------------------
def test_files_from_different_indexes_are_refused_with_counts(tmp_path):
    q = _quants(tmp_path)
    other = q["s3"].read_text().replace("ENST03.1", "ENST99.1").replace("ENST04.3", "ENST98.1")
    q["s3"].write_text(other)
    sh = _write(tmp_path / "sheet.tsv", "sample\tpath\n" + "".join(
        f"{s}\t{p}\n" for s, p in q.items()))
    with pytest.raises(RavisoError, match=r"different (salmon/kallisto )?ind(ex|ices).*s3.*2 of 6"):
        import_samples(sh, tmp_path / "st", gtf=gtf(tmp_path / "a.gtf"), max_unmapped=0.5)
    assert not (tmp_path / "st").exists()


# -- donors of GTEx ids in `import --matrix` ------------------------------------------------------
def test_matrix_import_derives_gtex_donors_and_takes_a_donor_column(tmp_path):
    V = np.arange(1, 4 * 10 + 1, dtype=float).reshape(4, 10)
    p = _gct(tmp_path / "tx.gct.gz", V)        # samples GTEX-<k>-0001
    st = Store(import_matrix(p, tmp_path / "st", units="tpm"))
    assert st.meta("gtex_gene").donor.tolist() == [f"GTEX-{k}" for k in range(10)]
    sh = _write(tmp_path / "labels.tsv", "sample\ttissue\n" + "".join(
        f"GTEX-{k}-0001\tt{k % 2}\n" for k in range(10)))
    st2 = Store(import_matrix(p, tmp_path / "st2", units="tpm", samplesheet=sh))
    meta = st2.meta("gtex_isoform")
    assert meta.donor.tolist() == [f"GTEX-{k}" for k in range(10)]
    folds = make_folds(meta.tissue.to_numpy(), meta.donor.to_numpy(), k=2)
    assert folds.grouped_by == "donor"
    sh3 = _write(tmp_path / "labels3.tsv", "sample\ttissue\tdonor\n" + "".join(
        f"GTEX-{k}-0001\tt{k % 2}\tD{k // 2}\n" for k in range(10)))
    st3 = Store(import_matrix(p, tmp_path / "st3", units="tpm", samplesheet=sh3))
    assert st3.meta("gtex_gene").donor.tolist() == [f"D{k // 2}" for k in range(10)]


# -- sheet lists more samples than the matrix -----------------------------------------------------
def test_sheet_superset_is_an_error_unless_intersect(tmp_path, capsys):
    V = np.arange(1, 4 * 3 + 1, dtype=float).reshape(4, 3)
    p = _gct(tmp_path / "tx.gct.gz", V)
    sh = _write(tmp_path / "annot.tsv", "sample\ttissue\n" + "".join(
        f"GTEX-{k}-0001\tt\n" for k in range(7)))
    with pytest.raises(RavisoError, match=r"4 samples of the sheet are not columns.*"
                                          r"--sample-set intersect"):
        import_matrix(p, tmp_path / "st", units="tpm", samplesheet=sh)
    st = Store(import_matrix(p, tmp_path / "st", units="tpm", samplesheet=sh,
                             sample_set="intersect"))
    assert st.n_rows("gtex_gene") == 3
    err = capsys.readouterr().err
    assert "4 of 7 samples of the sheet are not in the matrix" in err
    assert st.manifest["import"]["sheet_samples_dropped"] == 4


# -- two rows on one file; sample ids with tabs ---------------------------------------------------
def test_two_sheet_rows_on_one_file_are_refused(tmp_path):
    q = _quants(tmp_path)
    sh = _write(tmp_path / "sheet.tsv", "sample\tpath\n" + f"A\t{q['s1']}\nB\t{q['s2']}\n"
                f"C\t{q['s1']}\n")
    with pytest.raises(RavisoError, match=r"line 4: sample 'C' .*same file as sample 'A' "
                                          r"\(line 2\)"):
        import_samples(sh, tmp_path / "st", gtf=gtf(tmp_path / "a.gtf"))


def test_sample_id_with_a_tab_is_refused(tmp_path):
    q = _quants(tmp_path)
    sh = _write(tmp_path / "sheet.csv", "sample,path\n" + f'"A\tx",{q["s1"]}\nB,{q["s2"]}\n')
    with pytest.raises(RavisoError, match=r"line 2: sample id 'A\\tx' contains a tab"):
        import_samples(sh, tmp_path / "st", gtf=gtf(tmp_path / "a.gtf"))


def test_store_of_another_format_version_is_refused(tmp_path):
    q = _quants(tmp_path)
    sh = _write(tmp_path / "sheet.tsv", "sample\tpath\n" + "".join(
        f"{s}\t{p}\n" for s, p in q.items()))
    st = import_samples(sh, tmp_path / "st", gtf=gtf(tmp_path / "a.gtf"))
    man = json.loads((st / "manifest.json").read_text())
    man["format_version"] = 99
    (st / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(RavisoError, match="store format 99 is not supported"):
        Store(st)
