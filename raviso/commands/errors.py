"""Run the typer app and turn every way it can end into one line and an exit code.
`debug`: a dict whose "on" the app sets from `--debug` while it runs.

One mapping for every command: usage errors (2), `RavisoError` (1), an interrupt (SIGINT or SIGTERM:
"interrupted", 130, whatever the interrupted code raised on its way out, so that a read cut short
is never blamed on its file), the system refusing a file (`os_error_line`: the user's path, never a
hidden temp name, and what was being done) and, last, a bug (one line naming the exception)."""

import errno
import os
import re
import signal
import sys

import typer

from raviso.core.atomic import command_paths
from raviso.core.errors import RavisoError

INTERRUPTED: dict = {"signal": None}
# `.NAME.tmp-<host><boot>-<pid>-<rand>`, the hidden sibling raviso builds NAME in (core.atomic)
_TEMP = re.compile(r"\.([^/]+?)\.tmp-[0-9a-f]{16}-\d+-[0-9a-f]{8}(?=/|$)")
_WHY = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device (disk full)",
        errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "no such file or directory",
        errno.EISDIR: "is a directory", errno.ENOTDIR: "not a directory"}
_WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT}
# the innermost call that failed -> the operation, in words
_OPS = {"mkdir": "create", "makedirs": "create", "replace": "rename", "rename": "rename",
        "unlink": "remove", "rmtree": "remove", "rmdir": "remove", "write_text": "write",
        "write_bytes": "write", "write": "write", "copyfile": "copy", "copytree": "copy",
        "copy2": "copy", "read_text": "read", "read_bytes": "read", "read": "read",
        "listdir": "list", "iterdir": "list", "scandir": "list", "chmod": "change"}


def _interrupt(signum, frame):
    """SIGINT/SIGTERM: remember it, then unwind like Ctrl-C so atomic writers clean up."""
    INTERRUPTED["signal"] = signum
    raise KeyboardInterrupt


def _unraisable(hook):
    """`hook`, except for an interrupt raised inside a finalizer or weakref callback (Python
    would print its traceback and go on; the command ends as "interrupted" anyway)."""
    def quiet(u):
        if not isinstance(u.exc_value, (KeyboardInterrupt, SystemExit)):
            hook(u)
    quiet.raviso = True
    return quiet


def install_interrupts() -> dict:
    """Route SIGINT and SIGTERM to `_interrupt`; returns the handlers they had."""
    if not getattr(sys.unraisablehook, "raviso", False):
        sys.unraisablehook = _unraisable(sys.unraisablehook)
    return {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}


def user_path(path) -> str:
    """`path` as the user named it: a hidden temp sibling raviso builds an output in is shown
    as that output."""
    return _TEMP.sub(lambda m: m.group(1), os.fsdecode(path))


def _operation(e: OSError) -> str:
    tb, name = e.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    op = _OPS.get(name or "")
    if op is None:
        temp = any(_TEMP.search(os.fsdecode(f)) for f in (e.filename, e.filename2) if f)
        op = "write" if temp or e.errno in _WRITE_ERRNOS else "open"
    return op


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the operation, the user's path(s) and the system's reason."""
    why = _WHY.get(e.errno) or (e.strerror or first_line(e)).lower()
    if e.filename is None:
        return f"{why}: {first_line(e)}" if e.strerror else first_line(e)
    where = user_path(e.filename)
    if e.filename2 is not None and user_path(e.filename2) != where:
        where += f" -> {user_path(e.filename2)}"
    return f"{where}: cannot {_operation(e)}: {why}"


def _is(e: BaseException, name: str) -> bool:
    """`e` is a click exception of class `name` (typer may vendor click: matched by name)."""
    return any(c.__name__ == name for c in type(e).__mro__)


def _usage_line(e) -> str:
    names, ctx = [], e.ctx
    while ctx is not None and ctx.parent is not None:   # sub-command path, without argv[0]
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    sub = " ".join(names)
    where = f"raviso {sub}" if sub else "raviso"
    msg = " ".join(e.format_message().split())
    return f"raviso: error: {sub + ': ' if sub else ''}{msg} (see {where} --help)"


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"


def _say(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code


def run_app(app: typer.Typer, debug: dict | None = None) -> int:
    """`app` without click's standalone handling: usage errors, `RavisoError`, interrupts and
    bugs each become one line on stderr; returns the exit code."""
    INTERRUPTED["signal"] = None
    try:
        with command_paths(sys.argv[1:]):
            rc = app(standalone_mode=False)   # we print usage errors ourselves, as one line
    except BaseException as e:
        return _ended(e, debug)
    if INTERRUPTED["signal"] is not None:
        return _say("raviso: interrupted", 130)
    return rc if isinstance(rc, int) else 0


def _ended(e: BaseException, debug: dict | None) -> int:
    if isinstance(e, SystemExit):
        raise e
    if INTERRUPTED["signal"] is not None or isinstance(e, (KeyboardInterrupt, typer.Abort)):
        return _say("raviso: interrupted", 130)      # whatever the interrupted code raised
    if isinstance(e, RavisoError):
        return _say(f"raviso: error: {user_path(str(e))}", 1)
    if not isinstance(e, Exception):
        raise e
    if _is(e, "NoArgsIsHelpError"):
        print(e.format_message())
        return 0
    if _is(e, "UsageError"):
        return _say(_usage_line(e), 2)
    if (debug or {}).get("on") or os.environ.get("RAVISO_DEBUG"):   # a bug, unforeseen input
        raise e
    if isinstance(e, OSError):    # the machine or the network said no (a read-only folder)
        return _say(f"raviso: error: {os_error_line(e)} (`raviso --debug ...` shows the "
                    "traceback)", 1)
    return _say(f"raviso: error: unexpected {type(e).__name__}: {first_line(e)} (a bug or an "
                "unforeseen input; `raviso --debug ...` shows the traceback)", 1)
