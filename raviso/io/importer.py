"""`raviso import`: users' own quantifications (salmon, kallisto, RSEM, or a transcripts x samples
matrix) plus a sample sheet -> a store of the same layout as `raviso convert`'s, every normalisation
choice recorded in the manifest. Units and streaming: docs/formats.md."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import quant, tx2gene
from ..core.progress import Progress
from ..data.folds import donor_of
from .samplesheet import SheetRow, check_same_index, read_samplesheet, select_matrix_samples
from ..core.atomic import check_writable_target, scratch_array
from ..core.errors import RavisoError
from ..data.store import StoreBuilder
from .formats import open_transcripts
from .units import UNITS_LABEL, UNITS_NOTE, normalise, resolve_units
from .config import ImportConfig

SLAB_ELEMENTS = 1 << 25        # values per sample slab in pass 2 (~128-256 MiB)
IN_MEMORY_BYTES = 1 << 29      # matrix buffers above this go to a disk memmap


def warn(message: str) -> None:
    """Loud choices go to stderr as one line each (and into the manifest)."""
    print(f"raviso: warning: {message}", file=sys.stderr)


# -- normalisation ----------------------------------------------------------------------------------


# -- the union of features and the map ----------------------------------------------------------
@dataclass
class Features:
    """Transcripts kept (mapped) and their genes, built in pass 1."""

    union: list[str]            # every transcript seen, first-appearance order
    keep: np.ndarray            # (k,) index into union of mapped transcripts
    isoforms: list[str]
    isoform_gene: list[str]
    genes: list[str]
    agg: object                 # scipy.sparse (len(union), len(genes)): transcript -> gene sum
    report: tx2gene.MapReport


def build_features(union: list[str], own_map: dict | None, txmap, source, max_unmapped: float,
                   ) -> Features:
    import scipy.sparse as sp

    if txmap is None:
        if not own_map:
            raise RavisoError("no transcript -> gene map: pass --tx2gene TSV or --gtf GTF (or use "
                              "RSEM isoforms.results / a matrix with a gene column)", source)
        txmap = tx2gene.from_pairs(list(own_map), list(own_map.values()), str(source))
    gene_of, report = txmap.lookup(union)
    if report.mapped == 0:
        raise RavisoError(f"none of the {report.total} transcripts is in the transcript -> gene "
                          f"map {txmap.source} (e.g. {', '.join(report.unmapped[:5])}); wrong "
                          "annotation?", source)
    frac = 1 - report.mapped / report.total
    if report.unmapped:
        msg = (f"{len(report.unmapped)} of {report.total} transcripts are not in the transcript "
               f"-> gene map {txmap.source}: {', '.join(report.unmapped[:20])}")
        if frac > max_unmapped:
            raise RavisoError(f"{msg} ({frac:.1%} > --max-unmapped {max_unmapped:.1%}); wrong "
                              "annotation?", source)
        warn(msg + " (left out of the store and of the gene sums)")
    keep = np.flatnonzero([g is not None for g in gene_of])
    iso_gene = [str(gene_of[k]) for k in keep]
    genes = list(dict.fromkeys(iso_gene))
    col = {g: j for j, g in enumerate(genes)}
    agg = sp.csr_matrix((np.ones(len(keep)), (keep, [col[g] for g in iso_gene])),
                        shape=(len(union), len(genes)))
    return Features(union, keep, [union[k] for k in keep], iso_gene, genes, agg, report)


def _check_unique_ids(ids, path):
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise RavisoError(f"transcript {dup!r} appears more than once", path)


# -- the writer shared by both sources ---------------------------------------------------------------
@dataclass(frozen=True)
class Provenance:
    """What the manifest records about an import: its units, the `import` entry, the sources."""
    units_label: str
    extra: dict
    sources: list


def _write(store, feats: Features | None, genes: list[str], slabs, meta, cfg: ImportConfig,
           prov: Provenance):
    """Stream (sample_ids, X_union (n, len(union)) normalised, gene override or None) slabs."""
    extra, sources = prov.extra, prov.sources
    with StoreBuilder(store, genes, None if feats is None else feats.isoforms,
                      None if feats is None else feats.isoform_gene, overwrite=cfg.overwrite,
                      units=prov.units_label) as sb, \
            Progress("import", total=len(meta), quiet=cfg.quiet) as progress:
        sb.extra["import"] = extra
        for dataset, path, kind in sources:
            sb.add_source(dataset, path, kind)
        wg = sb.dataset("gtex_gene")
        wi = sb.dataset("gtex_isoform") if feats is not None else None
        wa = sb.dataset("archs4") if cfg.as_compendium else None
        for rows, X, G in slabs:
            ids = [meta[r].sample_id for r in rows]
            tissue = [meta[r].label for r in rows]
            donor = [meta[r].donor for r in rows]
            if feats is not None:
                gene_vals = np.asarray(X @ feats.agg) if G is None else G
                iso = np.log2(X[:, feats.keep] + 1.0).astype(np.float32)
                wi.write(iso, ids, tissue, donor)
            else:
                gene_vals = X
            if G is not None and feats is not None:
                fill = np.isnan(G)
                if fill.any():
                    gene_vals = np.where(fill, np.asarray(X @ feats.agg), G)
            gene_log = np.log2(gene_vals + 1.0).astype(np.float32)
            wg.write(gene_log, ids, tissue, donor)
            if wa is not None:
                wa.write(gene_log, ids, tissue, donor)
            progress.advance(len(ids))
    return Path(store)


def _slab_rows(n_samples: int, n_features: int):
    step = max(1, SLAB_ELEMENTS // max(1, n_features))
    for s in range(0, n_samples, step):
        yield list(range(s, min(n_samples, s + step)))


# -- sample sheet of per-sample files -----------------------------------------------------------
def import_samples(samplesheet, store, cfg: ImportConfig | None = None, **options) -> Path:
    """Import per-sample salmon / kallisto / RSEM files named by a sample sheet into `store`
    (`options`: ImportConfig's fields as keywords)."""
    cfg = ImportConfig.build(cfg, **options)
    label, units = cfg.label, cfg.units
    store = check_writable_target(store, cfg.overwrite,
                                  inputs=(samplesheet, cfg.tx2gene_path, cfg.gtf))
    rows = read_samplesheet(samplesheet, label)
    layouts = [quant.detect_layout(r.path) for r in rows]
    levels = {lay.level for lay in layouts}
    if len(levels) > 1:
        raise RavisoError("sample sheet mixes gene-level (RSEM genes.results) and transcript-level "
                          "files; put genes.results in a gene_quant column", samplesheet)
    gene_level = levels == {"gene"}
    union_l, own_map, sizes = _read_union(rows, layouts)
    names = [r.sample_id for r in rows]
    incomplete = check_same_index(names, sizes, len(union_l), cfg.max_index_mismatch,
                                  samplesheet, warn)
    if gene_level:
        feats, genes = None, union_l
    else:
        txmap = tx2gene.load(cfg.tx2gene_path, cfg.gtf)
        feats = build_features(union_l, own_map, txmap, samplesheet, cfg.max_unmapped)
        genes = feats.genes
    mode = _sample_units(layouts, units, names)
    extra = {"source": "samplesheet", "samplesheet": str(samplesheet),
             "formats": sorted({lay.name for lay in layouts}), "normalisation": mode,
             "normalisation_note": UNITS_NOTE[mode], "label_column": label or "tissue",
             "samples": len(rows), "gene_level_only": gene_level,
             "samples_lacking_transcripts": dict(incomplete[:100]),
             "gene_from": "sum of transcript values" if not any(r.gene_path for r in rows)
             else "RSEM genes.results where given, else sum of transcript values"}
    if feats is not None:
        extra["tx2gene"] = feats.report.to_dict()
    sources = [("gtex_gene", samplesheet, "samplesheet:" + "+".join(extra["formats"]))]
    slabs = _sample_slabs(rows, layouts, union_l, genes, feats, mode)
    return _write(store, feats, genes, slabs, rows, cfg,
                  Provenance(UNITS_LABEL[mode], extra, sources))


def _read_union(rows, layouts):
    """Pass 1, identifiers only: the union of ids (first-seen order), the files' own transcript ->
    gene map, and each file's ids."""
    union: dict[str, None] = {}
    own_map: dict[str, str] = {}
    sizes = []
    for r, lay in zip(rows, layouts):
        ids, gene = quant.read_ids(r.path, lay)
        _check_unique_ids(ids, r.path)
        sizes.append(ids)
        union.update(dict.fromkeys(ids.tolist()))
        if gene is not None:
            own_map.update(zip(ids.tolist(), gene.tolist()))
    _check_cut_short(rows, sizes)
    return list(union), own_map, sizes


def _check_cut_short(rows, id_lists) -> None:
    """A file with far fewer rows than the sheet's other samples (under half their median, or
    under 90% and its ids the first ones of the longest file's) was cut short: said so, before
    it passes for a file of another index."""
    counts = np.array([len(ids) for ids in id_lists])
    if len(counts) < 2:
        return
    ref = id_lists[int(np.argmax(counts))]
    for k, (r, ids) in enumerate(zip(rows, id_lists)):
        others = float(np.median(np.delete(counts, k)))
        prefix = 0 < len(ids) < len(ref) and np.array_equal(ids, ref[:len(ids)])
        if len(ids) < 0.5 * others or (len(ids) < 0.9 * others and prefix):
            raise RavisoError(f"{len(ids):,} rows where the sheet's other samples have "
                              f"{others:,.0f}: {quant.TRUNCATED}", r.path)


def _sample_units(layouts, units, names) -> str:
    """Units decided from what the files carry (quantifiers: TPM, counts and lengths)."""
    has_tpm = np.array([lay.tpm is not None for lay in layouts])
    has_counts = np.array([lay.counts is not None for lay in layouts])
    has_len = np.array([lay.eff_length is not None for lay in layouts])
    mode = resolve_units(has_tpm, has_counts, has_len, units, names)
    if mode == "cpm":
        warn("counts without effective lengths: values are log2(CPM+1), NOT TPM (no length "
             "normalisation; recorded in the manifest as units log2(CPM+1))")
    return mode


def _sample_slabs(rows, layouts, union_l, genes, feats, mode):
    """Pass 2: (rows, X over the union normalised, RSEM gene values or None) per slab."""
    index = {t: k for k, t in enumerate(union_l)}
    gene_index = {g: j for j, g in enumerate(genes)}
    gene_index_stripped = {tx2gene.strip_version(g): j for j, g in enumerate(genes)}
    for rws in _slab_rows(len(rows), len(union_l)):
        X = np.zeros((len(rws), len(union_l)), np.float64)
        G = None
        for i, r in enumerate(rws):
            q = quant.read_quant(rows[r].path, layouts[r])
            pos = np.fromiter((index[t] for t in q.ids), np.int64, len(q.ids))
            vals = q.tpm if mode == "tpm" else q.counts
            X[i, pos] = normalise(vals, q.eff_length, mode)
            if rows[r].gene_path is not None and feats is not None and mode == "tpm":
                if G is None:
                    G = np.full((len(rws), len(genes)), np.nan)
                G[i] = _gene_quant_row(rows[r].gene_path, gene_index, gene_index_stripped)
        yield rws, X, G


def _gene_quant_row(path, gene_index, gene_index_stripped) -> np.ndarray:
    lay = quant.detect_layout(path)
    if lay.level != "gene":
        raise RavisoError(f"gene_quant must be an RSEM genes.results file (this is {lay.name})",
                          path)
    q = quant.read_quant(path, lay)
    row = np.full(len(gene_index), np.nan)
    for g, v in zip(q.ids, q.tpm):
        j = gene_index.get(g)
        if j is None:
            j = gene_index_stripped.get(tx2gene.strip_version(g))
        if j is not None:
            row[j] = v
    return row


# -- a transcripts x samples matrix -------------------------------------------------------------
def import_matrix(path, store, cfg: ImportConfig | None = None, *, samplesheet=None,
                  **options) -> Path:
    """Import a transcripts x samples table (TSV or GCT, or an AnnData .h5ad of samples x
    transcripts) of TPM or counts into `store`.

    A matrix carries no effective lengths, so counts become CPM (flagged). An optional sample
    sheet (sample, label, donor; no paths needed) labels and selects the matrix's samples.
    `options`: ImportConfig's fields as keywords (`units` is required). `path`: the matrix.
    """
    cfg, matrix = ImportConfig.build(cfg, **options), path
    label, units = cfg.label, cfg.units
    store = check_writable_target(store, cfg.overwrite,
                                  inputs=(matrix, samplesheet, cfg.tx2gene_path, cfg.gtf))
    if units is None:
        raise RavisoError("a matrix does not say whether it holds TPM or counts: pass --units tpm "
                          "or --units counts", matrix)
    m = open_transcripts(matrix, cfg.tx_col, cfg.gene_col)
    rows, dropped_from_sheet = _matrix_rows(m, matrix, samplesheet, label, cfg.sample_set)
    ids, gene = m.read_ids()
    _check_unique_ids(ids, matrix)
    union = ids.tolist()
    txmap = tx2gene.load(cfg.tx2gene_path, cfg.gtf)
    own = dict(zip(union, gene.tolist())) if gene is not None else None
    feats = build_features(union, own, txmap, matrix, cfg.max_unmapped)
    tpm = np.full(len(rows), units == "tpm")
    mode = resolve_units(tpm, ~tpm, np.zeros(len(rows), bool), units, [r.sample_id for r in rows])
    if mode == "cpm":
        warn("a counts matrix has no effective lengths: values are log2(CPM+1), NOT TPM (no "
             "length normalisation; recorded in the manifest as units log2(CPM+1))")
    buf, totals = _read_matrix(m, [r.sample_id for r in rows], len(union), store, matrix)
    extra = {"source": "matrix", "matrix": str(matrix), "matrix_units": units,
             "normalisation": mode, "normalisation_note": UNITS_NOTE[mode],
             "cpm_library_size": "sum of all the matrix's transcripts per sample"
             if mode == "cpm" else None,
             "samplesheet": None if samplesheet is None else str(samplesheet),
             "label_column": (label or "tissue") if samplesheet is not None else None,
             "samples": len(rows), "tx2gene": feats.report.to_dict(),
             "sheet_samples_dropped": dropped_from_sheet}
    sources = [("gtex_isoform", matrix, f"matrix:{units}")]
    slabs = _matrix_slabs(buf, totals, len(rows), mode)
    return _write(store, feats, feats.genes, slabs, rows, cfg,
                  Provenance(UNITS_LABEL[mode], extra, sources))


def _matrix_rows(m, matrix, samplesheet, label, sample_set):
    """The samples to import (sheet rows, or every matrix sample) and how many sheet rows the
    matrix lacks."""
    if samplesheet is None:
        if label is not None:
            raise RavisoError("--label needs a sample sheet (--samples) with that column")
        return [SheetRow(s, None, None, donor_of(s)) for s in m.samples], 0
    rows = read_samplesheet(samplesheet, label, need_paths=False)
    listed = len(rows)
    rows = select_matrix_samples(rows, m.samples, sample_set, samplesheet, matrix, warn)
    dropped = len(m.samples) - len(rows)
    if dropped:
        warn(f"{dropped} matrix samples are not in the sample sheet and are left out")
    return rows, listed - len(rows)


def _read_matrix(m, names, n_union, store, matrix):
    """The matrix's values (features x samples float32, on disk when large) and each sample's
    total."""
    if 4 * n_union * len(names) > IN_MEMORY_BYTES:   # an unnamed file: a SIGKILL leaves nothing
        buf = scratch_array((n_union, len(names)), np.float32, dir=store.parent)
    else:
        buf = np.empty((n_union, len(names)), np.float32)
    totals = np.zeros(len(names))
    r0 = 0
    for block in m.iter_values(names):
        buf[r0:r0 + len(block)] = block
        totals += block.sum(axis=0)
        r0 += len(block)
    if r0 != n_union:
        raise RavisoError(f"matrix changed while reading ({r0} rows, expected {n_union})", matrix)
    return buf, totals


def _matrix_slabs(buf, totals, n_rows, mode):
    for rws in _slab_rows(n_rows, buf.shape[0]):
        X = np.asarray(buf[:, rws[0]:rws[-1] + 1], np.float64).T
        if mode == "cpm":
            t = totals[rws[0]:rws[-1] + 1, None]
            X = np.divide(X * 1e6, t, out=np.zeros_like(X), where=t > 0)
        yield rws, X, None
