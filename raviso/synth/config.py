"""`SynthConfig`: the options of `raviso synth` (see `raviso.synth.generate.generate`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import StageConfig, option, overwrite_option, seed_option


@dataclass(frozen=True)
class SynthConfig(StageConfig):
    preset: str = option("tiny", "tiny (seconds, tests) | small (the demo) | course (the course's "
                         "full shapes, ~24 GB).")     # from Python also a `generate.Preset`
    seed: int = seed_option("Random seed; same seed, same files.")
    fmt: str = option("hdf5", "hdf5 (*.hdf5) | tsv (*.tsv.gz).", flag="--format")
    overwrite: bool = overwrite_option("Replace OUT if it exists.")
    workers: int | None = option(None, "Generator threads (default: min(4, CPUs)).")
    family: str = option("share", "share (isoform shares a softmax of the hidden state) | switch "
                         "(isoform usage switched by regulator genes; docs/generators.md).")
    gene_from: str | None = option(None, "independent (genes measured with their own noise) | "
                                   "isoforms (gene = sum of its isoforms' TPM); default: the "
                                   "family's (share: independent, switch: isoforms).")
    structure: str | None = option(None, "share family: structure a small labelled set cannot "
                                   "estimate, as comma-separated key=value, e.g. "
                                   "n_programs=64,spectrum=1 (every key: docs/generators.md); "
                                   "default: today's world.")   # from Python also a Structure
    heldout: bool = option(True, cli=False)   # False: no held-out-donor expectation file
