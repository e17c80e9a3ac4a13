"""Options shared by commands that have no config field for them (defined once)."""

import sys

import typer

from raviso.core.config import address_option, overwrite_option, quiet_option


def _from_field(f, flag: str):
    return typer.Option(f.default, flag, help=f.metadata["help"])


ADDRESS = _from_field(address_option(), "--address")
OVERWRITE = _from_field(overwrite_option(), "--overwrite")
QUIET = _from_field(quiet_option(), "--quiet")


def echo_err(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr)
