"""Issue 31, inputs: a quantification file cut short says "truncated?" (not "different indexes"),
an empty one says "empty", an all-empty tissue column is a warning naming the column and the tissue
baselines are not built, a Ctrl-C / SIGTERM at any point of `raviso import` ends as "interrupted"
(exit 130) without blaming a file and without leaving anything behind, and an OSError is one line
naming the user's path (never a hidden temp name) and the operation."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_one_line_error, run_cli
from test_import import COUNTS, gtf, salmon

RAVISO = str(Path(sys.executable).parent / "raviso")


def _sheet(tmp_path, tissue=False) -> tuple[Path, dict]:
    q = {s: salmon(tmp_path / "q" / s / "quant.sf", c) for s, c in COUNTS.items()}
    head = "sample\tpath" + ("\ttissue" if tissue else "")
    rows = "".join(f"{s}\t{p}" + ("\t" if tissue else "") + "\n" for s, p in q.items())
    sh = tmp_path / "sheet.tsv"
    sh.write_text(head + "\n" + rows)
    return sh, q


def _import(tmp_path, capsys, monkeypatch, sh, *extra):
    return run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st", "--gtf",
                   gtf(tmp_path / "a.gtf"), *extra)


@pytest.mark.parametrize("cut", ["mid-line", "line-boundary", "short-line", "gzip"])
def test_a_quant_file_cut_short_says_truncated(cut, tmp_path, capsys, monkeypatch):
    import gzip

    sh, q = _sheet(tmp_path)
    f = q["s2"]
    text = f.read_bytes()
    lines = text.splitlines(keepends=True)
    if cut == "mid-line":              # cut inside the last line: no newline, fewer fields
        f.write_bytes(text[:len(text) - 12])
    elif cut == "line-boundary":       # whole lines lost: far fewer rows than the others
        f.write_bytes(b"".join(lines[:2]))
    elif cut == "short-line":          # a line in the middle lost its last fields
        f.write_bytes(lines[0] + lines[1].rsplit(b"\t", 2)[0] + b"\n" + b"".join(lines[2:]))
    else:
        whole = gzip.compress(text)
        f.write_bytes(whole[:len(whole) // 2])
    result = _import(tmp_path, capsys, monkeypatch, sh)
    assert_one_line_error(result, str(f), "truncated?")
    assert "different index" not in result[2]
    assert not (tmp_path / "st").exists()


def test_an_empty_quant_file_says_empty(tmp_path, capsys, monkeypatch):
    sh, q = _sheet(tmp_path)
    q["s3"].write_bytes(b"")
    result = _import(tmp_path, capsys, monkeypatch, sh)
    assert_one_line_error(result, str(q["s3"]), "is empty")
    assert "unknown quantification header" not in result[2]


def test_an_empty_sample_sheet_file_says_empty(tmp_path, capsys, monkeypatch):
    sh = tmp_path / "sheet.tsv"
    sh.write_bytes(b"")
    assert_one_line_error(run_cli(capsys, monkeypatch, "import", sh, tmp_path / "st"), str(sh),
                          "is empty")


def test_an_all_empty_tissue_column_warns_and_skips_tissue_baselines(tmp_path, capsys,
                                                                     monkeypatch):
    from raviso.data import Store
    from raviso.evaluate.engine.inputs import tissue_baselines

    sh, _ = _sheet(tmp_path, tissue=True)
    code, _, err = _import(tmp_path, capsys, monkeypatch, sh)
    assert code == 0, err
    warning = [x for x in err.splitlines() if "no tissue given" in x]
    assert len(warning) == 1 and "'tissue'" in warning[0] and str(sh) in warning[0], err
    tissue = Store(tmp_path / "st").meta("gtex_gene").tissue.tolist()
    assert tissue == [None] * len(COUNTS)
    names = ["mean", "tissue_mean", "pca_ridge", "pca_tissue_ridge", "isoform_fraction_tissue",
             "share_net"]
    assert tissue_baselines(names, tissue) == ["tissue_mean", "pca_tissue_ridge",
                                               "isoform_fraction_tissue"]
    assert tissue_baselines(names, ["Lung", "Liver", None]) == []


def test_cv_does_not_build_tissue_baselines_without_tissues(tmp_path):
    """`raviso cv`'s set-up (before Ray) drops them and says why."""
    from cvdata import write_tiny_store

    from raviso.evaluate.config import CvConfig
    from raviso.evaluate.cv import _load

    store, _ = write_tiny_store(tmp_path / "store")
    from raviso.data import Store
    from raviso.data.store import write_store

    st = Store(store)
    meta = st.meta("gtex_gene")
    none = dict(sample_id=meta.sample_id.tolist(), tissue=[None] * len(meta),
                donor=meta.donor.tolist())
    write_store(tmp_path / "untissued", st.genes, gtex_gene=dict(X=st.numpy("gtex_gene"), **none),
                gtex_isoform=dict(X=st.numpy("gtex_isoform"), **none), isoforms=st.isoforms,
                isoform_gene=st.isoform_gene)
    said = []
    cfg = CvConfig.build(None, variants="mean,tissue_mean,pca_ridge,pca_tissue_ridge", folds=3)
    setup = _load(tmp_path / "untissued", cfg, said.append)
    assert setup.names == ["mean", "pca_ridge"]
    assert sum("no tissue given" in s for s in said) == 2, said


# -- Ctrl-C and SIGTERM at any point of an import ------------------------------------------------
def _big_sheet(tmp_path, n_samples=40, n_tx=20000) -> Path:
    rng = np.random.default_rng(0)
    tx = [f"ENST{i:08d}" for i in range(n_tx)]
    rows = []
    for s in range(n_samples):
        c = rng.gamma(1.0, 50.0, n_tx)
        tpm = c / c.sum() * 1e6
        p = tmp_path / "q" / f"s{s}.sf"
        p.parent.mkdir(exist_ok=True)
        p.write_text("Name\tLength\tEffectiveLength\tTPM\tNumReads\n" + "".join(
            f"{t}\t1000\t800.0\t{v:.4f}\t{x:.2f}\n" for t, v, x in zip(tx, tpm, c)))
        rows.append(f"S{s}\t{p}\tLung\n")
    t2g = tmp_path / "t2g.tsv"
    t2g.write_text("".join(f"{t}\tENSG{i // 3:08d}\n" for i, t in enumerate(tx)))
    sh = tmp_path / "sheet.tsv"
    sh.write_text("sample\tpath\ttissue\n" + "".join(rows))
    return sh, t2g


def _wait_for_raviso(pid: int, timeout: float = 60.0) -> None:
    """Until the process catches SIGTERM (cli.py's first lines): before that the interpreter is
    still starting and a signal is Python's own (its default action), not raviso's to handle."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1],
                      16)
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_at_any_point_is_interrupted_not_a_bad_file(sig, tmp_path):
    sh, t2g = _big_sheet(tmp_path)
    ends = []
    # counted from cli.py's first lines (`_wait_for_raviso`); raviso.core.malloc's re-exec holds
    # a signal until the new process is there again
    for k, delay in enumerate((0.0, 0.3, 0.8, 1.5, 2.5, 4.0, 6.0)):
        out = tmp_path / f"st{k}"
        p = subprocess.Popen([RAVISO, "import", sh, out, "--tx2gene", t2g], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_raviso(p.pid)
        time.sleep(delay)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        lines = [x for x in err.strip().splitlines() if x.strip()]
        ends.append(p.returncode)
        assert "Traceback" not in err, err
        if p.returncode == 0:            # finished before the signal
            assert out.is_dir()
            continue
        assert p.returncode == 130, (delay, p.returncode, err)
        assert lines[-1] == "raviso: interrupted", (delay, err)
        assert not any("error" in x for x in lines), (delay, err)
        if out.exists():       # the signal came after the commit: the store is whole, never half
            from raviso.data import Store

            assert Store(out).n_rows("gtex_gene") == 40
        assert not list(tmp_path.glob(f".st{k}.tmp-*")), "the temp store was left behind"
    assert ends.count(130) >= 3, ends       # most of them landed inside the command


# -- OS errors: the user's path and the operation -------------------------------------------------
def test_an_oserror_names_the_users_path_not_the_temp_name(tmp_path):
    from raviso.commands.errors import os_error_line
    from raviso.core.atomic import temp_name

    tmp = tmp_path / "rodir" / temp_name(tmp_path / "rodir" / "st")
    line = os_error_line(PermissionError(errno.EPERM, "Operation not permitted", str(tmp)))
    assert f"{tmp_path}/rodir/st: cannot write: operation not permitted" == line
    full = os_error_line(OSError(errno.ENOSPC, "No space left on device", str(tmp / "x.parquet")))
    assert full == f"{tmp_path}/rodir/st/x.parquet: cannot write: no space left on device " \
        "(disk full)"
    assert os_error_line(OSError(errno.EACCES, "Permission denied")) == \
        "permission denied: [Errno 13] Permission denied"      # no filename: no crash


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left"),
                                        (errno.EROFS, "read-only file system"),
                                        (errno.EACCES, "permission denied")])
def test_a_write_refused_by_the_system_is_one_line_through_the_cli(code, words, tmp_path, capsys,
                                                                   monkeypatch):
    """The disk says no while the store is written: one line naming the store as the user gave
    it, the operation and the reason; nothing left behind."""
    import os

    import raviso.core.atomic as atomic

    def refuse(root):
        raise OSError(code, os.strerror(code), str(root))

    monkeypatch.setattr(atomic, "fsync_tree", refuse)
    sh, _ = _sheet(tmp_path)
    result = _import(tmp_path, capsys, monkeypatch, sh, "--quiet")
    assert_one_line_error(result, f"{tmp_path / 'st'}: cannot write: {words}")
    assert ".tmp-" not in result[2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
