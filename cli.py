"""`raviso` command line: the app's assembly. The commands live in `raviso.commands` (one module
per group), their options in the stages' config dataclasses; this module names the commands,
adds the bench sub-app and runs the app (`raviso.commands.errors`: one line per error).
"""

from __future__ import annotations

import os
import signal
import sys


def _early_interrupt(signum, frame):
    """Ctrl-C / SIGTERM while Python is still importing: no traceback, the same line and code as
    later (`raviso.commands.errors` takes over once the command runs). It exits at once: an
    exception raised here can land inside a class body being built (dataclass `__set_name__`), which
    Python wraps in a RuntimeError with a traceback. Nothing is written before the command runs."""
    print("raviso: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


SCRIPT = bool(sys.argv) and sys.argv[0].endswith("raviso")   # not a program importing cli
if SCRIPT:
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _early_interrupt)
    # a signal held across raviso.core.malloc's re-exec arrives now, to the handler above
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

import typer  # noqa: E402

from raviso.commands import bench, cluster, data, evaluate, serve, train  # noqa: E402

# rich_markup_mode=None: help texts are printed as written. With rich markup, "[unit]" or
# "[auto: when small]" (how defaults are written here) are taken for markup tags and vanish.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Predict isoform expression from gene expression: pretrained VAE + "
                       "regressors, distributed on Ray.")

# `raviso --debug CMD`: an unexpected exception shows its traceback instead of one line.
DEBUG = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an "
                                        "unexpected error (for a bug report).")):
    DEBUG["on"] = debug


COMMANDS = [  # (name, group) in the order `raviso --help` lists them
    ("synth", data), ("convert", data), ("import", data), ("pretrain", train), ("encode", train),
    ("cv", evaluate), ("tune", evaluate), ("report", evaluate), ("study", evaluate), ("fit", serve),
    ("predict", serve), ("export", data), ("demo", serve), ("submit", cluster),
    ("aws-setup", cluster), ("copy", data)]
app.add_typer(bench.app, name="bench")
for name, group in COMMANDS:
    app.command(name, **getattr(group, "SETTINGS", {}).get(name, {}))(group.COMMANDS[name])


def main() -> None:
    from raviso.commands.errors import install_interrupts, run_app
    from raviso.core import malloc

    malloc.reexec()     # huge pages for this process's big buffers (raviso.core.malloc)
    # SIGINT and SIGTERM (kill, job schedulers) unwind like Ctrl-C, so atomic writers remove their
    # temp dirs, and end as "raviso: interrupted", exit 130, whatever was cut short
    before = install_interrupts()
    try:
        code = run_app(app, debug=DEBUG)
    finally:
        for sig, handler in before.items():      # a program that called main() gets its own back;
            signal.signal(sig, signal.SIG_IGN if SCRIPT else handler)   # the script is done
    sys.exit(code)


if __name__ == "__main__":
    main()
