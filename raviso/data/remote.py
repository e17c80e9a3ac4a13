"""Writing a whole store or RUN directory to object storage (s3://, gs://) or a shared filesystem, and
pulling one back to local disk. Object stores cannot rename, so the commit marker (manifest.json,
config.json) is written last and deleted first on --overwrite. Notes: docs/internals.md."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from .reader import resolve
from ..core.atomic import MARKERS as OUTPUT_MARKERS
from ..core.atomic import (OUTPUT_MARKER, check_not_input, check_replaceable, fsync_tree,
                           marker_ok)
from ..core.errors import RavisoError
from .store import MANIFEST

RUN_MARKER = "config.json"
MARKERS = (MANIFEST, RUN_MARKER)


@dataclass
class Copied:
    kind: str        # "store", "run" or "directory"
    files: int
    bytes: int
    destination: str


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _replaceable(fs: pafs.FileSystem, root: str) -> bool:
    """--overwrite may replace `root` only when it is empty or a raviso output (a store, a RUN,
    or an earlier copy, interrupted ones included: `copy_tree` writes `OUTPUT_MARKER` first)."""
    if not fs.get_file_info(pafs.FileSelector(root)):
        return True

    def reader(name):
        def read():
            try:
                with fs.open_input_stream(posixpath.join(root, name)) as f:
                    return f.read()
            except (FileNotFoundError, OSError):
                return None
        return read

    return any(marker_ok(name, reader(name)) for name in OUTPUT_MARKERS)


def kind_of(fs: pafs.FileSystem, root: str, where: str) -> str:
    """What `root` holds, refusing what no reader would open (a source that is itself half-made)."""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise RavisoError("no such file or directory", where)
    if info.type != pafs.FileType.Directory:
        raise RavisoError("not a directory (copy a store or a RUN directory)", where)
    if _exists(fs, posixpath.join(root, MANIFEST)):
        return "store"
    if _exists(fs, posixpath.join(root, RUN_MARKER)):
        return "run"
    if _exists(fs, posixpath.join(root, "run.json")):
        raise RavisoError("an unfinished pretraining run (no config.json): finish it with "
                          "`raviso pretrain --resume` before copying it", where)
    return "directory"


def _files(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    """Every file under root, commit markers at the top level last, hidden temporaries skipped."""
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = []
    for info in infos:
        rel = posixpath.relpath(info.path, root)
        if info.type != pafs.FileType.File or any(p.startswith(".") for p in rel.split("/")):
            continue
        files.append(info)
    top = lambda i: posixpath.relpath(i.path, root) in MARKERS  # noqa: E731
    return sorted(files, key=lambda i: (top(i), i.path))


def copy_tree(src, dst, *, src_filesystem: pafs.FileSystem | None = None,
              dst_filesystem: pafs.FileSystem | None = None, overwrite: bool = False,
              on_file=None) -> Copied:
    """Copy a store, a finished RUN or a plain directory from `src` to `dst` (paths or URIs, or
    paths inside the given filesystems), writing the commit marker last.

    `on_file(relative_path)` is called after each file (progress; fault tests interrupt here).
    """
    sfs, sroot = resolve(src, src_filesystem)
    dfs, droot = resolve(dst, dst_filesystem)
    kind = kind_of(sfs, sroot, src)
    if _exists(dfs, droot):
        local = isinstance(dfs, pafs.LocalFileSystem)
        source = (sroot,) if isinstance(sfs, pafs.LocalFileSystem) else ()
        if local:
            check_not_input(droot, source)             # `copy A A --overwrite` would delete A
        if not overwrite:
            raise RavisoError("already exists (pass --overwrite to replace it)", dst)
        if local:
            check_replaceable(droot, inputs=source)    # never a user's file or folder
        if not _replaceable(dfs, droot):
            raise RavisoError("exists and is not a raviso output: --overwrite will not delete "
                              "it; choose another destination or remove it yourself", dst)
        for marker in MARKERS:                       # unreadable first, then gone
            if _exists(dfs, posixpath.join(droot, marker)):
                dfs.delete_file(posixpath.join(droot, marker))
        dfs.delete_dir(droot)
    elif isinstance(dfs, pafs.LocalFileSystem) and not os.path.isdir(os.path.dirname(droot)):
        raise RavisoError("parent directory does not exist", os.path.dirname(droot))
    dfs.create_dir(droot, recursive=True)
    with dfs.open_output_stream(posixpath.join(droot, OUTPUT_MARKER)) as f:
        f.write(b"raviso copy\n")                 # first: an interrupted copy is still ours
    n = size = 0
    durable = not isinstance(dfs, pafs.LocalFileSystem)   # object stores: a PUT is durable
    for info in _files(sfs, sroot):
        rel = posixpath.relpath(info.path, sroot)
        if rel in MARKERS and not durable:       # on disk: the data durable before the marker
            fsync_tree(droot)
            durable = True
        target = posixpath.join(droot, rel)
        parent = posixpath.dirname(target)
        if parent != droot:
            dfs.create_dir(parent, recursive=True)
        pafs.copy_files(info.path, target, source_filesystem=sfs, destination_filesystem=dfs)
        n += 1
        size += info.size or 0
        if on_file is not None:
            on_file(rel)
    if isinstance(dfs, pafs.LocalFileSystem):
        fsync_tree(droot)
    return Copied(kind=kind, files=n, bytes=size, destination=str(dst))


def cached_copy(src, cache_root, *, src_filesystem: pafs.FileSystem | None = None) -> Path:
    """A local copy of the store at `src` under `cache_root` (a node's NVMe), reused while the
    source's manifest is unchanged: epochs 2..N then read local disk, not the object store."""
    sfs, sroot = resolve(src, src_filesystem)
    if kind_of(sfs, sroot, src) != "store":
        raise RavisoError("not a raviso store (only stores are cached)", src)
    with sfs.open_input_stream(posixpath.join(sroot, MANIFEST)) as f:
        manifest = f.read()
    key = hashlib.sha256(str(src).encode() + b"\0" + manifest).hexdigest()[:16]
    cache_root = Path(cache_root)
    local = cache_root / f"{Path(sroot).name or 'store'}-{key}"
    if (local / MANIFEST).is_file() and (local / MANIFEST).read_bytes() == manifest:
        return local
    cache_root.mkdir(parents=True, exist_ok=True)
    copy_tree(src, local, src_filesystem=src_filesystem, overwrite=True)
    return local


def summary(copied: Copied) -> str:
    return (f"copied {copied.kind}: {copied.files} files, {copied.bytes / 1e6:.1f} MB -> "
            f"{copied.destination}")


def read_json(path, filesystem: pafs.FileSystem | None = None) -> dict:
    """A JSON file from a path or URI (e.g. a remote RUN's config.json)."""
    fs, p = resolve(path, filesystem)
    try:
        with fs.open_input_stream(p) as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise RavisoError("no such file", path) from None
