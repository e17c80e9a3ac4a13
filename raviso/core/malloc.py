"""Transparent huge pages for glibc malloc (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``) for raviso
and the Ray processes it starts: isoform-width batches otherwise spend their time in page faults.
``RAVISO_NO_HUGEPAGES=1`` turns it off. Why and how much: docs/internals.md."""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def _wanted() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("RAVISO_NO_HUGEPAGES") != "1"


def _with_tunable(current: str | None) -> str:
    if not current:
        return TUNABLE
    if "glibc.malloc.hugetlb" in current:
        return current
    return f"{current}:{TUNABLE}"


def for_children() -> None:
    """Make processes started from now on (a local Ray's raylet and workers) use huge pages."""
    if _wanted():
        os.environ["GLIBC_TUNABLES"] = _with_tunable(os.environ.get("GLIBC_TUNABLES"))


def reexec(argv: list[str] | None = None) -> None:
    """Restart this process once with the tunable set (only when running as the ``raviso``
    script, never inside another program such as a test runner)."""
    argv = list(sys.argv if argv is None else argv)
    if not _wanted() or "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    if not argv or os.path.basename(argv[0]) != "raviso" or not os.path.isfile(argv[0]):
        return
    import signal

    env = dict(os.environ, GLIBC_TUNABLES=_with_tunable(os.environ.get("GLIBC_TUNABLES")))
    stop = {signal.SIGINT, signal.SIGTERM}
    # held (the mask survives exec) until the new process can say "interrupted" (cli.py unblocks)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        os.execve(sys.executable, [sys.executable, *argv], env)
    except OSError:       # could not restart: run on without huge pages
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)
        return
