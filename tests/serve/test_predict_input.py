"""`raviso predict` reads the gene tables the field writes: genes x samples or samples x genes, TPM
or log2(TPM+1), TSV/CSV/GCT/Parquet; ids matched as `raviso import` matches them (Ensembl versions
stripped, GCT by Name or Description); tissue from a sample sheet; the layout read in one line."""

from __future__ import annotations

import numpy as np
import pytest
from cvdata import tiny_labelled

from raviso.core.errors import RavisoError


def ens(j: int, version: bool) -> str:
    return f"ENSG{j:011d}" + (f".{j % 4 + 1}" if version else "")


@pytest.fixture(scope="module")
def ens_model(tmp_path_factory):
    """A share_net MODEL (tissue-aware) trained on versioned Ensembl gene ids."""
    from raviso.data.store import write_store
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.models.saved import fit_model

    root = tmp_path_factory.mktemp("ens")
    d = tiny_labelled()
    genes = [ens(j, True) for j in range(len(d["genes"]))]
    meta = dict(sample_id=d["sample_id"], tissue=d["tissue"], donor=d["donor"])
    write_store(root / "store", genes, gtex_gene=dict(X=d["G"], **meta),
                gtex_isoform=dict(X=d["Y"], **meta), isoforms=d["isoforms"],
                isoform_gene=[genes[int(g[1:])] for g in d["isoform_gene"]])
    st, data = load_labelled(root / "store", {})
    model = fit_model(data, "share_net", root / "model",
                      options={"epochs": 3, "seed": 1, "n_components": 4}, store_uri=st.uri)
    expected = np.maximum(model.predict(data, np.arange(data.n)), 0)
    return root, d, expected


def write_gene_tpm(path, d, sep="\t", version=False, symbols=True):
    """An RNA-seq pipeline's merged gene_tpm table: gene_id, gene_name, one column per sample."""
    tpm = np.exp2(d["G"].astype(np.float64)) - 1
    head = ["gene_id"] + (["gene_name"] if symbols else []) + d["sample_id"]
    lines = [sep.join(head)]
    for j in range(tpm.shape[1]):
        lab = [ens(j, version)] + ([f"SYM{j}"] if symbols else [])
        lines.append(sep.join(lab + [repr(float(v)) for v in tpm[:, j]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_sheet(path, d):
    rows = ["sample,tissue,donor"] + [f"{s},{t},{o}" for s, t, o in
                                     zip(d["sample_id"], d["tissue"], d["donor"])]
    path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def run(root, src, out, **kw):
    from raviso.serve.predict import predict_file, read_predictions

    said = []
    ids, P, meta = read_predictions(predict_file(root / "model", src, out, warn=said.append, **kw))
    return ids, P, meta, said


def test_genes_by_samples_tpm_with_versionless_ids_and_a_sample_sheet(ens_model, tmp_path):
    root, d, expected = ens_model
    src = write_gene_tpm(tmp_path / "gene_tpm.tsv", d)
    sheet = write_sheet(tmp_path / "samples.csv", d)
    ids, P, meta, said = run(root, src, tmp_path / "p.parquet", samples=sheet)
    assert ids == d["sample_id"]
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-4)
    assert said[0] == ("raviso: input: genes x samples, TPM -> log2(TPM+1), 48 samples, 16/16 "
                       "model genes (matched on label column 1)")
    # a MODEL fitted without its CV (fit_model alone): said plainly, not columns silently absent
    assert [s for s in said if "reliability" in s] == [
        "raviso: note: this MODEL has no reliability or intervals: it was fitted without the CV "
        "that measures them (raviso fit --cv-folds 0); refit it with `raviso fit` (its CV is on "
        "by default) or `raviso cv --save-model`"]
    assert P.min() >= 0
    import h5py

    from raviso.serve.predict import predict_file

    predict_file(root / "model", src, tmp_path / "p.h5ad", samples=sheet, warn=print)
    with h5py.File(tmp_path / "p.h5ad", "r") as f:           # the sheet's donors reach obs
        codes, cats = f["obs/donor/codes"][:], f["obs/donor/categories"][:]
        assert [cats[c].decode() for c in codes] == d["donor"]
    # without the sheet the tissue is unknown and a tissue-aware model predicts differently
    _, P0, _, _ = run(root, src, tmp_path / "q.parquet")
    assert np.abs(P0 - expected).max() > 1e-3


def test_samples_by_genes_log2_csv_is_detected(ens_model, tmp_path):
    root, d, expected = ens_model
    src = tmp_path / "x.csv"
    lines = ["sample," + ",".join(ens(j, False) for j in range(16))]
    lines += [s + "," + ",".join(repr(float(v)) for v in row)
              for s, row in zip(d["sample_id"], d["G"])]
    src.write_text("\n".join(lines) + "\n")
    sheet = write_sheet(tmp_path / "samples.csv", d)
    ids, P, _, said = run(root, src, tmp_path / "p.parquet", samples=sheet)
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-4)
    assert said[0].startswith("raviso: input: samples x genes, log2(TPM+1), 48 samples, 16/16")


def test_gct_with_ensembl_ids_in_name(ens_model, tmp_path):
    root, d, expected = ens_model
    body = write_gene_tpm(tmp_path / "b.tsv", d, version=True).read_text()
    body = body.replace("gene_id\tgene_name", "Name\tDescription", 1)
    src = tmp_path / "g.gct"
    src.write_text(f"#1.2\n16\t{len(d['sample_id'])}\n" + body)
    ids, P, _, said = run(root, src, tmp_path / "p.parquet",
                          samples=write_sheet(tmp_path / "s.csv", d))
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-4)
    assert "genes x samples (GCT), TPM -> log2(TPM+1)" in said[0] and "on Name" in said[0]


def test_forced_orientation_and_scale(ens_model, tmp_path):
    root, d, expected = ens_model
    src = write_gene_tpm(tmp_path / "gene_tpm.tsv", d, symbols=False)
    sheet = write_sheet(tmp_path / "samples.tsv", d)
    _, P, _, said = run(root, src, tmp_path / "p.parquet", samples=sheet,
                        orientation="genes-by-samples", scale="tpm")
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(RavisoError, match="--orientation samples-by-genes: none of the model's 16 "
                       "genes is there; the other side has 16"):
        run(root, src, tmp_path / "q.parquet", orientation="samples-by-genes")
    with pytest.raises(RavisoError, match="--scale must be one of tpm, log2tpm"):
        run(root, src, tmp_path / "q.parquet", scale="log10")


def test_parquet_input_and_missing_genes_filled_with_training_means(ens_model, tmp_path):
    import pandas as pd

    root, d, _ = ens_model
    keep = [j for j in range(16) if j != 3]
    df = pd.DataFrame(d["G"][:, keep], columns=[ens(j, False) for j in keep])
    df.insert(0, "sample", d["sample_id"])
    src = tmp_path / "x.parquet"
    df.to_parquet(src)
    with pytest.raises(RavisoError, match="1 of 16 model genes missing: ENSG00000000003.4"):
        run(root, src, tmp_path / "p.parquet")
    _, P, meta, said = run(root, src, tmp_path / "p.parquet", allow_missing=True)
    assert meta["missing_genes"]["names"] == [ens(3, True)]
    assert "filled with their training means: ENSG00000000003.4" in said[0]
    assert P.min() >= 0


def test_sample_sheet_must_list_every_input_sample(ens_model, tmp_path):
    root, d, _ = ens_model
    src = write_gene_tpm(tmp_path / "gene_tpm.tsv", d)
    short = dict(d, sample_id=d["sample_id"][1:], tissue=d["tissue"][1:], donor=d["donor"][1:])
    with pytest.raises(RavisoError, match="1 input samples are not in the sample sheet: GTEX-D000"):
        run(root, src, tmp_path / "p.parquet", samples=write_sheet(tmp_path / "s.csv", short))
    assert not (tmp_path / "p.parquet").exists()


def test_the_cli_reports_the_layout_in_one_line(ens_model, tmp_path):
    import subprocess
    import sys

    root, d, _ = ens_model
    src = write_gene_tpm(tmp_path / "gene_tpm.tsv", d)
    sheet = write_sheet(tmp_path / "samples.csv", d)
    r = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "predict",
                        str(root / "model"), str(src), "--samples", str(sheet), "--quiet",
                        "--out", str(tmp_path / "p.parquet")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1500:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("raviso: input:")]
    assert lines == ["raviso: input: genes x samples, TPM -> log2(TPM+1), 48 samples, 16/16 model "
                     "genes (matched on label column 1)"]


def test_input_genes_the_model_does_not_use_are_counted_in_the_input_line(ens_model, tmp_path):
    root, d, expected = ens_model
    src = write_gene_tpm(tmp_path / "gene_tpm.tsv", d)
    text = src.read_text().splitlines()
    extra = [f"ENSG9999999999{i}\tX{i}\t" + "\t".join("1.0" for _ in d["sample_id"])
             for i in range(3)]
    src.write_text("\n".join(text + extra) + "\n")
    _, P, _, said = run(root, src, tmp_path / "p.parquet", samples=write_sheet(tmp_path / "s.csv", d))
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-4)
    assert said[0].endswith("16/16 model genes (matched on label column 1), 3 input genes the "
                            "MODEL does not use (dropped)")
