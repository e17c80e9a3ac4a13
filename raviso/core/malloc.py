"""Transparent huge pages for glibc malloc: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``.

Why: every training step at isoform width allocates buffers of tens of MB (a (64, 156,958) float32
batch is 40 MB; glibc serves anything over 32 MB by a fresh mmap), and on this kind of VM the
kernel's first touch of each fresh 4 KiB page dominates: a float16->float32 target batch took
95-147 ms with fresh pages and 11.5 ms with ``hugetlb=1`` (glibc madvises its mappings for 2 MiB
transparent huge pages: 512x fewer faults); whole CV trials (bench cv shapes) ran 1.6-2x faster
(bench/README.md, scale section). The kernel's THP mode must be ``madvise`` or ``always``
(``never`` makes this a no-op); glibc < 2.35 ignores the tunable.

glibc reads tunables once at process start, so the setting has to be in the environment BEFORE a
process starts: `for_children` puts it in ``os.environ`` so the local Ray started next (raylet,
every worker and Tune trial) inherits it, and `reexec` restarts the ``raviso`` command itself once
with it. ``RAVISO_NO_HUGEPAGES=1`` turns both off.
"""

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
    env = dict(os.environ, GLIBC_TUNABLES=_with_tunable(os.environ.get("GLIBC_TUNABLES")))
    try:
        os.execve(sys.executable, [sys.executable, *argv], env)
    except OSError:       # could not restart: run on without huge pages
        return
