"""Bad-input sweep across every command: each mistake is ONE line `raviso: error: ...` naming the
file or option, a non-zero exit, and nothing written.

Commands run in-process through `cli.main()` (the same wrapper the `raviso` script runs), so the
sweep costs milliseconds per case; the two cases that need a process of their own (a hang, and
exit-code plumbing of the installed script) use subprocesses with timeouts. Cases that misbehave
today are xfail(strict=True) with the expected behaviour as the reason: they turn into failures the
moment the owner fixes them, so the marker gets removed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cluster_head import free_port
from raviso.data.store import write_store

RAVISO = str(Path(sys.executable).parent / "raviso")


def run_cli(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    import cli

    monkeypatch.setattr(sys, "argv", ["raviso", *map(str, args)])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result, *needles):
    code, out, err = result
    assert code != 0, (out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("raviso: error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


# -- fixtures: a real converted store, a GTEx-less store, a run on other genes ------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("badinput")
    subprocess.run([RAVISO, "synth", str(root / "syn")], check=True, capture_output=True)
    subprocess.run([RAVISO, "convert", str(root / "syn"), str(root / "store")], check=True,
                   capture_output=True)
    rng = np.random.default_rng(0)
    genes = [f"OTHER{i}" for i in range(16)]
    write_store(root / "archs4_only", genes,
                archs4={"X": rng.random((64, 16), np.float32),
                        "sample_id": [f"GSM{i}" for i in range(64)]})
    return root


@pytest.fixture(scope="module")
def other_run(data, ray_session):
    """A finished RUN pretrained on genes the synthetic store does not have."""
    from raviso.train.pretrain import pretrain
    from raviso.models.vae.config import VAEConfig
    from raviso.train.config import PretrainConfig, TrainConfig

    return pretrain(data / "archs4_only", data / "other_run", VAEConfig(hidden=(8,), latent_dim=2),
                    TrainConfig(epochs=1, batch_size=16, workers=1, cpus_per_worker=0.5,
                                val_fraction=0.2), PretrainConfig(quiet=True))


def out_path(data, name):
    p = data / "outputs" / name
    p.parent.mkdir(exist_ok=True)
    return p


# -- wrong paths ----------------------------------------------------------------------------------
MISSING = "no-such-input"

WRONG_PATHS = {
    "convert": lambda d, o: ["convert", d / MISSING, o],
    "import": lambda d, o: ["import", d / MISSING, o],
    "pretrain": lambda d, o: ["pretrain", d / MISSING, "--out", o],
    "encode-run": lambda d, o: ["encode", d / MISSING, d / "store", "--out", o],
    "encode-store": lambda d, o: ["encode", d / "other_run", d / MISSING, "--out", o],
    "cv": lambda d, o: ["cv", d / MISSING, "--out", o, "--variants", "mean"],
    "cv-pretrained": lambda d, o: ["cv", d / "store", "--out", o, "--pretrained", d / MISSING,
                                   "--variants", "vae_ffnn"],
    "report": lambda d, o: ["report", d / MISSING],
    "fit": lambda d, o: ["fit", d / MISSING, "--out", o, "--variant", "gene_ffnn"],
    "predict-model": lambda d, o: ["predict", d / MISSING, d / "store", "--out", o],
    "copy": lambda d, o: ["copy", d / MISSING, o],
}


@pytest.mark.parametrize("case", sorted(WRONG_PATHS))
def test_wrong_path(case, data, capsys, monkeypatch, request):
    if case.startswith("encode-store"):
        request.getfixturevalue("other_run")
    out = out_path(data, f"wrong-{case}")
    result = run_cli(capsys, monkeypatch, *WRONG_PATHS[case](data, out))
    assert_one_line_error(result, MISSING)
    assert not out.exists()


# -- a store without GTEx ---------------------------------------------------------------------------
NO_GTEX = {
    "cv": lambda d, o: ["cv", d / "archs4_only", "--out", o, "--variants", "mean"],
    "fit": lambda d, o: ["fit", d / "archs4_only", "--out", o, "--variant", "gene_ffnn"],
}


@pytest.mark.parametrize("case", sorted(NO_GTEX))
def test_store_without_gtex(case, data, capsys, monkeypatch):
    out = out_path(data, f"nogtex-{case}")
    result = run_cli(capsys, monkeypatch, *NO_GTEX[case](data, out))
    assert_one_line_error(result, "archs4_only", "gtex")
    assert not out.exists()


@pytest.mark.ray
def test_encode_gtex_of_a_store_without_gtex(data, other_run, capsys, monkeypatch):
    out = out_path(data, "nogtex-encode")
    result = run_cli(capsys, monkeypatch, "encode", other_run, data / "archs4_only",
                     "--which", "gtex", "--out", out)
    assert_one_line_error(result, "gtex")
    assert not out.exists()


# -- a RUN from another gene set ----------------------------------------------------------------------
@pytest.mark.ray
def test_run_from_another_gene_set_is_refused_by_encode(data, other_run, capsys, monkeypatch):
    out = out_path(data, "othergenes-encode")
    result = run_cli(capsys, monkeypatch, "encode", other_run, data / "store", "--out", out)
    assert_one_line_error(result, "genes")
    assert not out.exists()


@pytest.mark.ray
def test_run_from_another_gene_set_is_refused_by_cv(data, other_run, capsys, monkeypatch):
    out = out_path(data, "othergenes-cv")
    result = run_cli(capsys, monkeypatch, "cv", data / "store", "--out", out,
                     "--pretrained", other_run, "--variants", "vae_ffnn")
    assert_one_line_error(result, "genes")
    assert not out.exists()


def test_finetuned_context_without_a_pretrained_run(data, capsys, monkeypatch):
    out = out_path(data, "finetune-cv")
    result = run_cli(capsys, monkeypatch, "cv", data / "store", "--out", out, "--variants",
                     "share_net[context=finetune]")
    assert_one_line_error(result, "share_net[context=finetune]", "--pretrained RUN")
    assert not out.exists()


# -- folds and options ------------------------------------------------------------------------------
def test_more_folds_than_samples_of_every_tissue(data, capsys, monkeypatch):
    out = out_path(data, "folds-cv")
    result = run_cli(capsys, monkeypatch, "cv", data / "store", "--out", out, "--folds", "1000",
                     "--variants", "mean")
    assert_one_line_error(result, "1000")
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["synth", "{o}", "--preset", "enormous"],
    ["pretrain", "{store}", "--out", "{o}", "--epochs", "0"],
    ["pretrain", "{store}", "--out", "{o}", "--val-fraction", "1.5"],
    ["cv", "{store}", "--out", "{o}", "--folds", "1"],
    ["cv", "{store}", "--out", "{o}", "--group-by", "tissue"],
    ["cv", "{store}", "--out", "{o}", "--variants", "no_such_variant"],
], ids=lambda a: "-".join(x for x in a if not x.startswith("{")))
def test_out_of_range_option_values(args, data, capsys, monkeypatch):
    out = out_path(data, "range-" + "-".join(a for a in args if not a.startswith("{")))
    args = [a.format(o=out, store=data / "store") for a in args]
    result = run_cli(capsys, monkeypatch, *args)
    assert_one_line_error(result)
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["cv", "{store}", "--out", "{o}", "--folds", "abc"],
    ["pretrain", "{store}", "--out", "{o}", "--epochs", "ten"],
    ["synth", "{o}", "--seed", "x1"],
], ids=lambda a: a[0])
def test_non_numeric_option_is_one_line(args, data, capsys, monkeypatch):
    out = out_path(data, f"nonnumeric-{args[0]}")
    args = [a.format(o=out, store=data / "store") for a in args]
    result = run_cli(capsys, monkeypatch, *args)
    assert not out.exists()
    assert_one_line_error(result)


def test_existing_output_is_not_replaced_without_overwrite(data, capsys, monkeypatch):
    out = out_path(data, "existing")
    out.mkdir(exist_ok=True)
    (out / "keep.txt").write_text("mine")
    for args in (["synth", out], ["convert", data / "syn", out],
                 ["pretrain", data / "archs4_only", "--out", out],
                 ["cv", data / "store", "--out", out, "--variants", "mean"]):
        assert_one_line_error(run_cli(capsys, monkeypatch, *args), "exists")
        assert (out / "keep.txt").read_text() == "mine"


# -- store URIs ---------------------------------------------------------------------------------------
def test_store_given_as_uri_is_opened(data, capsys, monkeypatch):
    out = out_path(data, "uri-pretrain")
    # a store with gtex but no archs4: the expected error proves the URI was opened
    uri = f"file://{data / 'store'}"
    code, _, err = run_cli(capsys, monkeypatch, "cv", uri, "--out", out, "--folds", "1000",
                           "--variants", "mean")
    assert "no such store" not in err, err
    assert "1000" in err


# -- the Ray head going away --------------------------------------------------------------------------
def test_unreachable_ray_head_is_a_prompt_one_line_error(data):
    run = data / "outputs" / "unreachable-run"
    t0 = time.monotonic()
    try:
        r = subprocess.run([RAVISO, "pretrain", data / "archs4_only", "--out", run,
                            "--address", f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no answer within 15 s (hangs); RUN created: {run.exists()}")
    assert time.monotonic() - t0 < 15
    assert_one_line_error((r.returncode, r.stdout, r.stderr), "cannot reach")
    assert not run.exists()


# -- the cases found by the hardening audit -----------------------------------------------
def _salmon_files(tmp_path):
    from test_import import COUNTS, gtf, salmon

    q = {s: salmon(tmp_path / "q" / s / "quant.sf", c) for s, c in COUNTS.items()}
    return q, gtf(tmp_path / "a.gtf")


def _sheet(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_import_sheet_without_sample_column_names_the_columns(tmp_path, capsys, monkeypatch):
    sh = _sheet(tmp_path / "s.csv", "name;file\nA;a.sf\n", "utf-8-sig")
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st"),
                          str(sh), "columns found: name, file")
    assert not (tmp_path / "st").exists()


def test_import_files_of_different_indexes(tmp_path, capsys, monkeypatch):
    q, g = _salmon_files(tmp_path)
    q["s2"].write_text(q["s2"].read_text().replace("ENST04.3", "ENST77.1"))
    sh = _sheet(tmp_path / "s.tsv", "sample\tpath\n" + "".join(f"{s}\t{p}\n" for s, p in q.items()))
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st", "--gtf", g,
                                  "--max-unmapped", "0.5"), str(sh), "different index",
                          "1 of 5", "--max-index-mismatch")
    assert not (tmp_path / "st").exists()


def test_import_two_rows_on_one_file(tmp_path, capsys, monkeypatch):
    q, g = _salmon_files(tmp_path)
    sh = _sheet(tmp_path / "s.tsv", f"sample\tpath\nA\t{q['s1']}\nB\t{q['s1']}\n")
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st", "--gtf", g),
                          str(sh), "line 3", "same file as sample 'A'")


def test_import_sample_id_with_a_tab(tmp_path, capsys, monkeypatch):
    q, g = _salmon_files(tmp_path)
    sh = _sheet(tmp_path / "s.csv", f'sample,path\n"A\tB",{q["s1"]}\n')
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st", "--gtf", g),
                          str(sh), "line 2", "contains a tab")


def test_import_matrix_sheet_lists_more_samples(tmp_path, capsys, monkeypatch):
    from test_import import _gct

    m = _gct(tmp_path / "m.gct.gz", np.ones((4, 2)))
    sh = _sheet(tmp_path / "annot.tsv", "sample\ttissue\n" + "".join(
        f"GTEX-{k}-0001\tt\n" for k in range(5)))
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", "--matrix", m, "--units", "tpm",
                                  sh, tmp_path / "st"), str(sh), "3 samples of the sheet",
                          "--sample-set intersect")
    code, _, err = run_cli(capsys, monkeypatch, "import", "--matrix", m, "--units", "tpm", sh,
                           tmp_path / "st", "--sample-set", "intersect")
    assert code == 0 and "3 of 5 samples of the sheet are not in the matrix" in err, err


def test_store_of_another_format_version(data, tmp_path, capsys, monkeypatch):
    import json
    import shutil

    st = tmp_path / "store_v99"
    shutil.copytree(data / "store", st)
    man = json.loads((st / "manifest.json").read_text())
    man["format_version"] = 99
    (st / "manifest.json").write_text(json.dumps(man))
    for args in (["cv", st, "--out", tmp_path / "cv", "--variants", "mean"],
                 ["export", st, "--to", "tsv", "--out", tmp_path / "x.tsv"]):
        assert_one_line_error(run_cli(capsys, monkeypatch, *args), str(st),
                              "store format 99 is not supported")
    assert not (tmp_path / "cv").exists() and not (tmp_path / "x.tsv").exists()


def test_unexpected_exception_is_one_line_with_a_debug_hint(data, capsys, monkeypatch):
    import raviso.evaluate.report.render as report

    def bug(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(report, "write_report", bug)
    assert_one_line_error(run_cli(capsys, monkeypatch, "report", data), "ZeroDivisionError",
                          "--debug")
    with pytest.raises(ZeroDivisionError):     # --debug: the traceback, for a bug report
        run_cli(capsys, monkeypatch, "--debug", "report", data)
