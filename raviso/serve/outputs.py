"""What `raviso predict` writes beside the isoform log2(TPM+1): per-isoform reliability, conformal
intervals, TPM and isoform fractions, the merged table and tx2gene (docs/predictions.md).

- Reliability (MODELs with out-of-fold arrays: `raviso cv --save-model`, `raviso fit --cv-folds`):
  per isoform ``oof_mse``, ``oof_r2``, ``oof_r``, ``mean_expr``, ``oof_n`` and ``reliable``
  (``oof_r2 >= reliable_r2``, `raviso.trust.reliability.reliable`): AnnData ``var`` columns,
  and for TSV/Parquet the side table ``<stem>.isoforms.tsv``.
- ``interval``: split-conformal bounds ``lower = max(pred - w, 0)``, ``upper = pred + w`` with
  ``w`` the isoform's half-width at that level (`reliability.halfwidth`), in log2(TPM+1): AnnData
  layers, Parquet tensor columns or sibling TSVs ``<stem>.lower.tsv`` / ``<stem>.upper.tsv``.
- ``units``: ``tpm`` = 2^x - 1; ``fraction`` = the isoform's share of its gene's predicted TPM in
  that sample (sums to 1 over a gene's isoforms; NaN when the gene's predicted TPM is 0 or the
  isoform has no gene): layers / columns / sibling TSVs named after the unit.
- ``merged``: ``<stem>.merged.<unit>.tsv`` per unit (``transcript_id``, ``gene_id``, one column
  per sample: the layout tximport-style pipelines write) and ``<stem>.tx2gene.tsv``.
- ``observed``: per-sample QC of measured isoform fractions (`raviso.serve.qc`): obs columns
  ``qc_distance``, ``qc_z``, ``qc_aberrant``, ``qc_genes``, the same as ``<stem>.qc.tsv`` and
  per-gene z-scores (genes of two or more isoforms) as ``<stem>.qc_genes.tsv``.
- applicability domain (`raviso.serve.applicability`): obs columns ``domain_score``,
  ``domain_pct``, ``in_domain``, ``calibrated``, ``interval_scale`` (for TSV/Parquet
  ``<stem>.domain.tsv``); the half-widths are multiplied by ``interval_scale``.
Every side file is written atomically together with the main output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_file, check_writable_target
from ..core.errors import RavisoError
from ..models.saved import load_optional
from ..trust import reliability as rel
from ..io.tables import TSV_FORMAT, TsvTable
from ..trust.splice_qc import GeneShares
from .applicability import COLUMNS as DOMAIN_COLUMNS, DomainOutput
from .out_tables import H5adLayers, MergedTable, ParquetLayers, TsvLayers
from .qc import QC_Z, ObservedQC
from .tissues import PATH_FREE

UNITS = ("log2tpm", "tpm", "fraction")
QC_COLUMNS = ("qc_distance", "qc_z", "qc_aberrant", "qc_genes")
NO_RELIABILITY = ("this MODEL has no reliability or intervals: it was fitted without the CV that "
                  "measures them (raviso fit --cv-folds 0); refit it with `raviso fit` (its CV "
                  "is on by default) or `raviso cv --save-model`")


@dataclass(frozen=True)
class OutputOptions:
    """What `raviso predict` adds to the predictions (see the module docstring): the output
    fields of its `PredictConfig` (`of`), `units` parsed."""

    interval: float | None                 # conformal level, e.g. 0.9
    units: tuple                           # log2tpm (always), tpm, fraction
    reliable_r2: float                     # the `reliable` rule: oof_r2 >= this
    merged: bool                           # features x samples tables + tx2gene
    observed: str | None                   # measured isoforms of the same samples: QC
    overwrite: bool                        # side outputs may replace raviso's own

    @classmethod
    def of(cls, cfg) -> "OutputOptions":
        return cls(cfg.interval, parse_units(cfg.units), cfg.reliable_r2, cfg.merged,
                   None if cfg.observed is None else str(cfg.observed), cfg.overwrite)

    def __post_init__(self):
        if self.interval is not None and not 0 < float(self.interval) < 1:
            raise RavisoError(f"--interval must be a level in (0, 1), e.g. 0.9 (got "
                              f"{self.interval})")
        bad = [u for u in self.units if u not in UNITS]
        if bad:
            raise RavisoError(f"--units: unknown unit(s) {', '.join(bad)} (known: "
                              f"{', '.join(UNITS)})")


def parse_units(text) -> tuple:
    """'tpm,fraction' or a list -> units, log2tpm first."""
    names = [u.strip().lower() for u in (text.split(",") if isinstance(text, str) else text or [])]
    return ("log2tpm",) + tuple(u for u in dict.fromkeys(names) if u and u != "log2tpm")


def to_tpm(P: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp2(np.asarray(P, np.float64)) - 1, 0)


def load_reliability(m, key: str = "reliability", needed: bool = False) -> dict | None:
    """The MODEL's summed out-of-fold arrays (None for a MODEL fitted without a CV); `key`
    ``tissue_free_reliability``: those of its tissue-free regressor (None if its CV lacked it).
    Missing or damaged: an error when `needed` (--interval), else a warning and None."""
    return load_optional(m.dir, m.meta, key, rel.load_arrays, needed)


def isoform_columns(m, opts: OutputOptions, arrays: dict | None) -> tuple[dict, np.ndarray | None]:
    """(var columns, interval half-widths or None) for the MODEL's isoforms."""
    iso_gene = m.meta.get("isoform_gene") or [None] * len(m.isoforms)
    cols = {"gene_id": ["" if g is None else g for g in iso_gene]}
    if arrays is None:
        if opts.interval is not None:
            raise RavisoError(f"--interval: {NO_RELIABILITY}", m.dir)
        return cols, None
    stats = rel.per_isoform(arrays)
    cols.update({k: np.asarray(v, np.float64) for k, v in stats.items()})
    cols["oof_n"] = np.asarray(stats["oof_n"], np.int64)
    cols["reliable"] = rel.reliable(stats, opts.reliable_r2)
    width = None
    if opts.interval is not None:
        width = rel.halfwidth(arrays["hist"], float(opts.interval))
        cols[f"halfwidth_{float(opts.interval):g}"] = width
    return cols, width


def tissue_free_columns(m, opts: OutputOptions, cols: dict) -> np.ndarray | None:
    """Add the tissue-free regressor's ``oof_mse_tissue_free`` / ``oof_r2_tissue_free`` to
    `cols`; return its interval half-widths (None: no arrays or no interval)."""
    arrays = load_reliability(m, "tissue_free_reliability", opts.interval is not None)
    if arrays is None:
        return None
    stats = rel.per_isoform(arrays)
    cols["oof_mse_tissue_free"] = stats["oof_mse"]
    cols["oof_r2_tissue_free"] = stats["oof_r2"]
    return None if opts.interval is None else rel.halfwidth(arrays["hist"], float(opts.interval))


def side_path(out: Path, tag: str) -> Path:
    stem = out.name[:-len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.{tag}.tsv")


def layer_names(opts: OutputOptions) -> list[str]:
    return (["lower", "upper"] if opts.interval is not None else []) + \
        [u for u in opts.units if u != "log2tpm"]


class PredictionWriter:
    """The main output plus every side output of one `predict` run; `write` per chunk."""

    def __init__(self, fmt: str, tmp, out, m, meta: dict, opts: OutputOptions, router=None,
                 domain: DomainOutput | None = None):
        self.fmt, self.tmp, self.out, self.m, self.opts = fmt, tmp, Path(out), m, opts
        self.router = router
        self.domain = domain if domain is not None else DomainOutput(m)   # `applicability`
        arrays = load_reliability(m, needed=opts.interval is not None)
        self.var, self.width = isoform_columns(m, opts, arrays)
        self.width_free = tissue_free_columns(m, opts, self.var) if arrays else None
        self.layers = layer_names(opts)
        self.shares = GeneShares(self.var["gene_id"]) if "fraction" in opts.units else None
        self.qc = ObservedQC(m, opts.observed, arrays) if opts.observed else None
        self.qc_seen = [0, 0, 0.0]          # samples scored, flagged aberrant, highest qc_z
        self.has_reliability = arrays is not None
        self.meta = {**meta, "units_written": list(opts.units), "interval": opts.interval,
                     "reliable_rule": (f"oof_r2 >= {opts.reliable_r2:g}" if arrays is not None
                                       else None),
                     "reliability": "out-of-fold (donor-grouped CV)" if arrays else None}
        self.meta["domain"] = self.domain.meta()
        self.sides = self.side_paths()
        for p in self.sides.values():
            check_writable_target(p, overwrite=opts.overwrite, file=True)
        self.stack = contextlib.ExitStack()

    def side_paths(self) -> dict[str, Path]:
        sides = {}
        if self.fmt != "h5ad" and "oof_mse" in self.var:
            sides["isoforms"] = side_path(self.out, "isoforms")
        if self.fmt == "tsv":
            sides.update({name: side_path(self.out, name) for name in self.layers})
        if self.fmt != "h5ad" and self.domain.check is not None:
            sides["domain"] = side_path(self.out, "domain")
        if self.opts.merged:
            sides.update({f"merged.{u}": side_path(self.out, f"merged.{u}")
                          for u in self.opts.units})
            sides["tx2gene"] = side_path(self.out, "tx2gene")
        if self.opts.observed:
            sides.update(qc=side_path(self.out, "qc"), qc_genes=side_path(self.out, "qc_genes"))
        return sides

    def __enter__(self):
        tmp = {k: self.stack.enter_context(atomic_file(p, overwrite=True))
               for k, p in self.sides.items()}
        self.tmp_sides = tmp
        if "domain" in tmp:
            self.domain_table = self.stack.enter_context(TsvTable(tmp["domain"], DOMAIN_COLUMNS))
        if self.fmt == "h5ad":
            w = H5adLayers(self.tmp, self.m.isoforms, self.var, self.meta, self.layers)
        elif self.fmt == "parquet":
            w = ParquetLayers(self.tmp, self.m.isoforms, None, self.meta, self.layers)
        else:
            w = TsvLayers(self.tmp, self.m.isoforms, None, None, self.layers,
                          {n: tmp[n] for n in self.layers})
        self.main = self.stack.enter_context(w)
        self.merged = {u: MergedTable(tmp[f"merged.{u}"], self.m.isoforms, self.var["gene_id"])
                       for u in self.opts.units} if self.opts.merged else {}
        if self.qc is not None:
            self.qc_tables = [self.stack.enter_context(TsvTable(tmp[k], names)) for k, names in
                              (("qc", QC_COLUMNS), ("qc_genes", self.qc.gene_names))]
        return self

    def predict(self, X, sample_ids, tissue):
        """The MODEL's prediction, routed by tissue (`raviso.serve.tissues`)."""
        self.domain.assess(X, sample_ids)
        if self.router is None:
            return self.m.predict(X, sample_ids, tissue)
        return self.router.predict(X, sample_ids, tissue)

    def write(self, ids, P, obs=None):
        obs = dict(obs or {})
        if self.router is not None and self.router.tissues:
            obs["tissue_model"] = self.router.last_path
            obs["tissue_matched"] = self.router.last_names
        dcols = self.domain.columns(ids, self.router.last_path if self.router else [],
                                    obs.get("tissue"))
        obs.update(dcols)
        units = {"log2tpm": P}
        if "tpm" in self.opts.units or self.shares is not None:
            tpm = to_tpm(P)
            units["tpm"] = tpm
            if self.shares is not None:
                units["fraction"] = self.shares.fraction(tpm)
        layers = {u: units[u] for u in self.opts.units if u != "log2tpm"}
        if self.width is not None:
            w = np.broadcast_to(self.width, P.shape)
            if self.width_free is not None and self.router is not None:
                free = np.array([p == PATH_FREE for p in self.router.last_path], bool)
                w = np.where(free[:, None], self.width_free, w)
            w = w * self.domain.scale(len(ids))[:, None]        # `trust.domain`'s scale
            layers["lower"] = np.maximum(P - w, 0)
            layers["upper"] = P + w
        if self.qc is not None:
            cols, gz = self.qc.score(ids, P)
            obs.update(cols)
            self._count_qc(cols)
            self.qc_tables[0].write(list(ids), np.array([cols[c] for c in QC_COLUMNS], float).T)
            self.qc_tables[1].write(list(ids), gz)
        if "domain" in self.tmp_sides:
            self.domain_table.write(list(ids), self.domain.row(dcols))
        self.main.write(list(ids), P, obs, layers)
        for u, t in self.merged.items():
            t.write(list(ids), units[u])

    def _count_qc(self, cols: dict) -> None:
        z = np.asarray(cols["qc_z"], np.float64)
        self.qc_seen[0] += int(np.isfinite(z).sum())
        self.qc_seen[1] += int(sum(cols["qc_aberrant"]))
        if np.isfinite(z).any():
            self.qc_seen[2] = max(self.qc_seen[2], float(np.nanmax(z)))

    def notes(self) -> list[str]:
        """The one-line messages of this run for the user: no reliability; the --observed QC."""
        out = [] if self.has_reliability else [f"raviso: note: {NO_RELIABILITY}"]
        if self.qc is not None:
            n, bad, top = self.qc_seen
            out.append(f"raviso: --observed: {bad} of {n} sample(s) aberrant (qc_z > "
                       f"{QC_Z:g}: isoform fractions unlike the CV's held-out donors'"
                       + (f"; highest qc_z {top:.1f}" if n else "") + f"), in {self.sides['qc']}")
        return out

    def finish(self) -> None:
        for t in self.merged.values():
            t.close()
        if "isoforms" in self.tmp_sides:
            write_isoform_table(self.tmp_sides["isoforms"], self.m.isoforms, self.var)
        if "tx2gene" in self.tmp_sides:
            write_isoform_table(self.tmp_sides["tx2gene"], self.m.isoforms,
                                {"gene_id": self.var["gene_id"]})

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.finish()
            except BaseException as e:
                self.stack.__exit__(type(e), e, e.__traceback__)
                raise
        return self.stack.__exit__(exc_type, exc, tb)


def write_isoform_table(path, isoforms, columns: dict) -> None:
    """``transcript_id<TAB>column...``: one line per isoform."""
    fmt = TSV_FORMAT.format

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, (float, np.floating)):
            return "NaN" if np.isnan(v) else ("Inf" if np.isinf(v) else fmt(v))
        return str(v)

    names = list(columns)
    with open(path, "w") as f:
        f.write("transcript_id\t" + "\t".join(names) + "\n")
        cols = [np.asarray(columns[c]).tolist() if not isinstance(columns[c], list)
                else columns[c] for c in names]
        for j, iso in enumerate(isoforms):
            f.write(iso + "\t" + "\t".join(cell(c[j]) for c in cols) + "\n")
