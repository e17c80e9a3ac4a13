"""Generator options that put structure in the compendium that a small labelled set cannot
estimate (issue 32): the world family on which "does pretraining pay?" can have either answer.

On the default world genes come from 8 equally strong programs and a 6-dimensional tissue
embedding, which a PCA of a few dozen labelled samples largely recovers, so a compendium has little
to add. Each option below moves one step away from that (docs/generators.md):

- ``n_programs`` / ``spectrum``: many programs whose sd decays as (k + 1) ** -spectrum, so most
  of them are weak in the genes;
- ``weak_usage``: isoform usage also driven directly by the ``n_weak`` WEAKEST programs (logit sd
  ``weak_usage`` per unit-variance program), a signal a small labelled set's PCA misses;
- ``compendium_only``: that many tissues appear in the compendium (ARCHS4) but never in the
  labelled set;
- ``platform_offset``: scale of the compendium's per-gene log2 shift against the labelled set
  (1 = today's sd 0.6);
- ``gene_extra``: genes quantified separately from their isoforms: the measured gene also counts
  what no annotated isoform holds (pre-mRNA, unannotated isoforms), a per-tissue log2 factor of sd
  ``gene_extra`` plus a per-sample one of half that, so a gene is not a scaled sum of its isoforms.

`Structure()` is today's world, bit for bit: the options draw from their own random stream and
touch nothing when off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..core.errors import RavisoError

STREAM = 5          # build_world's own random stream for the options' parameters


@dataclass(frozen=True)
class Structure:
    n_programs: int = 8
    spectrum: float = 0.0
    weak_usage: float = 0.0
    n_weak: int = 4
    compendium_only: int = 0
    platform_offset: float = 1.0
    gene_extra: float = 0.0

    def __post_init__(self):
        ok = (self.n_programs >= 1 and self.spectrum >= 0 and self.weak_usage >= 0
              and 1 <= self.n_weak <= self.n_programs and self.compendium_only >= 0
              and self.platform_offset >= 0 and self.gene_extra >= 0)
        if not ok:
            raise RavisoError(f"bad generator structure {asdict(self)}: n_programs >= 1, "
                              "1 <= n_weak <= n_programs, the rest >= 0")

    @property
    def is_default(self) -> bool:
        return self == Structure()

    def changed(self) -> dict:
        """The options that differ from today's world (for synth.json)."""
        base = Structure()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(base, f.name)}

    def program_sd(self) -> np.ndarray:
        return (np.arange(self.n_programs) + 1.0) ** -self.spectrum


def parse_structure(text: str | None) -> Structure:
    """'n_programs=64,spectrum=1,weak_usage=1.5' -> Structure (empty: the default)."""
    if not text:
        return Structure()
    kinds = {f.name: f.type for f in fields(Structure)}
    values = {}
    for item in str(text).split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in kinds or not value.strip():
            raise RavisoError(f"bad structure option {item!r} (options: {', '.join(kinds)})")
        try:
            values[key] = int(value) if kinds[key] in ("int", int) else float(value)
        except ValueError:
            raise RavisoError(f"bad structure option {item!r}: not a number") from None
    return Structure(**values)


def draw_structure(seed: int, s: Structure, n_isoforms: int, n_genes: int,
                   n_tissues: int) -> dict:
    """The options' parameters, from their own stream (so the default world's draws are
    untouched): weakest programs and their isoform effect, compendium-only tissues, gene extra."""
    rng = np.random.default_rng([seed, STREAM])
    sd = s.program_sd()
    weak = np.argsort(sd, kind="stable")[:s.n_weak] if s.weak_usage > 0 else None
    iso_weak = (rng.normal(0, s.weak_usage, (s.n_weak, n_isoforms)) if weak is not None
                else None)
    excluded = (np.sort(rng.choice(n_tissues, s.compendium_only, replace=False))
                if s.compendium_only else None)
    extra = rng.normal(0, s.gene_extra, (n_tissues, n_genes)) if s.gene_extra > 0 else None
    return {"program_sd": sd, "weak_idx": weak, "iso_weak": iso_weak,
            "compendium_only": excluded, "gene_extra_tissue": extra}


def drop_tissues(rng: np.random.Generator, counts: np.ndarray,
                 excluded: np.ndarray | None) -> np.ndarray:
    """Labelled-set samples per tissue with the compendium-only tissues' samples moved to the
    others in proportion to their size."""
    if excluded is None or not len(excluded):
        return counts
    counts = counts.copy()
    moved = int(counts[excluded].sum())
    counts[excluded] = 0
    if counts.sum() == 0:
        raise RavisoError("compendium_only leaves the labelled set no tissue")
    counts += rng.multinomial(moved, counts / counts.sum())
    return counts
