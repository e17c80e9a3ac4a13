"""Run the typer app and turn every way it can end into one line and an exit code.
`debug`: a dict whose "on" the app sets from `--debug` while it runs."""

import os
import sys

import typer

from raviso.core.errors import RavisoError


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


def run_app(app: typer.Typer, debug: dict | None = None) -> int:
    """`app` without click's standalone handling: usage errors, `RavisoError`, interrupts and
    bugs each become one line on stderr; returns the exit code."""
    try:
        rc = app(standalone_mode=False)   # we print usage errors ourselves, as one line
    except typer.Abort:
        print("raviso: interrupted", file=sys.stderr)
        return 130
    except RavisoError as e:
        print(f"raviso: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("raviso: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _is(e, "NoArgsIsHelpError"):
            print(e.format_message())
            return 0
        if _is(e, "UsageError"):
            print(_usage_line(e), file=sys.stderr)
            return 2
        if (debug or {}).get("on") or os.environ.get("RAVISO_DEBUG"):   # a bug, unforeseen input
            raise
        if isinstance(e, OSError):    # the machine or the network said no (an unreachable store)
            print(f"raviso: error: {first_line(e)} (`raviso --debug ...` shows the traceback)",
                  file=sys.stderr)
            return 1
        print(f"raviso: error: unexpected {type(e).__name__}: {first_line(e)} (a bug or an "
              "unforeseen input; `raviso --debug ...` shows the traceback)", file=sys.stderr)
        return 1
    return rc if isinstance(rc, int) else 0
