"""`raviso convert`: course files (or their public sources) -> the Parquet store every later stage
reads, streamed, validated per slab, aligned by gene name and committed atomically, with checksums
computed alongside. Guarantees: docs/formats.md."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import numpy as np

from .align import column_index
from ..core.atomic import check_writable_target
from ..core.progress import Progress
from ..data.folds import donor_of
from ..core.errors import RavisoError
from .annotation import read_isoform_annotation, read_tissue_table
from .archs4 import Archs4H5
from .formats import open_matrix
from .source import MatrixSource
from ..data.store import StoreBuilder
from .validate import check_covered
from .background import PREFETCH, Hasher, prefetch
from .config import ConvertConfig

MATRIX_STEMS = {
    "archs4": ("archs4_gene_expression_norm_transposed",),
    "gtex_gene": ("gtex_gene_expression_norm_transposed",),
    "gtex_isoform": ("gtex_isoform_expression_norm_transposed",),
    "truth": ("truth_isoform_expression_norm_transposed", "truth"),
    "truth_heldout": ("truth_heldout_isoform_expression_norm_transposed",),
}
TRUTHS = ("truth", "truth_heldout")     # synthetic data only (`raviso synth`)
TABLE_STEMS = {"annotation": ("gtex_gene_isoform_annoation",), "tissues": ("gtex_annot",)}
MATRIX_EXTS = (".hdf5", ".h5", ".tsv.gz", ".tsv")   # HDF5 first: far less CPU than gzip'd text
TABLE_EXTS = (".tsv.gz", ".tsv")
PREFIXES = ("", "head_")


def find_course_files(src) -> dict[str, Path]:
    """The course files present in directory `src` (also the `head_` slices in realdata)."""
    src = Path(src)
    if not src.is_dir():
        raise RavisoError("not a directory (SRC must hold the course files)", src)
    found: dict[str, Path] = {}
    for role, stems, exts in ([(r, s, MATRIX_EXTS) for r, s in MATRIX_STEMS.items()]
                              + [(r, s, TABLE_EXTS) for r, s in TABLE_STEMS.items()]):
        for stem in stems:
            for ext in exts:
                for prefix in PREFIXES:
                    p = src / f"{prefix}{stem}{ext}"
                    if role not in found and p.is_file():
                        found[role] = p
    return found


class _OrderMismatch(Exception):
    """A streamed (TSV) labelled matrix turned out not to list samples in the gene file's order."""


def convert(store, src=None, cfg: ConvertConfig | None = None, *,
            log: Callable[[str], None] | None = None, **options) -> dict:
    """Convert the inputs into a store at `store`; returns a summary (rows, seconds, GB/s per
    dataset). Explicit files of `cfg` (or `options`, its fields as keywords) override the files
    found in directory `src`."""
    cfg = ConvertConfig.build(cfg, **options)
    log = log or (lambda msg: None)
    store = check_writable_target(store, cfg.overwrite, inputs=(src,))   # before any work
    if cfg.gene_set not in ("exact", "intersect"):
        raise RavisoError(f"--gene-set must be exact or intersect (got {cfg.gene_set!r})")
    archs4, archs4_h5, tissues, attributes = cfg.archs4, cfg.archs4_h5, cfg.tissues, cfg.attributes
    files: dict[str, Path] = find_course_files(src) if src is not None else {}
    explicit = dict(archs4=archs4 or archs4_h5, gtex_gene=cfg.gtex_gene,
                    gtex_isoform=cfg.gtex_isoform, truth=cfg.truth, annotation=cfg.annotation,
                    tissues=tissues or attributes)
    if archs4 and archs4_h5:
        raise RavisoError("give --archs4 or --archs4-h5, not both")
    if tissues and attributes:
        raise RavisoError("give --tissues or --attributes, not both")
    files.update({k: Path(v) for k, v in explicit.items() if v is not None})
    with contextlib.ExitStack() as stack:
        readers: dict[str, MatrixSource] = {}
        for role in ("archs4", "gtex_gene", "gtex_isoform", *TRUTHS):
            if role in files:
                readers[role] = stack.enter_context(open_matrix(files[role], tmpdir=store.parent))
        for path in cfg.gct:
            r = stack.enter_context(open_matrix(path, tmpdir=store.parent))
            role = "gtex_isoform" if r.role == "isoform" else "gtex_gene"
            if r.kind != "gct":
                raise RavisoError(f"--gct expects a GTEx GCT file, this is {r.kind}", path)
            if role in readers:
                raise RavisoError(f"two sources for {role}: {readers[role].path} and this", path)
            readers[role], files[role] = r, Path(path)
        if archs4_h5 and readers["archs4"].kind != "archs4-h5":
            raise RavisoError(f"--archs4-h5 expects an ARCHS4 H5 file, this is "
                              f"{readers['archs4'].kind}", archs4_h5)
        if not readers:
            raise RavisoError("no expression matrices found (give SRC with the course files, or "
                              "--archs4 / --gtex-gene / --gtex-isoform / --gct / --archs4-h5)", src)
        hasher = Hasher(files.values()) if cfg.checksum else None
        if hasher:
            hasher.start()
            stack.callback(hasher.stop.set)
        plan = _plan(readers, files, cfg.gene_set)
        return _write(store, readers, files, plan, cfg, hasher, log)


def _plan(readers: dict[str, MatrixSource], files: dict[str, Path], gene_set: str) -> dict:
    """Canonical gene/isoform lists, column permutations and the isoform -> gene map."""
    gene_srcs = [readers[r] for r in ("archs4", "gtex_gene") if r in readers]
    genes = list(gene_srcs[0].features) if gene_srcs else []
    if gene_set == "intersect" and len(gene_srcs) > 1:
        common = set.intersection(*(set(s.features) for s in gene_srcs))
        genes = [g for g in genes if g in common]
        if not genes:
            raise RavisoError("the gene matrices share no gene names", gene_srcs[1].path)
    take = {}
    for role in ("archs4", "gtex_gene"):
        if role in readers:
            take[role] = _take(readers[role], genes, "genes", gene_set == "exact")
    isoforms, iso_gene = None, None
    iso_src = readers.get("gtex_isoform") or readers.get("truth")
    if iso_src is not None:
        isoforms = list(iso_src.features)
        for role in ("gtex_isoform", *TRUTHS):
            if role in readers:
                take[role] = _take(readers[role], isoforms, "isoforms", True)
        symbols = readers["gtex_gene"].gene_symbols if "gtex_gene" in readers else None
        iso_gene = _isoform_genes(iso_src, isoforms, files.get("annotation"), symbols)
    gene_set_ = set(genes)
    missing_gene = sum(1 for g in iso_gene or [] if g not in gene_set_) if genes else 0
    return dict(genes=genes, isoforms=isoforms, isoform_gene=iso_gene, take=take,
                isoforms_without_gene=missing_gene)


def _take(reader: MatrixSource, target: list[str], what: str, exact: bool):
    """Column index putting `reader`'s columns in `target` order (None when already in order).
    With `exact`, columns the target lacks are an error too (a gene-set mismatch both ways)."""
    idx, _ = column_index(reader.features, target, source=reader.path, what=what)
    if exact and len(reader.features) != len(target):
        tset = set(target)
        extra = [f for f in reader.features if f not in tset]
        raise RavisoError(f"{len(extra)} {what} not in the canonical set "
                          f"({len(target)} {what}): {', '.join(extra[:20])}"
                          + (" ..." if len(extra) > 20 else ""), reader.path)
    return None if np.array_equal(idx, np.arange(len(reader.features))) else idx


def _isoform_genes(src: MatrixSource, isoforms: list[str], annotation, symbols=None) -> list[str]:
    """Gene name per isoform: the annotation's gene_name (symbol, as the gene matrices are
    named), else the transcript GCT's gene_id, translated to the gene GCT's symbols when one was
    given (GTEx transcript files name genes by Ensembl id, gene files by both)."""
    if annotation is not None:
        table = read_isoform_annotation(annotation)
        check_covered(isoforms, table, annotation, what="isoforms", table_what="annotation")
        return [table[i] for i in isoforms]
    if src.feature_gene is not None:
        symbols = symbols or {}
        return [symbols.get(g, g) for g in src.feature_gene]
    raise RavisoError("no isoform -> gene map: give --annotation "
                      "(gtex_gene_isoform_annoation.tsv.gz)", src.path)


def _write(store, readers, files, plan, cfg: ConvertConfig, hasher, log) -> dict:
    tissue_table = read_tissue_table(files["tissues"]) if "tissues" in files else None
    units = {r: ("log2(CPM+1)" if isinstance(readers[r], Archs4H5) else "log2(TPM+1)")
             for r in readers}
    summary: dict = {"store": str(store), "datasets": {}}
    with StoreBuilder(store, plan["genes"], plan["isoforms"], plan["isoform_gene"],
                      overwrite=cfg.overwrite) as sb:
        sb.extra.update(gene_order=("archs4" if "archs4" in readers else "gtex_gene"),
                        dataset_units=units,
                        isoforms_without_gene=plan["isoforms_without_gene"])
        cancel = threading.Event()
        rows = [r.n_rows for r in readers.values()]
        progress = Progress("convert", total=None if None in rows else sum(rows),
                            quiet=cfg.quiet)

        def lane(roles):
            """Datasets written one after the other (the labelled ones follow gtex_gene's rows)."""
            ref_ids = None
            for role in roles:
                r = readers[role]
                labelled = role != "archs4"
                tissue = (_tissue_lookup(r, tissue_table, files.get("tissues"))
                          if labelled else (lambda ids: None))
                t0 = time.perf_counter()
                ids = _write_dataset(sb, role, r, plan["take"][role], ref_ids, tissue, cancel,
                                     progress)
                dt = time.perf_counter() - t0
                if labelled and ref_ids is None:
                    ref_ids = ids
                n, d = len(ids), sb.dataset(role).n_features
                gb = 4 * n * d / 1e9
                summary["datasets"][role] = dict(rows=n, features=d, seconds=round(dt, 3),
                                                 gbps=round(gb / dt, 3) if dt > 0 else None)
                log(f"{role}: {n} x {d} from {r.path.name} ({r.kind}) in {dt:.1f} s "
                    f"({gb / dt if dt > 0 else 0:.2f} GB/s float32)")

        with progress:
            _run_lanes(lane, readers, cancel)
        _record_sources(sb, readers, files, units, hasher)
    return summary


def _run_lanes(lane, readers, cancel) -> None:
    """ARCHS4 and the labelled set are independent: two lanes, so two cores encode Parquet at
    once (the encoder is the bottleneck; pyarrow releases the GIL while it runs)."""
    lanes = [[r for r in group if r in readers]
             for group in (["archs4"], ["gtex_gene", "gtex_isoform", *TRUTHS])]
    lanes = [roles for roles in lanes if roles]
    with ThreadPoolExecutor(len(lanes), thread_name_prefix="raviso-lane") as pool:
        futures = [pool.submit(lane, roles) for roles in lanes]
        try:
            for f in as_completed(futures):
                f.result()
        except BaseException:
            cancel.set()        # the other lane stops at its next chunk
            raise


def _record_sources(sb, readers, files, units, hasher) -> None:
    """Each input file in the manifest: kind, units, size and sha256."""
    digests = hasher.result() if hasher else {}
    for role, r in readers.items():
        info = dict(units=units[role], bytes=r.path.stat().st_size)
        if isinstance(r, Archs4H5) and r.zero_library:
            info["zero_library_samples"] = r.zero_library[:100]
        sb.add_source(role, r.path.resolve(), kind=r.kind, sha256=digests.get(r.path), **info)
    for role in ("annotation", "tissues"):
        if role in files:
            p = files[role]
            sb.add_source(role, p.resolve(), kind="tsv-table", sha256=digests.get(p),
                          bytes=p.stat().st_size)


def _tissue_lookup(r: MatrixSource, table, table_path):
    """A function ids -> tissue list for one labelled matrix: the tissue table when given (it
    must cover every sample), else the HDF5's own `tissue` dataset, else unknown (None)."""
    if table is not None:
        def lookup(ids):
            check_covered(ids, table, table_path, what=f"samples of {r.path.name}")
            return [table[s] for s in ids]
        return lookup
    if r.tissue is not None:
        own = dict(zip(r.sample_ids, r.tissue))
        return lambda ids: [own[s] for s in ids]
    return lambda ids: None


class _Cancelled(Exception):
    """Another lane failed; its error is the one reported."""


def _write_dataset(sb: StoreBuilder, role: str, r: MatrixSource, take, ref_ids, tissue,
                   cancel: threading.Event, progress=None) -> list[str]:
    """Stream `r` into dataset `role`; rows follow `ref_ids` when given. Returns the sample ids."""
    if ref_ids is not None and r.sample_ids is not None and r.sample_ids != ref_ids:
        _check_same_set(r, ref_ids)
        return _write_reordered(sb, role, r, take, ref_ids, tissue, cancel, progress)
    w = sb.dataset(role)
    ids: list[str] = []
    try:
        # closing(): stop the reader thread now, even while an exception's traceback keeps this
        # frame (and the generator) alive
        with contextlib.closing(prefetch(lambda: r.chunks(w.group_rows, take,
                                                          ring=PREFETCH + 2))) as chunks:
            for ch in chunks:
                if cancel.is_set():
                    raise _Cancelled
                n = len(ch.sample_ids)
                if ref_ids is not None and ch.sample_ids != ref_ids[ch.row0:ch.row0 + n]:
                    raise _OrderMismatch
                # a reused read buffer must not stay referenced by the writer's pending rows
                X = ch.X.copy() if r.reuses_buffers and n % w.group_rows else ch.X
                w.write(X, ch.sample_ids, tissue(ch.sample_ids), _donors(r, ch))
                ids.extend(ch.sample_ids)
                if progress is not None:
                    progress.advance(n)
    except _OrderMismatch:
        sb.discard(role)    # a TSV file in another sample order, found out mid-stream
        return _write_reordered(sb, role, r, take, ref_ids, tissue, cancel, progress)
    if ref_ids is not None and len(ids) != len(ref_ids):
        _check_same_set(r, ref_ids, ids)
    return ids


def _check_same_set(r: MatrixSource, ref_ids, ids=None):
    ids = r.sample_ids if ids is None else ids
    have, want = set(ids), set(ref_ids)
    if have != want or len(ids) != len(ref_ids):
        lack, extra = [s for s in ref_ids if s not in have], [s for s in ids if s not in want]
        parts = []
        if lack:
            parts.append(f"lacks {len(lack)} samples of the gene matrix ({', '.join(lack[:3])})")
        if extra:
            parts.append(f"has {len(extra)} samples the gene matrix lacks ({', '.join(extra[:3])})")
        if not parts:
            parts.append("repeats samples")
        raise RavisoError("sample mismatch with the GTEx gene matrix: " + "; ".join(parts), r.path)


def _donors(r: MatrixSource, ch) -> list:
    """The file's own donors (an AnnData's obs["donor"]) when it has them, else GTEx ids'."""
    own = getattr(r, "donor", None)
    if own is not None:
        return own[ch.row0:ch.row0 + len(ch.sample_ids)]
    return [donor_of(s) for s in ch.sample_ids]


def _write_reordered(sb, role, r: MatrixSource, take, ref_ids, tissue, cancel,
                     progress=None) -> list[str]:
    """Rows into gene-matrix order through a disk-backed scratch matrix inside the store's temp
    dir (the isoform matrix is ~11 GB: no room for it in RAM). Rare: the course files agree."""
    pos = {s: k for k, s in enumerate(ref_ids)}
    d = len(take) if take is not None else len(r.features)
    scratch = sb.tmp / f".reorder-{role}.f32"
    M = np.memmap(scratch, np.float32, "w+", shape=(len(ref_ids), d))
    filled = np.zeros(len(ref_ids), bool)
    ids = []
    try:
        for ch in r.chunks(max(1, (64 << 20) // (4 * d)), take):
            if cancel.is_set():
                raise _Cancelled
            try:
                rows = np.array([pos[s] for s in ch.sample_ids], np.int64)
            except KeyError as e:
                raise RavisoError(f"sample {e.args[0]} is not in the GTEx gene matrix",
                                  r.path) from None
            M[rows] = ch.X
            filled[rows] = True
            ids.extend(ch.sample_ids)
        _check_same_set(r, ref_ids, ids)
        w = sb.dataset(role)
        for s in range(0, len(ref_ids), w.group_rows):
            e = min(len(ref_ids), s + w.group_rows)
            sid = ref_ids[s:e]
            w.write(np.array(M[s:e]), sid, tissue(sid), [donor_of(x) for x in sid])
            if progress is not None:
                progress.advance(e - s)
    finally:
        del M
        scratch.unlink(missing_ok=True)
    return list(ref_ids)
