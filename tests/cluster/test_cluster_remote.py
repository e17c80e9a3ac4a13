"""Remote stores: a store published to a filesystem other than the local default reads back
identically (numpy and Ray Data), and an interrupted copy never opens as a whole store.

Two non-default pyarrow filesystems stand in for object storage: a SubTreeFileSystem rooted in a
temp dir (serialisable, so Ray Data read tasks in other processes use it like an s3:// bucket) and
fsspec's in-process memory filesystem through PyFileSystem (the Python-handler path that gcsfs /
s3fs adapters take).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from raviso.data import Store
from raviso.core.errors import RavisoError
from raviso.data.remote import cached_copy, copy_tree
from raviso.data.store import write_store

RAVISO = str(Path(sys.executable).parent / "raviso")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(12)]
    iso = [f"T{i}" for i in range(7)]
    n = 9
    path = tmp_path_factory.mktemp("remote") / "store"
    return write_store(
        path, genes, isoforms=iso, isoform_gene=[genes[i % 12] for i in range(7)],
        archs4={"X": rng.random((40, 12), np.float32), "sample_id": [f"A{i}" for i in range(40)]},
        gtex_gene={"X": rng.random((n, 12), np.float32),
                   "sample_id": [f"GTEX-{i}-0001-SM" for i in range(n)],
                   "tissue": ["Lung", "Brain", "Liver"] * 3,
                   "donor": [f"GTEX-{i}" for i in range(n)]},
        gtex_isoform={"X": rng.random((n, 7), np.float32),
                      "sample_id": [f"GTEX-{i}-0001-SM" for i in range(n)]})


@pytest.fixture
def bucket(tmp_path) -> pafs.SubTreeFileSystem:
    (tmp_path / "bucket").mkdir()
    return pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())


@pytest.fixture
def memory_fs():
    fs = pafs.PyFileSystem(pafs.FSSpecHandler(MemoryFileSystem()))
    root = f"/raviso-test-{uuid.uuid4().hex[:8]}"
    yield fs, root
    MemoryFileSystem().rm(root, recursive=True)


def assert_same_store(a: Store, b: Store):
    assert b.genes == a.genes and b.isoforms == a.isoforms and b.isoform_gene == a.isoform_gene
    for name in ("archs4", "gtex_gene", "gtex_isoform"):
        np.testing.assert_array_equal(b.numpy(name), a.numpy(name))
    assert b.meta("gtex_gene").equals(a.meta("gtex_gene"))


def test_store_round_trips_through_a_subtree_filesystem(store, bucket, tmp_path):
    copied = copy_tree(store, "datasets/store", dst_filesystem=bucket)
    assert copied.kind == "store" and copied.files >= 4
    remote = Store("datasets/store", filesystem=bucket)
    assert_same_store(Store(store), remote)
    # and back down again, e.g. onto a node's local disk
    copy_tree("datasets/store", tmp_path / "back", src_filesystem=bucket)
    assert_same_store(Store(store), Store(tmp_path / "back"))


def test_store_round_trips_through_an_fsspec_filesystem(store, memory_fs):
    fs, root = memory_fs
    copy_tree(store, f"{root}/store", dst_filesystem=fs)
    assert_same_store(Store(store), Store(f"{root}/store", filesystem=fs))


@pytest.mark.ray
def test_ray_data_reads_a_store_on_another_filesystem(ray_session, store, bucket):
    copy_tree(store, "store", dst_filesystem=bucket)
    remote = Store("store", filesystem=bucket)
    ds = remote.ray_dataset("archs4", columns=["sample_id", "expr"])
    rows = ds.take_all()
    got = {r["sample_id"]: np.asarray(r["expr"]) for r in rows}
    want = Store(store).numpy("archs4")
    assert len(got) == 40
    for i in range(40):
        np.testing.assert_array_equal(got[f"A{i}"], want[i])


def test_interrupted_copy_never_opens_as_a_store(store, memory_fs):
    fs, root = memory_fs
    dst = f"{root}/store"

    class Interrupted(Exception):
        pass

    def die_after_two(rel):
        if die_after_two.n == 2:
            raise Interrupted(rel)
        die_after_two.n += 1
    die_after_two.n = 0

    with pytest.raises(Interrupted):
        copy_tree(store, dst, dst_filesystem=fs, on_file=die_after_two)
    with pytest.raises(RavisoError, match="not a raviso store"):
        Store(dst, filesystem=fs)
    with pytest.raises(RavisoError, match="already exists"):
        copy_tree(store, dst, dst_filesystem=fs)
    copy_tree(store, dst, dst_filesystem=fs, overwrite=True)
    assert_same_store(Store(store), Store(dst, filesystem=fs))


def test_overwrite_makes_the_old_copy_unreadable_before_replacing_it(store, bucket):
    copy_tree(store, "s", dst_filesystem=bucket)
    seen = []
    copy_tree(store, "s", dst_filesystem=bucket, overwrite=True,
              on_file=lambda rel: seen.append(bucket.get_file_info("s/manifest.json").type))
    # while parts were being replaced, no manifest was there; it came last
    assert seen[:-1] and all(t == pafs.FileType.NotFound for t in seen[:-1])
    assert seen[-1] == pafs.FileType.File


def test_copy_refuses_what_readers_would_refuse(tmp_path, bucket):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(RavisoError, match="unfinished pretraining run"):
        copy_tree(run, "run", dst_filesystem=bucket)
    with pytest.raises(RavisoError, match="no such file or directory"):
        copy_tree(tmp_path / "nope", "x", dst_filesystem=bucket)
    (run / "config.json").write_text("{}")
    assert copy_tree(run, "run", dst_filesystem=bucket).kind == "run"
    assert bucket.get_file_info("run/config.json").type == pafs.FileType.File


def test_cached_copy_is_reused_until_the_source_changes(store, bucket, tmp_path):
    copy_tree(store, "store", dst_filesystem=bucket)
    first = cached_copy("store", tmp_path / "nvme", src_filesystem=bucket)
    assert_same_store(Store(store), Store(first))
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert cached_copy("store", tmp_path / "nvme", src_filesystem=bucket) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp      # not copied again
    copy_tree(store, "store", dst_filesystem=bucket, overwrite=True)   # same content
    assert cached_copy("store", tmp_path / "nvme", src_filesystem=bucket) == first


def test_copy_command_with_file_uris(store, tmp_path):
    dst = f"file://{tmp_path}/published"
    r = subprocess.run([RAVISO, "copy", str(store), dst], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("copied store: ")
    assert_same_store(Store(store), Store(dst))
    r = subprocess.run([RAVISO, "copy", str(store), dst], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"raviso: error: {dst}: already exists (pass --overwrite to replace it)"
