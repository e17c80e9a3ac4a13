"""What several command modules share: a stderr progress line."""

import sys


def echo_err(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr)
