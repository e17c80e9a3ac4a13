"""`raviso bench scale`: the course's real widths through every stage, with memory measured.

Stages, each run as the `raviso` command a user would type (a child process, attached to ONE local
Ray that this benchmark starts, so Ray's start-up is not paid per stage and every Ray process is a
descendant of this one)::

    synth    GTEx --rows-gtex x 18,965 genes + 156,958 isoforms (+ truth), ARCHS4 --rows-archs4
    convert  raviso convert SYNTH STORE --no-checksum   (then SYNTH is deleted unless --keep)
    pretrain raviso pretrain STORE --max-steps N         (the paper's 177.8M-parameter VAE)
    encode   raviso encode RUN STORE
    cv       raviso cv STORE --pretrained RUN --variants mean,pca_ridge,vae_ffnn[,share_net]
    report   raviso report CV
    fit      raviso fit STORE --variant vae_ffnn --cv-folds 0  (the MODEL predict needs)
    predict  raviso predict MODEL NEW.h5                  (100 samples the model never saw)

While a stage runs, `bench.memwatch.TreeSampler` sums over this process and all its descendants
(the stage command, Ray's gcs/raylet, every Ray worker and Tune trial): peak proportional memory
(PSS: shared pages -- memory-mapped matrices, the object store -- counted once), the plain RSS sum,
the object store's allocated bytes, disk bytes read/written and CPU seconds. Prints a table, then
ONE JSON line: gtex_rows, isoforms, archs4_rows, genes, peak_memory_gb and per stage seconds,
peak_memory_gb, ... plus the load average before and after (the machine is shared: wall times are
what it gave).

Defaults: 17,356 GTEx rows x 156,958 isoforms (the course's GTEx shape) and 20,000 ARCHS4 rows
(not 167,884: pretraining runs a bounded number of steps, which never reaches row 20,000 at batch
64, and the full compendium would add 11 GB to synth and convert; ``--rows-archs4 167884`` runs
it). Disk: synth + store + the labelled cache (float16 targets) need ~62 GB at these defaults,
checked before starting. ``--quick`` is a seconds-sized smoke test of the same path (tiny widths
and model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

GTEX_ROWS, ARCHS4_ROWS, GENES, ISOFORMS = 17_356, 20_000, 18_965, 156_958
PREDICT_ROWS = 100
STAGES = ("synth", "convert", "ingest", "pretrain", "encode", "cv", "report", "fit", "predict")
GPU_SAMPLES_PER_S = (5_000, 10_000)      # what one H100 consumes running the paper VAE (bench/README.md)
INGEST_ROWS = 20_000

# The ingest stage: the ARCHS4 store (18,965 wide) through Ray Data into torch batches of 512, as
# the trainer reads it -- streamed from Parquet, then held in the object store -- printing one
# JSON line of rows/s (run in a child process attached to the benchmark's Ray).
INGEST_CODE = """
import json, sys, time, ray, torch
from raviso.data import Store
ray.init(address=sys.argv[2], log_to_driver=False)
st = Store(sys.argv[1]); limit = int(sys.argv[3])
def rate(ds):
    n, t0 = 0, None
    for b in ds.iter_torch_batches(batch_size=512, dtypes=torch.float32):
        if t0 is None:
            t0 = time.perf_counter()
        else:
            n += b["expr"].shape[0]
    return n / (time.perf_counter() - t0)
ds = st.ray_dataset("archs4").select_columns(["expr"]).limit(limit)
stream = rate(ds)
held = ds.materialize()
rate(held)
print(json.dumps({"stream_rows_s": stream, "held_rows_s": rate(held)}))
"""
MEMORY_GOAL_GB = 16.0


@dataclass
class Plan:
    rows_gtex: int = GTEX_ROWS
    rows_archs4: int = ARCHS4_ROWS
    genes: int = GENES
    isoforms: int = ISOFORMS
    max_steps: int = 20
    epochs: int = 1
    folds: int = 5
    variants: list[str] = field(default_factory=list)
    vae: list[str] = field(default_factory=list)        # extra pretrain flags (quick: tiny VAE)
    target_dtype: str = "auto"
    seed: int = 0
    synth_rows_gtex: int | None = None   # synthesize fewer GTEx rows, then `expand_store`

    @classmethod
    def quick(cls) -> "Plan":
        return cls(rows_gtex=150, rows_archs4=300, genes=200, isoforms=1656, max_steps=3,
                   vae=["--hidden", "64,32", "--latent-dim", "16"])

    def disk_bytes(self) -> int:
        """synth files (+ truth_heldout) + store + the labelled cache (genes f32, targets f16)."""
        a, n, g, m = self.rows_archs4, self.rows_gtex, self.genes, self.isoforms
        s = self.synth_rows_gtex or n
        synth = 4 * (a * g + s * g + 3 * s * m)
        store = 4 * (a * g + n * g + (2 if self.synth_rows_gtex else 3) * n * m)
        return int(1.05 * (synth + store) + 4 * n * g + 2 * 2 * n * m)


def default_variants() -> list[str]:
    """mean, pca_ridge, vae_ffnn and raviso's best model (share_net) once it is registered."""
    from raviso.models.variants import VARIANTS

    return ["mean", "pca_ridge", "vae_ffnn"] + (["share_net"] if "share_net" in VARIANTS else [])


def raviso_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("raviso")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from cli import main; main()"]


def synth_code(out: Path, plan: Plan) -> str:
    rows = plan.synth_rows_gtex or plan.rows_gtex
    return ("from raviso.synth.generate import generate, Preset\n"
            f"generate({str(out)!r}, preset=Preset('scale', {plan.rows_archs4}, {rows}, "
            f"{plan.genes}, {plan.isoforms}), seed={plan.seed}, overwrite=True)\n")


# The expand stage (only with --synth-rows-gtex): the synthesized labelled rows resampled up to
# --rows-gtex in a new store, streamed slab by slab (the ARCHS4 dataset is copied as it is).
# Replicate r of a sample gets id "<id>-R<r>" and donor "<donor>-R<r>", so donor-grouped folds stay
# valid; replicates are exact copies, which makes CV scores optimistic but leaves every shape,
# byte count and memory figure what the real row count gives. truth_heldout is not carried over.
EXPAND_CODE = """
import sys, numpy as np
from raviso.data import Store
from raviso.data.store import StoreBuilder
src, dst, rows = Store(sys.argv[1]), sys.argv[2], int(sys.argv[3])
meta = src.meta("gtex_gene")
n0 = len(meta)
pick = np.concatenate([np.arange(n0), np.random.default_rng(0).integers(0, n0, max(0, rows - n0))])[:rows]
rep = np.zeros(rows, np.int64); seen = {}
for k, i in enumerate(pick):
    rep[k] = seen.get(i, 0); seen[i] = rep[k] + 1
sid = [f"{meta.sample_id[i]}-R{r}" if r else str(meta.sample_id[i]) for i, r in zip(pick, rep)]
donor = [None if meta.donor[i] is None else (f"{meta.donor[i]}-R{r}" if r else meta.donor[i]) for i, r in zip(pick, rep)]
tissue = [meta.tissue[i] for i in pick]
with StoreBuilder(dst, src.genes, src.isoforms, src.isoform_gene) as sb:
    if src.has("archs4"):
        a = src.meta("archs4"); X = src.numpy("archs4")
        sb.dataset("archs4").write(X, a.sample_id.tolist(), a.tissue.tolist(), a.donor.tolist()); del X
    for name in ("gtex_gene", "gtex_isoform", "truth"):
        if not src.has(name):
            continue
        X0 = src.numpy(name); w = sb.dataset(name)
        for s in range(0, rows, 256):
            w.write(X0[pick[s:s + 256]], sid[s:s + 256], tissue[s:s + 256], donor[s:s + 256])
        del X0
print(rows)
"""


def write_new_samples(synth: Path, out: Path, n: int = PREDICT_ROWS) -> None:
    """The first `n` ARCHS4 rows as a course HDF5: gene expression of samples the labelled set
    (and so the model) never saw, in the course's file format."""
    import h5py

    src = next(synth.glob("archs4_gene_expression_norm_transposed.*"))
    with h5py.File(src, "r") as f, h5py.File(out, "w") as g:
        vlen = h5py.string_dtype("utf-8")
        g.create_dataset("expressions", data=f["expressions"][:n])
        g.create_dataset("row_names", data=f["row_names"][:n], dtype=vlen)
        g.create_dataset("col_names", data=f["col_names"][:], dtype=vlen)


def start_ray(quick: bool):
    """One local Ray for every stage (a child of this process, so the sampler sees all of it).
    The object store is capped at 2 GB: nothing in the pipeline needs more (the labelled matrices
    are memory-mapped files), and Ray's default (30% of RAM) would only reserve /dev/shm."""
    from raviso.core.ray_session import init_ray

    for attempt in range(3):    # a loaded machine can time Ray's start-up out: try again
        try:
            ray = init_ray(num_cpus=os.cpu_count(),
                           object_store_memory=(512 if quick else 2048) << 20)
            break
        except Exception:       # noqa: BLE001 - re-raised on the last attempt
            import ray as _ray

            _ray.shutdown()
            if attempt == 2:
                raise
            time.sleep(5)
    return ray, ray.get_runtime_context().gcs_address


def run_stage(name: str, argv: list[str], log: Path, echo) -> dict:
    from bench.memwatch import TreeSampler

    echo(f"[scale] {name}: {' '.join(argv[-12:])}")
    with TreeSampler(interval=0.5) as s, open(log, "w") as fh:
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT)
    res = s.result()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"stage {name} failed (exit {proc.returncode}); last lines of {log}:\n"
                           + "\n".join(tail))
    res["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return res


def run(plan: Plan, workdir: Path, quick: bool = False, keep: bool = False, echo=print) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < plan.disk_bytes():
        from raviso.core.errors import RavisoError

        raise RavisoError(f"needs ~{plan.disk_bytes() / 1e9:.0f} GB free, has "
                          f"{free / 1e9:.0f} GB (lower --rows-gtex / --rows-archs4)", workdir)
    plan.variants = plan.variants or default_variants()
    synth, store, run_dir = workdir / "synth", workdir / "store", workdir / "run"
    cv, model, new, pred = (workdir / "cv", workdir / "model", workdir / "new_samples.h5",
                            workdir / "predictions.parquet")
    for p in (synth, store, run_dir, cv, model):
        shutil.rmtree(p, ignore_errors=True)
    ray, address = start_ray(quick)
    rv = raviso_cmd()
    load0 = round(os.getloadavg()[0], 2)
    stages: dict[str, dict] = {}
    t0 = time.perf_counter()
    try:
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)

        def stage(name, argv):
            stages[name] = run_stage(name, argv, logs / f"{name}.log", echo)
            echo(f"[scale] {name}: {stages[name]['seconds']:.1f} s, peak "
                 f"{stages[name]['peak_memory_gb']:.2f} GB")
            # the figures so far survive a run that is stopped before its JSON line
            (workdir / "stages.json").write_text(json.dumps(stages, indent=1))

        stage("synth", [sys.executable, "-c", synth_code(synth, plan)])
        small = workdir / "store-synth" if plan.synth_rows_gtex else store
        shutil.rmtree(small, ignore_errors=True)
        stage("convert", rv + ["convert", str(synth), str(small), "--no-checksum"])
        write_new_samples(synth, new)
        if not keep:
            shutil.rmtree(synth)
        if plan.synth_rows_gtex:
            stage("expand", [sys.executable, "-c", EXPAND_CODE, str(small), str(store),
                             str(plan.rows_gtex)])
            if not keep:
                shutil.rmtree(small)
        stage("ingest", [sys.executable, "-c", INGEST_CODE, str(store), address,
                         str(min(INGEST_ROWS, plan.rows_archs4))])
        ingest = json.loads((logs / "ingest.log").read_text().strip().splitlines()[-1])
        stage("pretrain", rv + ["pretrain", str(store), "--out", str(run_dir), "--epochs", "1",
                                "--max-steps", str(plan.max_steps), "--no-gtex-eval", "--quiet",
                                "--seed", str(plan.seed), "--address", address] + plan.vae)
        stage("encode", rv + ["encode", str(run_dir), str(store), "--address", address])
        stage("cv", rv + ["cv", str(store), "--pretrained", str(run_dir), "--out", str(cv),
                          "--variants", ",".join(plan.variants), "--folds", str(plan.folds),
                          "--epochs", str(plan.epochs), "--seed", str(plan.seed), "--no-report",
                          "--target-dtype", plan.target_dtype, "--address", address])
        stage("report", rv + ["report", str(cv)])
        stage("fit", rv + ["fit", str(store), "--pretrained", str(run_dir), "--variant",
                           "vae_ffnn", "--epochs", str(plan.epochs), "--out", str(model),
                           "--target-dtype", plan.target_dtype, "--cv-folds", "0"])  # cv: above
        stage("predict", rv + ["predict", str(model), str(new), "--out", str(pred)])
    finally:
        ray.shutdown()
    results = json.loads((cv / "results.json").read_text())
    return {
        "bench": "scale", "quick": quick,
        "gtex_rows": plan.rows_gtex, "isoforms": plan.isoforms, "archs4_rows": plan.rows_archs4,
        "synth_gtex_rows": plan.synth_rows_gtex or plan.rows_gtex,
        "genes": plan.genes, "variants": plan.variants, "folds": plan.folds,
        "epochs": plan.epochs, "max_steps": plan.max_steps,
        "peak_memory_gb": max(s["peak_memory_gb"] for s in stages.values()),
        "memory_goal_gb": MEMORY_GOAL_GB,
        "total_seconds": round(time.perf_counter() - t0, 1),
        "loadavg_1m_before": load0, "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "cv_mse": {v: s["mse_mean"] for v, s in results["summary"].items()},
        # training throughput at width: training rows per second of each variant's fit (one fit
        # = `epochs` passes plus its fixed costs: PCA, share fitting, ...)
        "cv_fit_rows_per_s": fit_rates(results),
        "ingest_stream_rows_s": round(ingest["stream_rows_s"]),
        "ingest_held_rows_s": round(ingest["held_rows_s"]),
        "ingest_vs_gpu": {f"{g}/s": {"stream": round(ingest["stream_rows_s"] / g, 2),
                                     "held": round(ingest["held_rows_s"] / g, 2)}
                          for g in GPU_SAMPLES_PER_S},
        "cv_max_concurrent": results["tune"]["max_concurrent_trials"],
        "target_dtype": results["config"].get("target_dtype"),
        "stages": stages,
    }


def fit_rates(results: dict) -> dict:
    out = {}
    epochs = results["config"].get("epochs") or 1
    for v in results["config"]["variants"]:
        ok = [t for t in results["trials"] if t["variant"] == v and t["status"] == "ok"]
        if ok:
            out[v] = round(sum(t["n_train"] * epochs for t in ok)
                           / sum(t["fit_seconds"] for t in ok), 1)
    return out


def table(res: dict) -> str:
    cols = ("seconds", "peak_memory_gb", "peak_rss_sum_gb", "object_store_peak_gb", "read_gb",
            "written_gb", "cpu_seconds", "loadavg_1m")
    head = ["stage"] + list(cols)
    rows = [[name] + [str(st.get(c, "")) for c in cols] for name, st in res["stages"].items()]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(x.rjust(w) if i else x.ljust(w)  # noqa: E731
                              for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def main(quick: bool = False, rows_gtex: int | None = None, rows_archs4: int | None = None,
         workdir=None, keep: bool = False, max_steps: int | None = None,
         epochs: int | None = None, variants: str | None = None, target_dtype: str = "auto",
         synth_rows_gtex: int | None = None, echo=print) -> dict:
    import tempfile

    plan = Plan.quick() if quick else Plan()
    for key, val in (("rows_gtex", rows_gtex), ("rows_archs4", rows_archs4),
                     ("max_steps", max_steps), ("epochs", epochs),
                     ("synth_rows_gtex", synth_rows_gtex)):
        if val is not None:
            setattr(plan, key, int(val))
    plan.target_dtype = target_dtype
    if variants:
        plan.variants = [v.strip() for v in variants.split(",") if v.strip()]
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="raviso-scale-")) if own else Path(workdir)
    try:
        res = run(plan, wd, quick=quick, keep=keep, echo=echo)
    finally:
        if own and not keep:
            shutil.rmtree(wd, ignore_errors=True)
    echo(f"raviso bench scale: GTEx {plan.rows_gtex:,} x {plan.isoforms:,} isoforms, ARCHS4 "
         f"{plan.rows_archs4:,} x {plan.genes:,} genes (load average "
         f"{res['loadavg_1m_before']} -> {res['loadavg_1m_after']})")
    echo(table(res))
    echo(f"peak memory (driver + all Ray workers, PSS) {res['peak_memory_gb']:.2f} GB "
         f"(goal <= {MEMORY_GOAL_GB:g} GB); total {res['total_seconds']:.0f} s")
    echo(json.dumps(res))
    return res
