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
FILE_MARK = "user.raviso_output"      # extended attribute on a single file raviso wrote
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


def mark_file(path) -> None:
    """Tag a file raviso wrote (extended attribute `FILE_MARK`), so that `--overwrite` knows it
    again: a TSV has no room for a marker its readers (pandas, R) would not choke on. Best effort:
    a filesystem without user attributes leaves it unmarked, and then it is simply not replaced."""
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(path, FILE_MARK, b"1")


def is_raviso_file(path) -> bool:
    """Whether the single file `path` is a raviso output: its `FILE_MARK` attribute, or the format's
    own metadata raviso writes (Parquet schema metadata key ``raviso``, AnnData ``uns/raviso``)."""
    path = Path(path)
    with contextlib.suppress(OSError, AttributeError):
        if FILE_MARK in os.listxattr(path):
            return True
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"PAR1"):
            import pyarrow.parquet as pq

            return b"raviso" in (pq.read_schema(path).metadata or {})
        if head == b"\x89HDF\r\n\x1a\n":
            import h5py

            with h5py.File(path, "r") as h:
                return "uns" in h and "raviso" in h["uns"]
    except Exception:       # unreadable or not what its first bytes claim: not ours to replace
        return False
    return False


# the existing paths the running command's line names (`command_paths`): none may be replaced
_COMMAND_PATHS: list[Path] = []


def _real(p) -> Path:
    p = str(p)
    return Path(os.path.realpath(p[len("file://"):] if p.startswith("file://") else p))


@contextlib.contextmanager
def command_paths(args):
    """While a command runs: every path its command line names that exists (options given as
    `--opt=PATH` included). An output that is one of them twice over (`predict M x.tsv --out
    x.tsv`), or that holds another of them, is refused by `check_replaceable`."""
    named = []
    for a in map(str, args):
        for part in (a, a.split("=", 1)[-1]) if a.startswith("--") else (a,):
            if "://" not in part.replace("file://", "") and os.path.lexists(
                    part[len("file://"):] if part.startswith("file://") else part):
                named.append(_real(part))
    _COMMAND_PATHS[:] = named
    try:
        yield named
    finally:
        _COMMAND_PATHS.clear()


def check_not_input(path, inputs=()) -> None:
    """Refuse to replace `path` when it is, or holds, one of the command's inputs: `inputs`, or
    the paths its command line names (`command_paths`)."""
    target = _real(path)
    given = [_real(p) for p in inputs if p is not None and "://" not in str(p).replace(
        "file://", "")]
    others = [p for p in _COMMAND_PATHS if p != target]
    if _COMMAND_PATHS.count(target) > 1 or any(
            p == target or target in p.parents for p in given + others):
        raise RavisoError("is an input of this command (or holds one): an output never replaces "
                          "its own input, with or without --overwrite; choose another output",
                          path)


def check_replaceable(path, file: bool = False, inputs=()) -> None:
    """Refuse to replace `path` unless it is raviso's: for a directory output an empty directory
    or one with a raviso marker; for a single-file output a file `is_raviso_file` recognises.
    Never a command's own input, never a regular file where a directory goes."""
    path = Path(path)
    check_not_input(path, inputs)
    if file:
        if path.is_dir():
            raise RavisoError("is a directory; the output is a file (give a file name)", path)
        if not is_raviso_file(path):
            raise RavisoError("exists and is not a file raviso wrote: --overwrite will not "
                              "replace it; choose another name or remove it yourself", path)
        return
    if not path.is_dir():
        raise RavisoError("exists and is a file, not a raviso output: --overwrite will not "
                          "replace it; choose another path or remove it yourself", path)
    if any(path.iterdir()) and not is_raviso_output(path):
        raise RavisoError("exists and is not a raviso output (no " + ", ".join(
            n for n in MARKERS if n != OUTPUT_MARKER) + "): --overwrite will not delete it; "
            "choose another path or remove it yourself", path)


def check_writable_target(path, overwrite: bool = False, file: bool = False,
                          inputs=()) -> Path:
    """Fail early (before any work) if `path` exists and may not be replaced (`check_replaceable`).
    `file`: the output is a single file; `inputs`: the command's input paths."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            check_not_input(path, inputs)
            raise RavisoError("already exists (pass --overwrite to replace it)", path)
        check_replaceable(path, file=file, inputs=inputs)
    if not path.parent.exists():
        raise RavisoError("parent directory does not exist", path.parent)
    return path


@contextlib.contextmanager
def _atomic(path, overwrite: bool, file: bool):
    if file:        # a file inside an output, or one its command checked (`check_writable_target`)
        path = Path(path)
        if path.is_dir() and not path.is_symlink():
            raise RavisoError("is a directory; the output is a file (give a file name)", path)
        if path.exists() and not overwrite:
            raise RavisoError("already exists (pass --overwrite to replace it)", path)
    else:
        path = check_writable_target(path, overwrite)
    tmp = tmp_sibling(path)
    if not file:
        tmp.mkdir()
    try:
        yield tmp
        if file and tmp.exists():
            mark_file(tmp)
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
