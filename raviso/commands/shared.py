"""What several command modules share: the --address option of the bench commands (from the
config helper, so its help is written once) and a stderr progress line."""

import sys

import typer

from raviso.core.config import address_option

ADDRESS = typer.Option(None, "--address", help=address_option().metadata["help"])


def echo_err(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr)
