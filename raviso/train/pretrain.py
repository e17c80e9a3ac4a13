"""`raviso pretrain STORE --out RUN`: DDP pretraining of the VAE on Ray Train over Ray Data shards.

Read top to bottom: configs, the data pipeline, the per-worker `train_func` (the plain loop of
`raviso.models.loop` plus Ray's three additions: `prepare_model`, dataset shards, `ray.train.report`),
then the driver `pretrain()` that starts Ray, runs the `TorchTrainer`, shows live progress and writes
the finished RUN.

Data and shuffling. Every epoch each worker streams its `streaming_split` shard of ``STORE/archs4``
(equal shards: at most workers-1 rows are left out of an epoch). A global `random_shuffle` of 12.7 GB
would move the whole compendium through the object store every epoch, and `randomize_block_order`
is an all-to-all that materialises every block first; so the default ``shuffle="files"`` re-draws the
Parquet FILE order every epoch (`FileShuffleConfig(reseed_after_execution=True)`, the store rotates
files every 8 row groups, ~13.6k rows) and mixes rows in a per-worker local shuffle buffer
(``shuffle_buffer`` rows, default 2048: ~155 MB at 18,965 genes). Reads of several files run
concurrently, which interleaves them further. ``shuffle="global"`` (exact, expensive) and ``"none"``
are available.

Validation. A deterministic slice of ARCHS4 (crc32(sample_id) / 2^32 < val_fraction; independent
of the seed, so runs are scored on the same samples) is excluded from training and scored each epoch,
and so is GTEx gene expression (``STORE/gtex_gene``, the same canonical gene order) when present.
Validation uses a fixed noise seed and full KL weight, so the curve shows the true ELBO.

The RUN directory::

    RUN/run.json          model + training config, store, written at the start (used by --resume)
    RUN/checkpoints/      Ray Train storage: one checkpoint per epoch (model, optimizer, epoch,
                          metrics so far), the last `keep_checkpoints` kept
    RUN/metrics.jsonl     one JSON object per finished epoch, rewritten as epochs complete
    RUN/model.safetensors final weights (plain state_dict tensors)
    RUN/genes.txt         the model's input gene order
    RUN/pretrain_*.png    ELBO, reconstruction and KL per epoch (train, ARCHS4 val, GTEx)
    RUN/config.json       written LAST: its presence is what makes a RUN "finished"
                          (`raviso.train.runs.load_run` refuses a RUN without it)

Resume. ``--resume`` reuses RUN/checkpoints under the same Ray Train run name, so Train restores its
checkpoint manager and `ray.train.get_checkpoint()` returns the last checkpoint; `FailureConfig`
restarts within one command go through the same path. The checkpoint carries the metrics history, so
metrics.jsonl neither loses nor repeats an epoch after a restart.

Avoiding the Train + Data hang on small machines: Ray Data only schedules read tasks from CPUs the
trainer does not hold. A local Ray started here gets one logical CPU more than the workers reserve,
and workers may reserve fractional CPUs (``cpus_per_worker=0.5``). Torch threads per worker default
to the node's cores divided by the workers on that node, independent of the logical reservation.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.atomic import atomic_file
from ..core.errors import RavisoError
from ..data.store import rows_per_group
from ..models.vae import VAEConfig

RAY_RUN_NAME = "train"
SHUFFLES = ("files", "global", "none")


@dataclass
class TrainConfig:
    """How to train (the model's shape lives in `VAEConfig`)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-4
    warmup_epochs: int = 0
    val_fraction: float = 0.02
    seed: int = 0
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpu: bool = False
    threads: int = 0              # torch threads per worker; 0 = node cores / workers on the node
    shuffle: str = "files"
    shuffle_buffer: int = 2048
    materialize: str = "auto"     # auto | always | never: hold datasets in the object store
    max_failures: int = 0
    keep_checkpoints: int = 2
    eval_gtex: bool = True
    max_steps: int = 0            # stop after this many optimizer steps in all (0: no limit)

    def __post_init__(self):
        checks = [(self.epochs >= 1, "--epochs must be >= 1"),
                  (self.batch_size >= 1, "--batch-size must be >= 1"),
                  (self.lr > 0, "--lr must be > 0"),
                  (self.warmup_epochs >= 0, "--warmup-epochs must be >= 0"),
                  (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
                  (self.workers >= 1, "--workers must be >= 1"),
                  (self.cpus_per_worker > 0, "--cpus-per-worker must be > 0"),
                  (self.shuffle in SHUFFLES, f"--shuffle must be one of {', '.join(SHUFFLES)}"),
                  (self.materialize in ("auto", "always", "never"),
                   "--materialize must be auto, always or never"),
                  (self.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1"),
                  (self.max_steps >= 0, "--max-steps must be >= 0"),
                  (self.max_failures >= -1, "--max-failures must be >= -1")]
        for ok, msg in checks:
            if not ok:
                raise RavisoError(msg)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# -- data --------------------------------------------------------------------------------------
def is_validation(sample_ids, fraction: float) -> np.ndarray:
    """Deterministic held-out mask: crc32 of the sample id, stable across processes and runs."""
    if fraction <= 0:
        return np.zeros(len(sample_ids), bool)
    cut = fraction * 2.0 ** 32
    return np.fromiter((zlib.crc32(str(s).encode()) < cut for s in sample_ids), bool,
                       count=len(sample_ids))


def _keep_split(table, fraction: float, want_val: bool):
    """map_batches body: the rows of one side of the split, expression column only."""
    ids = table.column("sample_id").to_pylist()
    mask = is_validation(ids, fraction)
    if not want_val:
        mask = ~mask
    return table.select(["expr"]).filter(pa.array(mask))


def build_datasets(store, tc: TrainConfig, object_store_bytes: float = 0) -> dict:
    """Ray Datasets for the trainer: "train" (reshuffled per epoch), "val", "gtex" (if present).

    Small stores (everything under a quarter of the object store with ``materialize="auto"``) are
    read ONCE by the driver with pyarrow and put in the object store (`ray.data.from_arrow`, no
    read tasks, whose worker start-up costs seconds on a small machine); training then reshuffles
    by `randomize_block_order` (cheap on in-memory blocks) plus the local buffer. Larger stores
    stream from Parquet every epoch with the file order re-drawn (see the module docstring).
    """
    import ray.data
    from ray.data import FileShuffleConfig

    total = sum(store.n_rows(n) * len(store.genes) * 4 for n in ("archs4", "gtex_gene")
                if store.has(n))
    hold = tc.materialize == "always" or (tc.materialize == "auto"
                                          and total < 0.25 * object_store_bytes)
    want_gtex = tc.eval_gtex and store.has("gtex_gene")
    if hold:
        def held(name, cols, want_val=None):
            table = pq.ParquetDataset(store.path_of(name), filesystem=store.fs).read(columns=cols)
            if want_val is not None:
                table = _keep_split(table, tc.val_fraction, want_val)
            step = rows_per_group(len(store.genes))
            return ray.data.from_arrow([table.slice(i, step)
                                        for i in range(0, max(1, table.num_rows), step)])

        cols = ["sample_id", "expr"]
        datasets = {"train": held("archs4", cols, False)}
        if tc.val_fraction > 0:
            datasets["val"] = held("archs4", cols, True)
        if want_gtex:
            datasets["gtex"] = held("gtex_gene", ["expr"])
        if tc.shuffle == "files":
            datasets["train"] = datasets["train"].randomize_block_order()
    else:
        shuffle = (FileShuffleConfig(seed=tc.seed, reseed_after_execution=True)
                   if tc.shuffle == "files" else None)

        def split(want_val, **read):
            ds = store.ray_dataset("archs4", **read).select_columns(["sample_id", "expr"])
            return ds.map_batches(
                _keep_split, batch_format="pyarrow", batch_size=None,
                fn_kwargs={"fraction": tc.val_fraction, "want_val": want_val})

        datasets = {"train": split(False, shuffle=shuffle)}
        if tc.val_fraction > 0:
            datasets["val"] = split(True)
        if want_gtex:
            datasets["gtex"] = store.ray_dataset("gtex_gene").select_columns(["expr"])
    if tc.shuffle == "global":
        datasets["train"] = datasets["train"].random_shuffle()
    return datasets


def _expr(batches):
    for b in batches:
        yield b["expr"]


# -- per-worker training function ------------------------------------------------------------
def train_func(cfg: dict) -> None:
    """Runs on every Ray Train worker. `cfg`: model, train (dicts), sink (actor handle or None)."""
    import tempfile

    import ray.train
    import torch
    from ray.train.torch import get_device, prepare_model

    from ..models.loop import evaluate, kl_weight, make_optimizer, train_epoch, unwrap
    from ..models.vae import VAE

    mc, tc, sink = VAEConfig.from_dict(cfg["model"]), TrainConfig.from_dict(cfg["train"]), cfg["sink"]
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = get_device()
    if device.type == "cpu":
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1)
                                                // max(1, ctx.get_local_world_size())))

    torch.manual_seed(tc.seed)
    model = VAE(mc)
    optimizer_state, start_epoch, history = None, 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            model.load_state_dict(torch.load(Path(d) / "model.pt", weights_only=True))
            optimizer_state = torch.load(Path(d) / "optimizer.pt", weights_only=True)
            state = json.loads((Path(d) / "state.json").read_text())
            history = [json.loads(line) for line in (Path(d) / "metrics.jsonl").read_text().splitlines()
                       if line.strip()]
        start_epoch = int(state["epoch"])
    model = prepare_model(model)        # moves to device; DDP (gloo/nccl) when workers > 1
    optimizer = make_optimizer(model, tc.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if rank == 0 and sink is not None:
        sink.reset.remote(history, start_epoch)

    shards = {name: ray.train.get_dataset_shard(name) for name in ("train", "val", "gtex")
              if name in cfg["datasets"]}

    def progress(step, n):
        if rank == 0 and sink is not None and step % 10 == 0:
            sink.step.remote(epoch, n * ctx.get_world_size())

    steps = int(history[-1].get("steps", 0)) if history else 0
    for epoch in range(start_epoch, tc.epochs):
        torch.manual_seed(tc.seed * 100_003 + epoch * 1009 + rank)   # reproducible after resume
        w = kl_weight(epoch, tc.warmup_epochs)
        batches = shards["train"].iter_torch_batches(
            batch_size=tc.batch_size, dtypes=torch.float32,
            local_shuffle_buffer_size=tc.shuffle_buffer if tc.shuffle == "files" else None,
            local_shuffle_seed=None)
        t0 = time.time()
        # --max-steps (bounded benchmarks): every worker stops after the same number of steps
        batch_iter = _expr(batches) if not tc.max_steps else itertools.islice(
            _expr(batches), max(0, tc.max_steps - steps))
        taken = [0]

        def on_step(step, n):
            taken[0] = step + 1
            progress(step, n)

        tr = train_epoch(model, optimizer, batch_iter, w, device, on_step)
        steps += taken[0]
        record = {"epoch": epoch + 1, "kl_weight": w, **tr.to_dict("train_"), "steps": steps}
        record["samples_per_s"] = record.pop("train_samples_per_s")
        for name in ("val", "gtex"):
            if name in shards:
                ev = evaluate(model, _expr(shards[name].iter_torch_batches(
                    batch_size=max(256, tc.batch_size), dtypes=torch.float32)), seed=tc.seed,
                    device=device)
                record.update({f"{name}_{k}": v for k, v in ev.to_dict().items()
                               if k in ("samples", "elbo", "recon", "kl")})
        record["epoch_seconds"] = time.time() - t0
        history.append(record)
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                torch.save(unwrap(model).state_dict(), Path(d) / "model.pt")
                torch.save(optimizer.state_dict(), Path(d) / "optimizer.pt")
                (Path(d) / "metrics.jsonl").write_text(
                    "".join(json.dumps(r) + "\n" for r in history))
                (Path(d) / "state.json").write_text(json.dumps(
                    {"epoch": epoch + 1, "model": mc.to_dict(), "train": asdict(tc)}))
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report(record, checkpoint=checkpoint,
                             checkpoint_dir_name=f"checkpoint_epoch-{epoch + 1:05d}")
        if rank == 0 and sink is not None:
            sink.epoch.remote(record)
        if tc.max_steps and steps >= tc.max_steps:
            break


# -- driver ------------------------------------------------------------------------------------
def _sink_class():
    import ray

    @ray.remote(num_cpus=0)
    class MetricsSink:
        """Collects per-epoch records and step progress from rank 0 for the driver's display."""

        def __init__(self):
            self.events = []

        def reset(self, history, start_epoch):
            self.events.append(("reset", history, start_epoch))

        def step(self, epoch, samples):
            self.events.append(("step", epoch, samples))

        def epoch(self, record):
            self.events.append(("epoch", record))

        def drain(self):
            ev, self.events = self.events, []
            return ev

    return MetricsSink


class _Display:
    """Polls the sink while `fit` runs: rich progress bars plus one printed line per epoch, and
    RUN/metrics.jsonl rewritten (deduplicated by epoch) whenever an epoch completes."""

    def __init__(self, sink, run_dir: Path, epochs: int, rows_per_epoch: int, quiet: bool):
        self.sink, self.run_dir, self.epochs = sink, run_dir, epochs
        self.rows = rows_per_epoch
        self.quiet = quiet
        self.records: dict[int, dict] = {}
        self.stop = threading.Event()

    def write_metrics(self):
        with atomic_file(self.run_dir / "metrics.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(self.records[e]) + "\n"
                                   for e in sorted(self.records)))

    def handle(self, ev, progress, t_ep, t_st, console):
        if ev[0] == "reset":
            self.records = {int(r["epoch"]): r for r in ev[1]}
            if progress is not None:
                progress.update(t_ep, completed=ev[2])
            self.write_metrics()
        elif ev[0] == "step" and progress is not None:
            progress.update(t_st, completed=min(ev[2], self.rows),
                            description=f"epoch {ev[1] + 1}")
        elif ev[0] == "epoch":
            r = ev[1]
            self.records[int(r["epoch"])] = r
            self.write_metrics()
            if progress is not None:
                progress.update(t_ep, completed=r["epoch"])
                progress.update(t_st, completed=0)
            if console is not None:
                console.print(_epoch_line(r))

    def run(self):
        import ray

        progress = t_ep = t_st = console = None
        if not self.quiet:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)

            console = Console(stderr=True)
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
            t_ep = progress.add_task("epochs", total=self.epochs)
            t_st = progress.add_task("epoch 1", total=max(1, self.rows))
            progress.start()
        try:
            while True:
                done = self.stop.is_set()
                try:
                    events = ray.get(self.sink.drain.remote(), timeout=30)
                except Exception:  # noqa: BLE001 - display must never kill training
                    events = []
                for ev in events:
                    self.handle(ev, progress, t_ep, t_st, console)
                if done:
                    break
                self.stop.wait(0.5)
        finally:
            if progress is not None:
                progress.stop()


def _epoch_line(r: dict) -> str:
    parts = [f"epoch {r['epoch']:>3}", f"ELBO train {r['train_elbo']:.1f}",
             f"recon {r['train_recon']:.1f}", f"kl {r['train_kl']:.2f}"]
    for name in ("val", "gtex"):
        if f"{name}_elbo" in r:
            parts.append(f"{name} {r[f'{name}_elbo']:.1f}")
    parts.append(f"{r['samples_per_s']:.0f}/s")
    return " ".join(parts)


def resolve_configs(run_dir: Path, resume: bool, model_opts: dict, train_opts: dict):
    """(VAEConfig without n_genes filled, TrainConfig). On --resume the saved run.json is the base
    and only options the user gave override it; the model's shape may not change."""
    model_opts = {k: v for k, v in model_opts.items() if v is not None}
    train_opts = {k: v for k, v in train_opts.items() if v is not None}
    if not resume:
        return model_opts, TrainConfig(**train_opts)
    saved = json.loads((run_dir / "run.json").read_text())
    for k, v in model_opts.items():
        have = saved["model"].get(k)
        if (list(v) if isinstance(v, (tuple, list)) else v) != have:
            raise RavisoError(f"--resume cannot change the model ({k}: run has {have}, got {v})",
                              run_dir)
    return saved["model"], replace(TrainConfig.from_dict(saved["train"]), **train_opts)


def pretrain(store_path, out, model_opts: dict | None = None, train_opts: dict | None = None, *,
             resume: bool = False, overwrite: bool = False, address: str | None = None,
             quiet: bool = False, storage_path: str | None = None, run_name: str | None = None):
    """Train and write a finished RUN directory; returns its path.

    `model_opts`: VAEConfig fields (hidden, latent_dim, beta, learned_variance); `train_opts`:
    TrainConfig fields. None values mean "default" (or "as saved" with `resume`).
    """
    import shutil

    from ..data.reader import Store

    run_dir = Path(out).resolve()
    store = Store(store_path)
    store.require("archs4")
    if resume:
        if not (run_dir / "run.json").is_file():
            raise RavisoError("nothing to resume (no run.json)", run_dir)
    elif run_dir.exists() and not overwrite:
        raise RavisoError("already exists (pass --resume to continue it or --overwrite to "
                          "replace it)", run_dir)
    if not run_dir.parent.is_dir():
        raise RavisoError("parent directory does not exist", run_dir.parent)

    mopts, tc = resolve_configs(run_dir, resume, model_opts or {}, train_opts or {})
    try:
        mc = VAEConfig(**{**mopts, "n_genes": len(store.genes)})
    except (TypeError, ValueError) as e:
        raise RavisoError(str(e)) from None
    ray = _start_ray(address, tc)     # before RUN exists: an unreachable cluster leaves nothing
    if resume:
        saved_genes = (run_dir / "genes.txt").read_text().splitlines()
        if saved_genes != list(store.genes):
            raise RavisoError("the store's genes differ from the run's genes.txt (resume with the "
                              "store the run was started on)", store.uri)
        (run_dir / "config.json").unlink(missing_ok=True)       # no longer finished
    else:
        if run_dir.exists():                                    # --overwrite, options valid
            shutil.rmtree(run_dir)
        run_dir.mkdir()
        _write_text(run_dir / "genes.txt", "".join(g + "\n" for g in store.genes))
    _write_text(run_dir / "run.json", json.dumps({"model": mc.to_dict(), "train": asdict(tc),
                                                  "store": store.uri}, indent=1))
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    quiet_ray_data()
    datasets = build_datasets(store, tc, ray.cluster_resources().get("object_store_memory", 0))
    sink = _sink_class().remote()
    storage = storage_path or str(run_dir / "checkpoints")
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"model": mc.to_dict(), "train": asdict(tc), "sink": sink,
                           "datasets": sorted(datasets)},
        scaling_config=ScalingConfig(num_workers=tc.workers, use_gpu=tc.gpu,
                                     resources_per_worker={"CPU": tc.cpus_per_worker}),
        run_config=RunConfig(name=run_name or RAY_RUN_NAME, storage_path=storage,
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=tc.keep_checkpoints)),
        datasets=datasets,
    )
    rows = math.ceil(store.n_rows("archs4") * (1 - tc.val_fraction))
    display = _Display(sink, run_dir, tc.epochs, rows, quiet)
    thread = threading.Thread(target=display.run, daemon=True)
    thread.start()
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        cause = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise RavisoError(f"training failed ({cause}); the last checkpoint is kept: continue "
                          "with --resume", run_dir) from e
    finally:
        display.stop.set()
        thread.join(timeout=60)
        ray.kill(sink)
    if result.checkpoint is None:
        raise RavisoError("training produced no checkpoint", run_dir)
    return finish_run(run_dir, result.checkpoint, mc, tc, store.uri, run_name=run_dir.name)


def _start_ray(address, tc: TrainConfig):
    """Attach to `address`, or start a local Ray with one logical CPU beyond what the workers
    reserve, so Ray Data always has a budget (the Train + Data hang)."""
    need = tc.workers * tc.cpus_per_worker
    ray = connect(address, None if address else int(max(os.cpu_count() or 1, math.ceil(need) + 1)))
    have = ray.cluster_resources().get("CPU", 0)
    if need > have - 0.5:      # Ray Data needs CPUs the trainer does not hold, or it waits forever
        raise RavisoError(f"{tc.workers} workers x {tc.cpus_per_worker} CPUs = {need:g} of the Ray "
                          f"cluster's {have:g} CPUs leaves Ray Data less than half a CPU to read "
                          "with (lower --workers or --cpus-per-worker, e.g. 0.5)")
    if tc.gpu and ray.cluster_resources().get("GPU", 0) < tc.workers:
        raise RavisoError(f"--gpu with {tc.workers} workers needs {tc.workers} GPUs, the Ray "
                          f"cluster has {ray.cluster_resources().get('GPU', 0):g}")
    return ray


def quiet_ray_data() -> None:
    """Ray Data logs per-operator progress at INFO on a non-terminal stdout, burying the per-epoch
    lines; keep its warnings (and its progress bars on a terminal)."""
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)


def connect(address: str | None, num_cpus: int | None = None):
    """Start or attach to Ray (`raviso.core.ray_session.init_ray`)."""
    from ..core.ray_session import init_ray

    return init_ray(address=address, num_cpus=num_cpus)


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def finish_run(run_dir: Path, checkpoint, mc: VAEConfig, tc: TrainConfig, store_uri: str,
               run_name: str) -> Path:
    """Final model, metrics and plots from the last checkpoint; config.json last of all."""
    import torch
    from safetensors.torch import save_file

    from ..core.plots import plot_pretraining

    with checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "model.pt", weights_only=True)
        metrics = (Path(d) / "metrics.jsonl").read_text()
        epoch = json.loads((Path(d) / "state.json").read_text())["epoch"]
    with atomic_file(run_dir / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                  metadata={"format": "pt", "raviso": "vae"})
    _write_text(run_dir / "metrics.jsonl", metrics)
    plot_pretraining(run_dir, run_dir)
    _write_text(run_dir / "config.json", json.dumps({
        "run_name": run_name, "model": mc.to_dict(), "train": asdict(tc), "epochs_done": epoch,
        "store": store_uri, "weights": "model.safetensors", "genes": "genes.txt",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return run_dir
