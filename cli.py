"""`raviso` command line: a thin typer shell over the `raviso.*` stage modules.

Every command imports its stage lazily (so `raviso --help` is instant) and lets `RavisoError`
propagate; `main` prints it as one line and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predict isoform expression from gene expression: pretrained VAE + "
                       "regressors, distributed on Ray.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures (last line JSON).")
app.add_typer(bench_app, name="bench")

ADDRESS = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray).")


# ---- synth (issue 2) ----------------------------------------------------------------------------

# ---- convert (issue 2) --------------------------------------------------------------------------

# ---- import (issue 6) ---------------------------------------------------------------------------

# ---- pretrain / encode (issue 3) ----------------------------------------------------------------

# ---- cv / report / predict / fit / demo (issue 4) -----------------------------------------------

# ---- submit (issue 5) ---------------------------------------------------------------------------

# ---- bench --------------------------------------------------------------------------------------


def main() -> None:
    from raviso.errors import RavisoError

    try:
        app()
    except RavisoError as e:
        print(f"raviso: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("raviso: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
