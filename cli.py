"""`raviso` command line: the app's assembly. The commands live in `raviso.commands` (one module
per group), their options in the stages' config dataclasses; this module names the commands,
adds the bench sub-app and runs the app (`raviso.commands.errors`: one line per error).
"""

from __future__ import annotations

import sys

import typer

from raviso.commands import bench, cluster, data, evaluate, serve, train

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
    import signal

    from raviso.commands.errors import run_app
    from raviso.core import malloc

    malloc.reexec()     # huge pages for this process's big buffers (raviso.core.malloc)
    # SIGTERM (kill, job schedulers) unwinds like Ctrl-C, so atomic writers remove their temp dirs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    sys.exit(run_app(app, debug=DEBUG))


if __name__ == "__main__":
    main()
