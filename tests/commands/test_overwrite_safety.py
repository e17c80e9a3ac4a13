"""No data loss: `--overwrite` replaces only what raviso wrote. A user's regular file, a folder
raviso did not write, and any path that is one of the command's own inputs are refused in one line,
with or without `--overwrite`, by every command that writes; the file is byte-identical afterwards.
A single-file output is recognised by what raviso put in it (Parquet schema metadata, AnnData
``uns/raviso``) or on it (the ``user.raviso_output`` attribute, for TSV): docs/usage.md.

In-process through `cli.main()` (`test_bad_input.run_cli`); no Ray: every refusal comes before work.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from cvdata import write_gene_table, write_tiny_run, write_tiny_store
from test_bad_input import assert_one_line_error, run_cli


def digest(path: Path) -> str:
    """Bytes of a file, or of every file under a folder (names included)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path.parent)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    """A tiny store (with a compendium for pretrain), a RUN and a MODEL, plus a genes table."""
    from raviso.data.store import write_store
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.models.saved import fit_model

    root = tmp_path_factory.mktemp("overwrite")
    store, d = write_tiny_store(root / "store")
    write_store(root / "both", d["genes"], archs4={"X": d["G"], "sample_id": d["sample_id"]},
                gtex_gene=dict(X=d["G"], sample_id=d["sample_id"], tissue=d["tissue"],
                               donor=d["donor"]),
                gtex_isoform=dict(X=d["Y"], sample_id=d["sample_id"], tissue=d["tissue"],
                                  donor=d["donor"]),
                isoforms=d["isoforms"], isoform_gene=d["isoform_gene"])
    run = write_tiny_run(root / "vae", d["genes"])
    st, data = load_labelled(store, {})
    fit_model(data, "gene_ffnn", root / "model", options={"epochs": 2, "seed": 0},
              store_uri=st.uri)
    genes = root / "mygenes.tsv"
    write_gene_table(genes, d["sample_id"], d["genes"], d["G"])
    return root


def user_file(root: Path, name: str) -> Path:
    p = root / "user" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(b"sample\tvalue\nmy precious data\t1\n")
    return p


def user_folder(root: Path, name: str) -> Path:
    p = root / "user" / name
    p.mkdir(parents=True, exist_ok=True)
    (p / "chapter1.tex").write_text("years of work\n")
    return p


# every command that writes, with its output given as {o}
WRITERS = {
    "convert": ["convert", "{root}/nothing-here", "{o}"],
    "import": ["import", "{root}/sheet.tsv", "{o}", "--tx2gene", "{root}/T"],
    "synth": ["synth", "{o}"],
    "pretrain": ["pretrain", "{root}/both", "--out", "{o}"],
    "encode": ["encode", "{root}/vae", "{root}/store", "--out", "{o}"],
    "cv": ["cv", "{root}/store", "--variants", "mean", "--out", "{o}"],
    "tune": ["tune", "{root}/store", "--variant", "gene_ffnn", "--trials", "1", "--out", "{o}"],
    "study": ["study", "{root}/both", "--out", "{o}"],
    "fit": ["fit", "{root}/store", "--variant", "mean", "--out", "{o}"],
    "predict": ["predict", "{root}/model", "{root}/mygenes.tsv", "--out", "{o}"],
    "export": ["export", "{root}/store", "--to", "tsv", "--out", "{o}"],
    "copy": ["copy", "{root}/store", "{o}"],
    "demo": ["demo", "--out", "{o}"],
}
FILE_OUTPUTS = {"predict", "export"}


def args_for(command, root, out, *extra):
    return [a.format(root=root, o=out) for a in WRITERS[command]] + list(extra)


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "plain"])
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_users_regular_file_is_never_replaced(command, overwrite, art, capsys, monkeypatch):
    target = user_file(art, f"{command}-{overwrite}.tsv")
    before = digest(target)
    extra = ["--overwrite"] if overwrite and command != "encode" else []   # encode: no option
    result = run_cli(capsys, monkeypatch, *args_for(command, art, target, *extra))
    if command == "encode":       # encode writes INTO --out: a file there is no folder to use
        assert_one_line_error(result, str(target))
    else:
        assert_one_line_error(result, str(target), "not a" if overwrite else "exists")
    assert digest(target) == before
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("command", sorted(set(WRITERS) - FILE_OUTPUTS - {"encode"}))
def test_a_folder_raviso_did_not_write_is_never_replaced(command, art, capsys, monkeypatch):
    target = user_folder(art, f"folder-{command}")
    before = digest(target)
    result = run_cli(capsys, monkeypatch, *args_for(command, art, target, "--overwrite"))
    assert_one_line_error(result, str(target), "not a raviso output")
    assert digest(target) == before


# an output that is (or holds) one of the command's own inputs
SELF = {
    "predict-input-table": ["predict", "{root}/model", "{t}", "--out", "{t}"],
    "predict-model": ["predict", "{root}/model", "{root}/mygenes.tsv", "--out", "{root}/model"],
    "export-its-store": ["export", "{t}", "--to", "tsv", "--out", "{t}"],
    "copy-onto-itself": ["copy", "{t}", "{t}"],
    "cv-onto-its-store": ["cv", "{t}", "--variants", "mean", "--out", "{t}"],
    "fit-onto-its-store": ["fit", "{t}", "--variant", "mean", "--out", "{t}"],
    "fit-onto-its-run": ["fit", "{root}/store", "--pretrained", "{t}", "--variant", "vae_ffnn",
                         "--out", "{t}"],
    "pretrain-onto-its-store": ["pretrain", "{t}", "--out", "{t}"],
    "cv-onto-a-folder-holding-its-store": ["cv", "{t}/store", "--variants", "mean", "--out",
                                           "{t}"],
}


def _self_target(case: str, art: Path, tmp_path: Path) -> Path:
    import shutil

    if case == "predict-input-table":
        return Path(shutil.copy(art / "mygenes.tsv", tmp_path / "mygenes.tsv"))
    if case == "predict-model":
        return art / "model"
    if case == "fit-onto-its-run":
        return Path(shutil.copytree(art / "vae", tmp_path / "vae"))
    if case == "pretrain-onto-its-store":
        return Path(shutil.copytree(art / "both", tmp_path / "both"))
    if case == "cv-onto-a-folder-holding-its-store":
        holder = tmp_path / "demo"
        holder.mkdir()
        (holder / ".raviso-output").write_text("raviso demo\n")     # a raviso output itself
        shutil.copytree(art / "store", holder / "store")
        return holder
    return Path(shutil.copytree(art / "store", tmp_path / "store"))


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "plain"])
@pytest.mark.parametrize("case", sorted(SELF))
def test_an_output_never_replaces_its_own_input(case, overwrite, art, tmp_path, capsys,
                                                  monkeypatch):
    target = _self_target(case, art, tmp_path)
    before = digest(target)
    args = [a.format(root=art, t=target) for a in SELF[case]]
    result = run_cli(capsys, monkeypatch, *args, *(["--overwrite"] if overwrite else []))
    assert_one_line_error(result, "input of this command")
    assert digest(target) == before


def test_the_issue_cases_byte_for_byte(art, tmp_path, capsys, monkeypatch):
    """A predict whose --out is its own input and an import whose --out is a user's file, both
    with --overwrite: refused, the file untouched."""
    import shutil

    mine = Path(shutil.copy(art / "mygenes.tsv", tmp_path / "mygenes.tsv"))
    before = mine.read_bytes()
    assert_one_line_error(run_cli(capsys, monkeypatch, "predict", art / "model", mine, "--out",
                                  mine, "--overwrite"), str(mine))
    assert mine.read_bytes() == before
    afile = tmp_path / "afile.txt"
    afile.write_text("data\n")
    (tmp_path / "sheet.tsv").write_text(f"sample\tpath\nA\t{mine}\n")
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", tmp_path / "sheet.tsv", afile,
                                  "--tx2gene", tmp_path / "T", "--overwrite"), str(afile))
    assert afile.read_bytes() == b"data\n" and afile.is_file()


@pytest.mark.parametrize("suffix", [".tsv", ".parquet", ".h5ad"])
def test_predict_replaces_its_own_earlier_output_and_not_a_lookalike(suffix, art, tmp_path,
                                                                     capsys, monkeypatch):
    out = tmp_path / f"pred{suffix}"
    predict = ["predict", art / "model", art / "mygenes.tsv", "--out", out]
    assert run_cli(capsys, monkeypatch, *predict)[0] == 0
    first = out.read_bytes()
    code, _, err = run_cli(capsys, monkeypatch, *predict, "--overwrite")
    assert code == 0, err
    assert out.exists()
    # the same bytes of another origin (copied without raviso's attribute; Parquet/h5ad still
    # carry raviso's own metadata inside, so they stay recognisable)
    other = tmp_path / f"copy{suffix}"
    other.write_bytes(first)
    code, _, err = run_cli(capsys, monkeypatch, "predict", art / "model", art / "mygenes.tsv",
                           "--out", other, "--overwrite")
    if suffix == ".tsv":
        assert_one_line_error((code, "", err), str(other), "not a file raviso wrote")
        assert other.read_bytes() == first
    else:
        assert code == 0, err


@pytest.mark.parametrize("suffix", [".parquet", ".h5ad"])
def test_a_foreign_parquet_or_h5ad_is_not_replaced(suffix, art, tmp_path, capsys, monkeypatch):
    import pandas as pd

    other = tmp_path / f"theirs{suffix}"
    df = pd.DataFrame({"x": np.arange(3.0)})
    if suffix == ".parquet":
        df.to_parquet(other)
    else:
        import anndata as ad

        ad.AnnData(X=np.ones((3, 2), np.float32)).write_h5ad(other)
    before = other.read_bytes()
    assert_one_line_error(run_cli(capsys, monkeypatch, "predict", art / "model",
                                  art / "mygenes.tsv", "--out", other, "--overwrite"),
                          str(other), "not a file raviso wrote")
    assert other.read_bytes() == before


def test_a_symlinked_input_is_still_its_input(art, tmp_path, capsys, monkeypatch):
    import shutil

    real = Path(shutil.copy(art / "mygenes.tsv", tmp_path / "real.tsv"))
    link = tmp_path / "link.tsv"
    os.symlink(real, link)
    before = real.read_bytes()
    assert_one_line_error(run_cli(capsys, monkeypatch, "predict", art / "model", link, "--out",
                                  real, "--overwrite"), "input of this command")
    assert real.read_bytes() == before


def test_missing_genes_error_names_allow_missing(art, tmp_path, capsys, monkeypatch):
    """Issue 31 (inputs): the refusal says how to go on (`--allow-missing`, `--max-missing`)."""
    lines = (art / "mygenes.tsv").read_text().splitlines()
    cut = ["\t".join(line.split("\t")[:-3]) for line in lines]      # the last 3 genes absent
    src = tmp_path / "fewer.tsv"
    src.write_text("\n".join(cut) + "\n")
    result = run_cli(capsys, monkeypatch, "predict", art / "model", src, "--out",
                     tmp_path / "p.parquet")
    assert_one_line_error(result, str(src), "3 of 16 model genes missing", "--allow-missing",
                          "--max-missing")
    code, _, err = run_cli(capsys, monkeypatch, "predict", art / "model", src, "--out",
                           tmp_path / "p.parquet", "--allow-missing", "--max-missing", "0.5")
    assert code == 0 and "3 of 16 model genes missing, filled with their training means" in err
