"""`raviso predict MODEL INPUT --out OUT`: isoform expression, log2(TPM+1), for new samples.

INPUT (a store or any `raviso.io.formats` predict format) is read as samples x the MODEL's genes,
matched by name as `raviso import` matches them; absent genes are refused or, when allowed, filled
with their training means. Read, predicted and written in chunks; every output is written
atomically. Input layouts and output files: docs/formats.md, docs/output.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..io.formats import fmt_of, open_matrix, sniff
from ..io.gene_table import check_unique, describe, match_index, orient, read_gene_table, to_log2
from ..io.samplesheet import read_samplesheet
from ..core.atomic import atomic_file, check_writable_target
from ..core.errors import RavisoError
from ..models.saved import REGRESSOR_DIR, read_model
from .applicability import DomainOutput
from .config import PredictConfig
from .outputs import OutputOptions, PredictionWriter
from .tissues import TissueRouter

FORMATS = ("parquet", "tsv", "h5ad")
CHUNK_ROWS = 2048


class LoadedModel:
    """A MODEL directory in memory: its metadata, encoders and regressor."""

    def __init__(self, model_dir):
        from ..models.saved import load_predictor
        from ..train.runs import load_run

        self.dir = Path(model_dir)
        self.meta = read_model(self.dir)
        self.genes: list[str] = self.meta["genes"]
        self.symbols: list[str] | None = self.meta.get("gene_symbols")
        self.isoforms: list[str] = self.meta["isoforms"]
        self.encoders = {name: load_run(self.dir / sub)
                         for name, sub in self.meta["encoders"].items()}
        self.regressor = load_predictor(self.dir / REGRESSOR_DIR)
        pos = {g: j for j, g in enumerate(self.genes)}
        self.isoform_gene = np.array([pos.get(g, -1) for g in self.meta.get("isoform_gene") or []],
                                     np.int64)

    def predict(self, X: np.ndarray, sample_id=None, tissue=None) -> np.ndarray:
        """(n, len(genes)) log2(TPM+1) in the MODEL's gene order -> (n, n_isoforms) float32."""
        from ..data.labelled import Labelled

        n = X.shape[0]
        sid = np.asarray(sample_id if sample_id is not None else [str(i) for i in range(n)])
        data = Labelled(sample_id=sid,
                        tissue=np.asarray(tissue if tissue is not None else [""] * n),
                        donor=None, genes=X, isoforms=np.zeros((n, 0), np.float32),
                        gene_names=self.genes, isoform_names=self.isoforms,
                        isoform_gene=self.isoform_gene)
        for name, run in self.encoders.items():
            data.latent[name] = run.encode_named(X, self.genes, source=self.dir)
        pred = np.asarray(self.regressor.predict(data, np.arange(n)), np.float32)
        if pred.shape != (n, len(self.isoforms)):
            raise RuntimeError(f"regressor returned {pred.shape}, expected "
                               f"{(n, len(self.isoforms))}")
        return pred


@dataclass
class PredictInput:
    """Samples x model genes (NaN where the input lacks a gene), streamed in chunks of
    (X, sample ids, tissue or None), with the one-line report of how it was read."""

    chunks: Iterator
    total: int | None
    missing: list[str]
    report: str


def _store_input(path, dataset, m, scale):
    """A store's gene dataset (gtex_gene or archs4, or `dataset`)."""
    from ..data.reader import Store

    st = Store(path)
    if dataset is None:
        dataset = next((d for d in ("gtex_gene", "archs4") if st.has(d)), None)
        if dataset is None:
            raise RavisoError("store has neither gtex_gene nor archs4 gene expression", path)
    elif dataset not in ("gtex_gene", "archs4"):
        raise RavisoError(f"--dataset must be a gene dataset (gtex_gene or archs4), got {dataset}")
    st.require(dataset)
    batches = ((X, ids, ["" if t is None else t for t in tissue])
               for X, ids, tissue, _ in st.batches(dataset, CHUNK_ROWS))
    return _by_columns(st.genes, batches, st.n_rows(dataset), m, scale, f"store {dataset}", path)


def _matrix_input(path, m, scale):
    """An HDF5 matrix (course, ARCHS4, AnnData): samples x genes, streamed."""
    src = open_matrix(path)
    if src.role == "isoform" or src.feature_gene is not None:
        src.close()
        raise RavisoError("holds isoform (transcript) expression; predict needs gene expression",
                          path)

    def gen():
        with src:
            for ch in src.chunks(CHUNK_ROWS):
                lo = ch.row0
                tissue = ([t or "" for t in src.tissue[lo:lo + len(ch.sample_ids)]]
                          if src.tissue else None)
                yield np.array(ch.X, np.float32, copy=True), list(ch.sample_ids), tissue

    return _by_columns(src.features, gen(), src.n_rows, m, scale, sniff(path), path)


def _by_columns(features, batches, total, m, scale, kind, source):
    """Samples x features batches -> samples x model genes (matched as import matches ids)."""
    idx = match_index(features, m.genes, m.symbols)
    check_unique(features, idx, source)
    scale = scale or "log2tpm"

    def gen():
        for X, ids, tissue in batches:
            out = np.full((len(ids), len(idx)), np.nan, np.float32)
            out[:, idx >= 0] = X[:, idx[idx >= 0]]
            yield to_log2(out, scale), list(ids), tissue

    missing = [g for g, i in zip(m.genes, idx) if i < 0]
    report = (f"input: samples x genes ({kind}), "
              f"{'TPM -> log2(TPM+1)' if scale == 'tpm' else 'log2(TPM+1)'}, "
              f"{'?' if total is None else f'{total:,}'} samples, "
              f"{len(m.genes) - len(missing):,}/{len(m.genes):,} model genes")
    return PredictInput(gen(), total, missing,
                        report + dropped(len(features), int(np.count_nonzero(idx >= 0))))


def dropped(n_input: int, n_used: int) -> str:
    """', N input genes the MODEL does not use (dropped)' ('' when every input gene is used)."""
    n = n_input - n_used
    return f", {n:,} input gene{'s' * (n != 1)} the MODEL does not use (dropped)" if n else ""


def _table_input(path, m, orientation, scale):
    """A delimited or Parquet table, either orientation, TPM or log2(TPM+1), read whole."""
    t = read_gene_table(path)
    o = orient(t, m.genes, m.symbols, orientation, scale, source=path)
    chunks = ((o.X[r:r + CHUNK_ROWS], o.sample_ids[r:r + CHUNK_ROWS], None)
              for r in range(0, len(o.sample_ids), CHUNK_ROWS))
    n_in = len(t.row_labels[0]) if o.orientation == "genes-by-samples" else len(t.col_labels)
    return PredictInput(chunks, len(o.sample_ids), o.missing, describe(o, len(m.genes), t.gct)
                        + dropped(n_in, len(m.genes) - len(o.missing)))


def open_input(path, m, dataset=None, orientation=None, scale=None) -> PredictInput:
    """Any supported gene-expression input, as samples x the model's genes."""
    path = Path(path)
    if not path.exists():
        raise RavisoError("no such input", path)
    if path.is_dir():
        return _store_input(path, dataset, m, scale)
    if dataset is not None:
        raise RavisoError("--dataset applies only to a store input", path)
    if fmt_of(path).holds == "matrix":
        return _matrix_input(path, m, scale)
    return _table_input(path, m, orientation, scale)


def output_format(out: Path, fmt: str | None) -> str:
    if fmt is None:
        suffix = out.suffix.lower().lstrip(".")
        fmt = {"tsv": "tsv", "txt": "tsv", "h5ad": "h5ad"}.get(suffix, "parquet")
    if fmt not in FORMATS:
        raise RavisoError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    return fmt


def fill_values(m, missing, allow_missing, max_missing, source, say) -> np.ndarray:
    """Per model gene, the value that replaces an absent one: its training mean. Refuses when
    genes are missing without `allow_missing`, or more than `max_missing` of them."""
    if not missing:
        return np.zeros(len(m.genes), np.float32)
    n, total = len(missing), len(m.genes)
    names = f"{', '.join(missing[:20])}{f' (and {n - 20} more)' if n > 20 else ''}"
    if not allow_missing:
        raise RavisoError(f"{n} of {total} model genes missing: {names} (--allow-missing fills "
                          f"them with their training means, up to --max-missing {max_missing:g} "
                          "of the model's genes)", source)
    if n > max_missing * total:
        raise RavisoError(f"{n} of {total} model genes missing ({n / total:.0%}, above "
                          f"--max-missing {max_missing:g}): {names}", source)
    means = m.meta.get("gene_means")
    if means is None:
        raise RavisoError("MODEL carries no training means of its genes (saved by an older "
                          "raviso): refit it to use --allow-missing", m.dir)
    say(f"raviso: warning: {source}: {n} of {total} model genes missing, filled with their "
        f"training means: {', '.join(missing[:10])}{' ...' if n > 10 else ''}")
    return np.asarray(means, np.float32)


def read_sheet(samples) -> dict | None:
    """Sample id -> `SheetRow` of a sample sheet (same columns as `raviso import`'s)."""
    if samples is None:
        return None
    return {r.sample_id: r for r in read_samplesheet(samples, need_paths=False)}


def sheet_obs(sheet: dict, sample_ids, samples) -> dict[str, list]:
    """Tissue and donor of each sample from the sheet; every input sample must be listed."""
    absent = [s for s in sample_ids if s not in sheet]
    if absent:
        raise RavisoError(f"{len(absent)} input samples are not in the sample sheet: "
                          f"{', '.join(absent[:10])}", samples)
    return {"tissue": [sheet[s].label or "" for s in sample_ids],
            "donor": [sheet[s].donor for s in sample_ids]}


def predict_file(model, input, out, cfg: PredictConfig | None = None, *, warn=None,
                 **options) -> Path:
    """Predict every sample of `input` with MODEL; write `out` (and the side outputs of
    `raviso.serve.outputs`: reliability, intervals, units, merged tables; the applicability
    domain, `raviso.serve.applicability`). `options`: PredictConfig's fields as keywords.
    Returns `out`."""
    cfg = PredictConfig.build(cfg, **options)
    out = Path(out)
    fmt = output_format(out, cfg.fmt)
    check_writable_target(out, cfg.overwrite, file=True,
                          inputs=(model, input, cfg.samples, cfg.observed))
    opts = OutputOptions.of(cfg)
    say = warn or (lambda s: print(s, file=sys.stderr))
    sheet = read_sheet(cfg.samples)
    m = LoadedModel(model)
    inp = open_input(input, m, cfg.dataset, cfg.orientation, cfg.scale)
    fill = fill_values(m, inp.missing, cfg.allow_missing, cfg.max_missing, input, say)
    say(f"raviso: {inp.report}")
    meta = {"isoforms": m.isoforms, "units": "log2(TPM+1)", "model": str(model),
            "variant": m.meta["variant"], "input": str(input), "input_read_as": inp.report,
            "missing_genes": {"count": len(inp.missing), "names": inp.missing,
                              "filled_with": "training mean" if inp.missing else None}}
    router = TissueRouter(m, cfg.unknown_tissue, input)
    domain = DomainOutput(m, cfg.domain_level, cfg.out_of_domain, input,
                          needed=cfg.interval is not None)
    job = PredictJob(m, inp, fill, out, fmt, meta, input, sheet)
    notes = _write_predictions(job, cfg, opts, router, domain)
    for line in (router.warning(), *notes, *domain.notes()):   # + applicability domain
        if line:
            say(line)
    return out


@dataclass(frozen=True)
class PredictJob:
    """One predict run's model, input and destination, for the chunk loop."""
    m: LoadedModel
    inp: PredictInput
    fill: np.ndarray
    out: Path
    fmt: str
    meta: dict
    source: Path
    sheet: dict | None


def _write_predictions(job: PredictJob, cfg: PredictConfig, opts: OutputOptions, router,
                       domain: DomainOutput):
    from ..core.progress import Progress

    n = 0
    with atomic_file(job.out, overwrite=True) as tmp:
        with PredictionWriter(job.fmt, tmp, job.out, job.m, job.meta, opts, router, domain) as w, \
                Progress("predict", total=job.inp.total, quiet=cfg.quiet) as progress:
            for X, sid, tissue in job.inp.chunks:
                obs = ({"tissue": tissue} if job.sheet is None
                       else sheet_obs(job.sheet, sid, cfg.samples))
                tissue = obs["tissue"]
                X = np.where(np.isnan(X), job.fill, X).astype(np.float32, copy=False)
                P = np.maximum(w.predict(X, sid, tissue), 0)     # log2(TPM+1) is never < 0
                w.write(list(sid), P, obs)
                n += len(sid)
                progress.advance(len(sid))
        if n == 0:
            raise RavisoError("no samples to predict", job.source)
    return w.notes()


def read_predictions(path) -> tuple[list[str], np.ndarray, dict]:
    """(sample_id, predictions, metadata) of a Parquet written by `predict_file`."""
    import pyarrow.parquet as pq

    from ..data.reader import tensor_to_numpy

    t = pq.read_table(path)
    meta = json.loads(t.schema.metadata[b"raviso"])
    return t.column("sample_id").to_pylist(), tensor_to_numpy(t.column("expr")), meta
