"""What an artefact held when raviso wrote it, so that a damaged one is named file by file.

A MODEL or RUN records, in its marker JSON, every file's size and SHA-256 (`inventory`); its reader
checks them (`verify`) before trusting any, so a file deleted, cut short or overwritten is one line
naming it by its path in the artefact and the fix, instead of whatever its parser says (a safetensors
header error, "missing regressor.json", a raw errno). Stores record sizes only (`sizes`: hashing GBs
on every read would cost more than the read) and name a damaged part on the first failed read.
Artefacts written before the inventory are read as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import RavisoError


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path, skip=()):
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for name in sorted(names):
            p = Path(d) / name
            rel = p.relative_to(root).as_posix()
            if not name.startswith(".") and rel not in skip and not p.is_symlink():
                yield rel, p


def inventory(root, skip=()) -> dict:
    """{relative path: [bytes, sha256]} of every file under `root` but `skip` (its marker)."""
    return {rel: [p.stat().st_size, sha256(p)] for rel, p in _files(Path(root), skip)}


def sizes(root, skip=()) -> dict:
    """{relative path: bytes} of every file under `root` but `skip`."""
    return {rel: p.stat().st_size for rel, p in _files(Path(root), skip)}


def problem(root, rel: str, expected) -> str | None:
    """What is wrong with file `rel` of `root` against its record (None: as written).
    `expected`: [bytes, sha256] or bytes."""
    size, digest = (expected, None) if isinstance(expected, int) else expected
    p = Path(root) / rel
    if not p.is_file():
        return "is missing"
    actual = p.stat().st_size
    if actual < size:
        return f"is cut short ({actual:,} of {size:,} bytes)"
    if actual != size:
        return f"has changed ({actual:,} bytes, {size:,} when written)"
    if digest is not None and sha256(p) != digest:
        return "is damaged (its checksum differs from the one recorded when it was written)"
    return None


def damaged(root, rel: str, what: str, fix: str, why: str) -> RavisoError:
    return RavisoError(f"{rel} {why}: the {what} is damaged; {fix}", root)


def verify(root, files: dict | None, what: str, fix: str, only=None, skip=()) -> None:
    """Raise one `RavisoError` naming the first file of `files` (an `inventory` or `sizes`)
    that is not as written; `only`: check just these paths; `skip`: not these (optional parts,
    checked when used)."""
    for rel, expected in (files or {}).items():
        if (only is not None and rel not in only) or rel in skip:
            continue
        why = problem(root, rel, expected)
        if why:
            raise damaged(root, rel, what, fix, why)
