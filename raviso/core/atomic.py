"""Write-then-rename helpers, so an interrupted command never leaves a half-written output: outputs
are built in a hidden temporary sibling, fsynced and renamed into place; `--overwrite` replaces only
a raviso output or an empty directory. Design notes: docs/internals.md."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

from .errors import RavisoError

# file -> a key its JSON object has when raviso wrote it (None: the file's presence is enough)
OUTPUT_MARKER = ".raviso-output"
MARKERS = {"manifest.json": "format_version", "run.json": "model", "config.json": "model",
           "results.json": "schema", "model.json": "format", "synth.json": "preset",
           "latent.json": "latent_dim", "best.json": "format", OUTPUT_MARKER: None}
_OWNED = re.compile(r"\.tmp-([0-9a-f]{8})([0-9a-f]{8})-(\d+)-[0-9a-f]{8}$")


@functools.cache
def host_id() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


@functools.cache
def boot_id() -> str:
    """This boot of this host (Linux's random boot id): a pid from before a reboot is dead."""
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text()
        return hashlib.sha256(text.strip().encode()).hexdigest()[:8]
    except OSError:
        return "00000000"       # unknown: fall back on the pid alone (same host only)


def temp_name(path, host: str | None = None, boot: str | None = None,
              pid: int | None = None) -> str:
    return (f".{Path(path).name}.tmp-{host or host_id()}{boot or boot_id()}-"
            f"{os.getpid() if pid is None else pid}-{uuid.uuid4().hex[:8]}")


def tmp_sibling(path: Path) -> Path:
    remove_stale(path)
    return path.parent / temp_name(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path) -> None:
    """Remove temp siblings of `path` that a killed (SIGKILL, power loss) run of THIS host left."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for old in path.parent.glob(f".{path.name}.tmp-*"):
        m = _OWNED.search(old.name)
        if m is None or m.group(1) != host_id():
            continue                                  # unknown or another host's: never guessed
        boot, pid = m.group(2), int(m.group(3))
        if boot != boot_id() or (pid != os.getpid() and not _pid_alive(pid)):
            remove_path(old)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def marker_ok(name: str, read) -> bool:
    """Whether marker file `name`, whose bytes `read()` returns (None if absent), is raviso's."""
    data = read()
    if data is None:
        return False
    key = MARKERS[name]
    if key is None:
        return True
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and key in doc


def is_raviso_output(path) -> bool:
    path = Path(path)

    def reader(p):
        return lambda: p.read_bytes() if p.is_file() else None

    return any(marker_ok(name, reader(path / name)) for name in MARKERS)


def check_replaceable(path) -> None:
    """Refuse to replace a directory that is neither empty nor a raviso output."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink() and any(path.iterdir()) \
            and not is_raviso_output(path):
        raise RavisoError("exists and is not a raviso output (no " + ", ".join(
            n for n in MARKERS if n != OUTPUT_MARKER) + "): --overwrite will not delete it; "
            "choose another path or remove it yourself", path)


def check_writable_target(path, overwrite: bool = False, file: bool = False) -> Path:
    """Fail early (before any work) if `path` exists and may not be replaced. `file`: the output
    is a single file, so an existing directory there is never replaced."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise RavisoError("already exists (pass --overwrite to replace it)", path)
        if file and path.is_dir():
            raise RavisoError("is a directory; the output is a file (give a file name)", path)
        check_replaceable(path)
    if not path.parent.exists():
        raise RavisoError("parent directory does not exist", path.parent)
    return path


@contextlib.contextmanager
def _atomic(path, overwrite: bool, file: bool):
    path = check_writable_target(path, overwrite, file=file)
    tmp = tmp_sibling(path)
    if not file:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, path)


def atomic_dir(path, overwrite: bool = False):
    """Yield a temporary directory that becomes `path` on success, and vanishes on failure."""
    return _atomic(path, overwrite, file=False)


def atomic_file(path, overwrite: bool = True):
    """Yield a temporary file path that becomes `path` on success, and vanishes on failure."""
    return _atomic(path, overwrite, file=True)


def scratch_array(shape, dtype, dir=None):
    """A disk-backed scratch array no kill can leave behind: its file has no name (O_TMPFILE, or
    created and unlinked at once), so the kernel frees it when the process ends, however it ends
    (a SIGKILLed import used to leave a GTEx-sized buf.npy / .gct-*.f32 of ~14 GB)."""
    import tempfile

    import numpy as np

    with tempfile.TemporaryFile(dir=dir) as f:
        f.truncate(max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize))
        return np.memmap(f, dtype, "r+", shape=tuple(shape))   # the mapping keeps the file


def fsync_path(path) -> None:
    """fsync one file or directory (directories: their entries, i.e. names created in them)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root) -> None:
    """fsync every file, then every directory bottom-up, under `root` (itself included)."""
    root = Path(root)
    if not root.is_dir():
        fsync_path(root)
        return
    for d, _, files in os.walk(root, topdown=False):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                fsync_path(p)
        fsync_path(d)


def replace_path(tmp: Path, path: Path) -> None:
    """Commit: the new output durable first, then renamed over `path`, then the rename durable."""
    if tmp.exists():
        fsync_tree(tmp)
    if path.exists():
        old = tmp_sibling(path)
        os.replace(path, old)
        os.replace(tmp, path)
        remove_path(old)
    else:
        os.replace(tmp, path)
    with contextlib.suppress(OSError):      # some filesystems refuse to fsync a directory
        fsync_path(path.parent)
