"""Transcript -> gene maps from RSEM files, a two-column TSV or a GTF; lookups try the exact id, then
the id without its version on both sides, and report what still does not map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import RavisoError

_VERSION = re.compile(r"\.\d+(?=(_PAR_Y)?$)")
_GTF_TX = re.compile(r'transcript_id "([^"]+)"')
_GTF_GENE = re.compile(r'gene_id "([^"]+)"')


def strip_version(name: str) -> str:
    """``ENST00000456328.2`` -> ``ENST00000456328`` (GENCODE's ``_PAR_Y`` suffix is kept)."""
    return _VERSION.sub("", str(name))


@dataclass
class MapReport:
    """What a lookup did: for the manifest and the warning printed on stderr."""

    total: int
    mapped: int
    by_stripped_version: int            # mapped only after dropping version suffixes
    unmapped: list[str] = field(default_factory=list)

    def to_dict(self, examples: int = 20) -> dict:
        return {"transcripts": self.total, "mapped": self.mapped,
                "mapped_by_stripped_version": self.by_stripped_version,
                "unmapped": len(self.unmapped), "unmapped_examples": self.unmapped[:examples]}


class TxMap:
    """transcript id -> gene id, with a version-stripped index for the second lookup."""

    def __init__(self, source: str):
        self.source = source
        self.exact: dict[str, str] = {}
        self.conflicts: list[str] = []

    def add(self, tx: str, gene: str) -> None:
        old = self.exact.setdefault(tx, gene)
        if old != gene:
            self.conflicts.append(tx)

    def finish(self, path=None) -> "TxMap":
        if self.conflicts:
            raise RavisoError(f"{len(self.conflicts)} transcripts map to more than one gene "
                              f"(e.g. {', '.join(self.conflicts[:5])})", path or self.source)
        if not self.exact:
            raise RavisoError("transcript -> gene map is empty", path or self.source)
        self.stripped: dict[str, str | None] = {}
        for tx, gene in self.exact.items():
            key = strip_version(tx)
            old = self.stripped.setdefault(key, gene)
            if old is not None and old != gene:
                self.stripped[key] = None   # two versions, two genes: ambiguous without version
        return self

    def __len__(self) -> int:
        return len(self.exact)

    def lookup(self, transcripts) -> tuple[np.ndarray, MapReport]:
        """Gene per transcript (object array, None where unmapped) and the report."""
        out = np.empty(len(transcripts), dtype=object)
        unmapped, by_strip = [], 0
        for k, tx in enumerate(transcripts):
            gene = self.exact.get(tx)
            if gene is None:
                gene = self.stripped.get(strip_version(tx))
                if gene is None:
                    unmapped.append(str(tx))
                else:
                    by_strip += 1
            out[k] = gene
        report = MapReport(total=len(out), mapped=len(out) - len(unmapped),
                           by_stripped_version=by_strip, unmapped=unmapped)
        return out, report


def from_pairs(transcripts, genes, source: str) -> TxMap:
    m = TxMap(source)
    for tx, gene in zip(transcripts, genes):
        if gene not in ("", "-", "NA", None):
            m.add(str(tx), str(gene))
    return m.finish()


def from_tsv(path) -> TxMap:
    """A tx2gene table: transcript in the first column, gene in the second (tab- or comma-
    separated; further columns ignored). A header line is harmless: it maps a name no
    quantification uses."""
    from .quant import open_text

    path = Path(path)
    m = TxMap(str(path))
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line or line.startswith("#"):
                    continue
                parts = line.split("\t") if "\t" in line else line.split(",")
                if len(parts) < 2:
                    raise RavisoError(f"line {lineno}: expected transcript<TAB>gene, got "
                                      f"{line[:80]!r}", path)
                m.add(parts[0].strip().strip('"'), parts[1].strip().strip('"'))
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise RavisoError(f"cannot read: {e}", path) from None
    return m.finish(path)


def from_gtf(path) -> TxMap:
    """transcript_id -> gene_id from a GTF (plain or gzipped), streamed line by line."""
    from .quant import open_text

    path = Path(path)
    m = TxMap(str(path))
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                if line.startswith("#"):
                    continue
                fields = line.split("\t", 8)
                if len(fields) != 9:
                    if line.strip():
                        raise RavisoError(f"line {lineno}: not a GTF record (expected 9 "
                                          "tab-separated fields)", path)
                    continue
                attrs = fields[8]
                tx = _GTF_TX.search(attrs)
                if tx is None:
                    continue       # gene records have no transcript_id
                gene = _GTF_GENE.search(attrs)
                if gene is None:
                    raise RavisoError(f"line {lineno}: transcript {tx.group(1)} has no gene_id",
                                      path)
                m.add(tx.group(1), gene.group(1))
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise RavisoError(f"cannot read: {e}", path) from None
    return m.finish(path)


def load(tx2gene=None, gtf=None) -> TxMap | None:
    """The user's explicit map (--tx2gene or --gtf), or None to use the files' own gene columns."""
    if tx2gene is not None and gtf is not None:
        raise RavisoError("give --tx2gene or --gtf, not both")
    if tx2gene is not None:
        return from_tsv(tx2gene)
    if gtf is not None:
        return from_gtf(gtf)
    return None
