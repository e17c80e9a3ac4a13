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

    RUN/run.json          model + training config, store, storage, run id and Ray run name,
                          written at the start (used by --resume; `raviso.train.runspec`)
    RUN/checkpoints/<ray run name>/  Ray Train storage (or --storage): one checkpoint per epoch
                          (model, optimizer, epoch, run id, metrics so far), the last
                          `keep_checkpoints` kept
    RUN/metrics.jsonl     one JSON object per finished epoch, rewritten as epochs complete
    RUN/model.safetensors final weights (plain state_dict tensors)
    RUN/genes.txt         the model's input gene order
    RUN/pretrain_*.png    ELBO, reconstruction and KL per epoch (train, ARCHS4 val, GTEx)
    RUN/config.json       written LAST: its presence is what makes a RUN "finished"
                          (`raviso.train.runs.load_run` refuses a RUN without it)

Resume. Every new RUN is its own Ray Train run (a fresh name, `raviso.train.runspec`), so a shared
``--storage`` or an ``--overwrite`` never continues another run. ``--resume`` reuses the storage and
run name recorded in run.json, so Train restores its checkpoint manager and
`ray.train.get_checkpoint()` returns the last checkpoint; it refuses checkpoints of another run and
a restart from nothing over recorded epochs. `FailureConfig` restarts within one command go through
the same path (default: none on a local Ray, 3 on a cluster). The checkpoint carries the metrics
history, so metrics.jsonl neither loses nor repeats an epoch after a restart. ``--overwrite``
trains the new RUN in a temporary sibling and swaps it in only when finished.

Avoiding the Train + Data hang on small machines: Ray Data only schedules read tasks from CPUs the
trainer does not hold. A local Ray started here gets one logical CPU more than the workers reserve,
and workers may reserve fractional CPUs (``cpus_per_worker=0.5``). Torch threads per worker default
to the node's cores divided by the workers on that node, independent of the logical reservation.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..core.atomic import remove_path, replace_path, tmp_sibling, atomic_file, check_replaceable
from ..core.errors import RavisoError
from ..models.vae import VAEConfig
from .config import TrainConfig
from .datasets import build_datasets
from .display import _Display, _sink_class
from .worker import train_func


# -- driver ------------------------------------------------------------------------------------


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
             quiet: bool = False, storage_path: str | None = None):
    """Train and write a finished RUN directory; returns its path.

    `model_opts`: VAEConfig fields (hidden, latent_dim, beta, learned_variance); `train_opts`:
    TrainConfig fields. None values mean "default" (or "as saved" with `resume`). A new RUN is a
    new Ray Train run (`runspec.new_identity`); with `overwrite` it is built in a temporary sibling
    that replaces the old RUN only when finished (a failure keeps the old one).
    """
    from ..data import Store
    from . import runspec

    run_dir = Path(out).resolve()
    store = Store(store_path)
    store.require("archs4")
    spec = runspec.read_spec(run_dir) if resume else None
    if not resume and run_dir.exists():
        if not overwrite:
            raise RavisoError("already exists (pass --resume to continue it or --overwrite to "
                              "replace it)", run_dir)
        check_replaceable(run_dir)
    if not run_dir.parent.is_dir():
        raise RavisoError("parent directory does not exist", run_dir.parent)

    mopts, tc = resolve_configs(run_dir, resume, model_opts or {}, train_opts or {})
    if tc.max_failures is None:
        tc = replace(tc, max_failures=runspec.default_max_failures(address))
    try:
        mc = VAEConfig(**{**mopts, "n_genes": len(store.genes)})
    except (TypeError, ValueError) as e:
        raise RavisoError(str(e)) from None
    ray = _start_ray(address, tc)     # before RUN exists: an unreachable cluster leaves nothing
    if resume:
        work, storage = run_dir, runspec.storage_for(run_dir, spec, storage_path)
        saved_genes = (run_dir / "genes.txt").read_text().splitlines()
        if saved_genes != list(store.genes):
            raise RavisoError("the store's genes differ from the run's genes.txt (resume with the "
                              "store the run was started on)", store.uri)
        runspec.check_resumable(run_dir, spec, storage, mc.to_dict())
        identity = {"run_id": spec.get("run_id"), "ray_run_name": runspec.ray_run_name(spec)}
        recorded = storage_path or spec.get("storage")
        (run_dir / "config.json").unlink(missing_ok=True)       # no longer finished
    else:
        work = tmp_sibling(run_dir) if run_dir.exists() else run_dir   # --overwrite: beside it
        work.mkdir()
        identity, recorded = runspec.new_identity(run_dir), storage_path
        storage = runspec.storage_for(work, {}, storage_path)
        _write_text(work / "genes.txt", "".join(g + "\n" for g in store.genes))
    try:
        _write_text(work / "run.json", json.dumps(
            {"model": mc.to_dict(), "train": asdict(tc), "store": store.uri,
             "storage": recorded if recorded is None or "://" in recorded
             else str(Path(recorded).absolute()), **identity}, indent=1))
        result = _fit(ray, store, work, mc, tc, storage, identity, quiet)
        finish_run(work, result.checkpoint, mc, tc, store.uri, run_name=run_dir.name,
                   run_id=identity["run_id"])
    except BaseException:
        if work != run_dir:
            remove_path(work)
        raise
    if work != run_dir:
        replace_path(work, run_dir)
    return run_dir


def _fit(ray, store, work: Path, mc: VAEConfig, tc: TrainConfig, storage: str, identity: dict,
         quiet: bool):
    """Run the TorchTrainer with live progress; the Ray Train result (with a checkpoint)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    quiet_ray_data()
    datasets = build_datasets(store, tc, ray.cluster_resources().get("object_store_memory", 0))
    sink = _sink_class().remote()
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"model": mc.to_dict(), "train": asdict(tc), "sink": sink,
                           "datasets": sorted(datasets), "run_id": identity["run_id"]},
        scaling_config=ScalingConfig(num_workers=tc.workers, use_gpu=tc.gpu,
                                     resources_per_worker={"CPU": tc.cpus_per_worker}),
        run_config=RunConfig(name=identity["ray_run_name"], storage_path=storage,
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=tc.keep_checkpoints)),
        datasets=datasets,
    )
    rows = math.ceil(store.n_rows("archs4") * (1 - tc.val_fraction))
    display = _Display(sink, work, tc.epochs, rows, quiet)
    thread = threading.Thread(target=display.run, daemon=True)
    thread.start()
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        cause = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise RavisoError(f"training failed ({cause}); the last checkpoint is kept: continue "
                          "with --resume", work) from e
    finally:
        display.stop.set()
        thread.join(timeout=60)
        ray.kill(sink)
    if result.checkpoint is None:
        raise RavisoError("training produced no checkpoint", work)
    return result


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
               run_name: str, run_id: str | None = None) -> Path:
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
    from .runs import file_sha256

    _write_text(run_dir / "config.json", json.dumps({
        "run_name": run_name, "run_id": run_id, "model": mc.to_dict(), "train": asdict(tc),
        "epochs_done": epoch, "store": store_uri, "weights": "model.safetensors",
        "weights_sha256": file_sha256(run_dir / "model.safetensors"), "genes": "genes.txt",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return run_dir
