"""`raviso synth`: synthetic data in the course's exact file formats, with known noise-free truth.

Why: every later stage (convert, pretrain, CV, demo, benchmarks) needs data with the real files'
layout and quirks, at three scales, and a known best-achievable error. The biology lives in
`raviso.synth.world`, the identifiers in `raviso.synth.names`; this module holds the presets, the
writers and the chunked, threaded driver.

Files written into OUT (atomically: a temporary sibling renamed at the end):
- ``archs4_gene_expression_norm_transposed.<ext>``   ARCHS4 samples x genes (alphabetical genes)
- ``gtex_gene_expression_norm_transposed.<ext>``     GTEx samples x genes (another gene order)
- ``gtex_isoform_expression_norm_transposed.<ext>``  GTEx samples x isoforms (ENST, unordered)
- ``truth_isoform_expression_norm_transposed.<ext>`` the noise-free isoform log2(TPM+1), same layout
- ``truth_heldout_isoform_expression_norm_transposed.<ext>`` the held-out-donor expectation of the
  observed isoforms (`raviso.synth.heldout`): the best prediction for a sample whose donor is unseen
- ``gtex_gene_isoform_annoation.tsv.gz`` (sic) and ``gtex_annot.tsv.gz``
- ``synth.json``: preset, seed, shapes and the statistics measured while writing (zero fractions,
  gene means, noise floor = MSE(observed, truth), held-out-donor floor = MSE(observed,
  truth_heldout), mean-baseline MSE).
``<ext>`` is ``hdf5`` (``expressions`` float32 unchunked, ``row_names``/``col_names``/``tissue``
vlen UTF-8) or ``tsv.gz`` (header ``sample_id`` + features, one row per sample).

Generation is chunked by rows and never holds a whole matrix: the course preset (~24 GB of float32)
runs in well under 4 GB of memory. Each chunk has its own random stream, so the output is identical
for a given seed whatever the number of worker threads.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import switch, world as model
from .heldout import HeldoutDonor
from ..core.atomic import atomic_dir, check_writable_target
from ..core.errors import RavisoError
from .config import SynthConfig
from .names import TISSUES

STEMS = {
    "archs4": "archs4_gene_expression_norm_transposed",
    "gtex_gene": "gtex_gene_expression_norm_transposed",
    "gtex_isoform": "gtex_isoform_expression_norm_transposed",
    "truth": "truth_isoform_expression_norm_transposed",
    "truth_heldout": "truth_heldout_isoform_expression_norm_transposed",
}
ANNOTATION = "gtex_gene_isoform_annoation.tsv.gz"  # the course's spelling
TISSUE_TABLE = "gtex_annot.tsv.gz"
INFO = "synth.json"
FORMATS = {"hdf5": ".hdf5", "tsv": ".tsv.gz"}
CHUNK_ENTRIES = 4 << 20  # values per generated block (16 MiB of float32 per array)
ISOFORMS_PER_GENE = 156_958 / 18_965  # the course's ratio, 8.28
FAMILIES = {"share": "independent", "switch": "isoforms"}   # family -> its default gene_from


@dataclass(frozen=True)
class Preset:
    """The shapes of a synthetic data set."""

    name: str
    n_archs4: int
    n_gtex: int
    n_genes: int
    n_isoforms: int

    def __post_init__(self):
        if min(self.n_archs4, self.n_gtex, self.n_genes) < 1 or self.n_isoforms < self.n_genes:
            raise RavisoError(f"invalid synthetic shapes {asdict(self)} (need at least one "
                              "sample and gene, and one isoform per gene)")


def _preset(name: str, n_archs4: int, n_gtex: int, n_genes: int, n_isoforms=None) -> Preset:
    return Preset(name, n_archs4, n_gtex, n_genes,
                  n_isoforms or int(round(n_genes * ISOFORMS_PER_GENE)))


PRESETS: dict[str, Preset] = {
    "tiny": _preset("tiny", 600, 300, 200),            # seconds; tests
    "small": _preset("small", 8_000, 1_500, 1_750),    # the demo's whole pipeline in minutes
    "course": _preset("course", 167_884, 17_356, 18_965, 156_958),  # the course's exact shapes
}


def get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise RavisoError(f"unknown preset {preset!r} (expected one of {', '.join(PRESETS)})")
    return PRESETS[preset]


def plan(preset: str | Preset, **options) -> dict[str, tuple[int, int]]:
    """File name -> (rows, columns) of each matrix `generate` would write; nothing is generated.
    `options`: SynthConfig's ``fmt`` and ``heldout``."""
    cfg = SynthConfig(preset=preset, **options)
    p, heldout = get_preset(cfg.preset), cfg.heldout
    ext = _ext(cfg.fmt)
    return {STEMS["archs4"] + ext: (p.n_archs4, p.n_genes),
            STEMS["gtex_gene"] + ext: (p.n_gtex, p.n_genes),
            STEMS["gtex_isoform"] + ext: (p.n_gtex, p.n_isoforms),
            STEMS["truth"] + ext: (p.n_gtex, p.n_isoforms),
            **({STEMS["truth_heldout"] + ext: (p.n_gtex, p.n_isoforms)} if heldout else {})}


def _ext(fmt: str) -> str:
    if fmt not in FORMATS:
        raise RavisoError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return FORMATS[fmt]


# -- writers -------------------------------------------------------------------------------------
# (raviso.io.course has one-shot course writers; these stay open so one generated GTEx block can go
# to three files in the same pass.)

class _H5Matrix:
    """A course HDF5 file written in row slabs: ``expressions`` float32, contiguous and
    uncompressed (as the course's files), names and tissue as vlen UTF-8."""

    def __init__(self, path: Path, rows: list[str], cols: list[str], tissue: list[str] | None):
        import h5py

        vlen = h5py.string_dtype("utf-8")
        self.f = h5py.File(path, "w")
        self.x = self.f.create_dataset("expressions", shape=(len(rows), len(cols)),
                                       dtype=np.float32)
        self.f.create_dataset("row_names", data=rows, dtype=vlen)
        self.f.create_dataset("col_names", data=cols, dtype=vlen)
        if tissue is not None:
            self.f.create_dataset("tissue", data=tissue, dtype=vlen)

    def write(self, r0: int, block: np.ndarray) -> None:
        self.x[r0:r0 + len(block)] = block

    def close(self) -> None:
        self.f.close()


class _TsvMatrix:
    """A course TSV(.gz): header ``sample_id`` + features, one row per sample. Values are printed
    by Arrow's CSV writer (shortest float32 round-trip text, ~50x faster than Python repr)."""

    def __init__(self, path: Path, rows: list[str], cols: list[str], tissue=None):
        self.f = gzip.open(path, "wb", compresslevel=3)
        self.rows = rows
        self.cols = ["sample_id", *cols]
        self.f.write(("\t".join(self.cols) + "\n").encode())

    def write(self, r0: int, block: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        arrays = [pa.array(self.rows[r0:r0 + len(block)])]
        arrays += [pa.array(block[:, j]) for j in range(block.shape[1])]
        buf = io.BytesIO()
        pacsv.write_csv(pa.Table.from_arrays(arrays, names=self.cols), buf,
                        write_options=pacsv.WriteOptions(include_header=False, delimiter="\t",
                                                         quoting_style="none"))
        self.f.write(buf.getvalue())

    def close(self) -> None:
        self.f.close()


_WRITERS = {"hdf5": _H5Matrix, "tsv": _TsvMatrix}


def _write_tables(out: Path, world: model.World) -> None:
    """The isoform annotation (sorted by gene, then isoform id, as the real file) and the
    tissue table."""
    rows = sorted(zip((world.gene_ids[g] for g in world.iso_gene), world.isoform_ids,
                      (world.gene_symbols[g] for g in world.iso_gene)))
    with gzip.open(out / ANNOTATION, "wt") as f:
        f.write("isoform_id\tgene_id\tgene_name\n")
        f.writelines(f"{iso}\t{gid}\t{sym}\n" for gid, iso, sym in rows)
    with gzip.open(out / TISSUE_TABLE, "wt") as f:
        f.write("sample_id\ttissue\n")
        f.writelines(f"{s}\t{TISSUES[t]}\n"
                     for s, t in zip(world.gtex_ids, world.gtex_tissue.tolist()))


# -- statistics gathered while writing -----------------------------------------------------------

class _Moments:
    """Running mean, zero fraction and per-column variance of a matrix seen in row blocks."""

    def __init__(self, n_cols: int):
        self.n = 0
        self.total = 0.0
        self.zeros = 0
        self.col_sum = np.zeros(n_cols)
        self.col_sq = np.zeros(n_cols)

    def add(self, x: np.ndarray) -> None:
        self.n += len(x)
        s = x.sum(axis=0, dtype=np.float64)
        self.col_sum += s
        self.col_sq += np.einsum("ij,ij->j", x, x, dtype=np.float64)
        self.total += s.sum()
        self.zeros += int(np.count_nonzero(x == 0))

    def summary(self) -> dict:
        mean = self.col_sum / self.n
        var = np.maximum(self.col_sq / self.n - mean ** 2, 0)
        return {"mean": self.total / (self.n * len(mean)),
                "zero_fraction": self.zeros / (self.n * len(mean)),
                "mean_baseline_mse": float(var.mean())}


# -- the driver ----------------------------------------------------------------------------------

def _blocks(fn: Callable, n_rows: int, n_cols: int, seed: int, stream: int,
            workers: int) -> Iterator[tuple[int, object]]:
    """(first row, fn(world rows, rng)) for consecutive row blocks, computed by `workers` threads
    (numpy releases the GIL) and yielded in order with a bounded look-ahead."""
    step = max(1, CHUNK_ENTRIES // n_cols)
    starts = list(range(0, n_rows, step))

    def one(i: int):
        r0 = starts[i]
        return r0, fn(slice(r0, min(r0 + step, n_rows)), np.random.default_rng([seed, stream, i]))

    if workers <= 1:
        yield from (one(i) for i in range(len(starts)))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = [pool.submit(one, i) for i in range(min(len(starts), 2 * workers))]
        nxt = len(pending)
        while pending:
            yield pending.pop(0).result()
            if nxt < len(starts):
                pending.append(pool.submit(one, nxt))
                nxt += 1


def generate(out, cfg: SynthConfig | None = None, *, log: Callable[[str], None] | None = None,
             **options) -> dict:
    """Write a synthetic data set into directory `out` (see the module docstring); return the
    statistics that are also saved as ``synth.json``. `options`: SynthConfig's fields as
    keywords. Deterministic for a given (preset, seed); `heldout=False` skips the held-out-donor
    expectation file (~2x the GTEx generation time and one more isoform-sized file), leaving
    every other file byte-identical. `family`: ``share``
    (`raviso.synth.world`) or ``switch`` (`raviso.synth.switch`); `gene_from`: ``independent``
    (genes measured with their own noise; the share family's default) or ``isoforms`` (gene =
    the sum of its measured isoforms' TPM; the switch family's default); `structure`: a
    `raviso.synth.structure.Structure` or its text form (share family only; docs/generators.md)."""
    cfg = SynthConfig.build(cfg, **options)
    seed, fmt, heldout, family = cfg.seed, cfg.fmt, cfg.heldout, cfg.family
    p = get_preset(cfg.preset)
    gene_from = _check_family(family, cfg.gene_from)
    structure = _check_structure(family, cfg.structure)
    ext = _ext(fmt)
    if seed < 0:
        raise RavisoError(f"seed must be >= 0 (got {seed})")
    out = check_writable_target(Path(out), cfg.overwrite)
    workers = cfg.workers or min(4, os.cpu_count() or 1)
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    shapes = (seed, p.n_archs4, p.n_gtex, p.n_genes, p.n_isoforms)
    sw = switch.build_switch_world(*shapes) if family == "switch" else None
    world = sw.base if sw is not None else model.build_world(*shapes, structure=structure)
    with atomic_dir(out, cfg.overwrite) as tmp:
        _write_tables(tmp, world)
        log(f"ARCHS4 {p.n_archs4:,} x {p.n_genes:,}")
        archs4 = _write_archs4(tmp, world, p, fmt, seed, workers)
        log(f"GTEx {p.n_gtex:,} x {p.n_genes:,} genes, {p.n_isoforms:,} isoforms (+ truth"
            + (", held-out-donor expectation)" if heldout else ")"))
        gene, iso_stats = _write_gtex(tmp, world, p, fmt, seed, workers,
                                      _gtex_source(world, sw, heldout, gene_from), heldout)
        counts = world.iso_counts
        info = {
            "preset": asdict(p), "seed": seed, "format": fmt,
            "files": plan(p, fmt=fmt, heldout=heldout),
            "family": family, "gene_from": gene_from,
            **({"structure": structure.changed()} if not structure.is_default else {}),
            # the held-out-donor expectation ignores the measured genes: a bound (floor) only when
            # they are measured on their own; a gene summed from its isoforms carries their noise
            "heldout_expectation": "floor" if gene_from == "independent" else "reference",
            "archs4_gene": archs4.summary(), "gtex_gene": gene.summary(), "gtex_isoform": iso_stats,
            "isoforms_per_gene": {"mean": float(counts.mean()), "min": int(counts.min()),
                                  "median": float(np.median(counts)), "max": int(counts.max())},
            "tissues": {"n": int(len(np.unique(world.gtex_tissue))),
                        "sizes": np.bincount(world.gtex_tissue, minlength=len(TISSUES)).tolist()},
            "donors": {"n": int(len(np.unique(world.gtex_donor))),
                       "max_samples": int(np.bincount(world.gtex_donor).max())},
            "seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n")
    log(f"wrote {out} in {info['seconds']:.1f} s")
    return info


def _check_structure(family: str, structure):
    from .structure import Structure, parse_structure

    structure = structure if isinstance(structure, Structure) else parse_structure(structure)
    if family != "share" and not structure.is_default:
        raise RavisoError("generator structure options apply to the share family only")
    return structure


def _check_family(family: str, gene_from: str | None) -> str:
    if family not in FAMILIES:
        raise RavisoError(f"unknown generator family {family!r} (expected one of "
                          f"{', '.join(FAMILIES)})")
    gene_from = gene_from or FAMILIES[family]
    if gene_from not in switch.GENE_FROM:
        raise RavisoError(f"unknown gene_from {gene_from!r} (expected one of "
                          f"{', '.join(switch.GENE_FROM)})")
    return gene_from


def _gtex_source(world, sw, heldout: bool, gene_from: str) -> Callable:
    """(rows, rng) -> the GTEx blocks of the family, genes summed from isoforms if asked."""
    if sw is None:
        held = HeldoutDonor(world) if heldout else None
        fn = lambda rows, rng: model.gtex_block(world, rows, rng, held)  # noqa: E731
    else:
        held = switch.SwitchHeldout(sw) if heldout else None
        fn = lambda rows, rng: switch.gtex_block(sw, rows, rng, held, gene_from)  # noqa: E731
    if gene_from == "isoforms":
        return lambda rows, rng: switch.from_isoforms(world, fn(rows, rng))
    return fn


def _write_archs4(tmp: Path, world, p: Preset, fmt: str, seed: int, workers: int) -> _Moments:
    """The ARCHS4 gene matrix (random stream 1); its moments for synth.json."""
    archs4 = _Moments(p.n_genes)
    w = _WRITERS[fmt](tmp / (STEMS["archs4"] + _ext(fmt)), world.archs4_ids, world.gene_symbols,
                      None)
    for r0, block in _blocks(lambda rows, rng: model.archs4_block(world, rows, rng),
                             p.n_archs4, p.n_genes, seed, 1, workers):
        w.write(r0, block)
        archs4.add(block)
    w.close()
    return archs4


def _write_gtex(tmp: Path, world, p: Preset, fmt: str, seed: int, workers: int,
                source: Callable, heldout: bool) -> tuple[_Moments, dict]:
    """The GTEx gene and isoform matrices, the noise-free truth and (with `heldout`) the
    held-out-donor expectation, from one pass of random stream 2; (gene moments, isoform stats
    with the noise floors)."""
    genes = world.gene_symbols
    tissue = [TISSUES[t] for t in world.gtex_tissue.tolist()]
    isoforms = [world.isoform_ids[i] for i in world.isoform_order]
    kinds = ["gtex_gene", "gtex_isoform", "truth"] + (["truth_heldout"] if heldout else [])
    ws = [_WRITERS[fmt](tmp / (STEMS[k] + _ext(fmt)), world.gtex_ids,
                        [genes[g] for g in world.gtex_gene_order] if k == "gtex_gene" else isoforms,
                        tissue) for k in kinds]
    gene, iso = _Moments(p.n_genes), _Moments(p.n_isoforms)
    sq_err = bias = held_err = 0.0
    for r0, blocks in _blocks(source, p.n_gtex, p.n_isoforms, seed, 2, workers):
        for wr, block in zip(ws, blocks):
            wr.write(r0, block)
        gene.add(blocks[0])
        iso.add(blocks[1])
        diff = blocks[1] - blocks[2]
        sq_err += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
        bias += float(diff.sum(dtype=np.float64))
        if heldout:
            diff = blocks[1] - blocks[3]
            held_err += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    for wr in ws:
        wr.close()
    n_iso_entries = p.n_gtex * p.n_isoforms
    iso_stats = iso.summary()
    iso_stats["noise_floor_mse"] = sq_err / n_iso_entries
    iso_stats["noise_floor_ratio"] = (iso_stats["noise_floor_mse"]
                                      / max(iso_stats["mean_baseline_mse"], 1e-12))
    iso_stats["mean_noise"] = bias / n_iso_entries
    iso_stats["floor_heldout_donor_mse"] = held_err / n_iso_entries if heldout else None
    return gene, iso_stats
