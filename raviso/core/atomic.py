"""Write-then-rename helpers, so an interrupted command never leaves a half-written output behind.

Outputs are built under a hidden temporary sibling (same filesystem, so the final `os.replace` is
atomic) and moved into place only when complete. On any exception the temporary path is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from .errors import RavisoError


def _tmp_sibling(path: Path) -> Path:
    _remove_stale(path)
    return path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove temp siblings left by a killed (SIGKILL, power loss) earlier run on this host."""
    if not path.parent.is_dir():
        return
    for old in path.parent.glob(f".{path.name}.tmp-*-*"):
        pid = old.name.rsplit("-", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_writable_target(path, overwrite: bool = False) -> Path:
    """Fail early (before any work) if `path` exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RavisoError("already exists (pass --overwrite to replace it)", path)
    if not path.parent.exists():
        raise RavisoError("parent directory does not exist", path.parent)
    return path


@contextlib.contextmanager
def atomic_dir(path, overwrite: bool = False):
    """Yield a temporary directory that becomes `path` on success, and vanishes on failure."""
    path = check_writable_target(path, overwrite)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path, overwrite: bool = True):
    """Yield a temporary file path that becomes `path` on success, and vanishes on failure."""
    path = check_writable_target(path, overwrite)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _replace(tmp, path)


def _replace(tmp: Path, path: Path) -> None:
    if path.exists():
        old = _tmp_sibling(path)
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)
