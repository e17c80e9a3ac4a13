"""`raviso pretrain STORE --out RUN`: the driver of DDP pretraining of the VAE on Ray Train over
Ray Data shards (`train_func` in `worker`), with live progress, checkpoints, --resume and an
atomic --overwrite. Data shuffling, validation, the RUN layout and resume: docs/stages.md.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

from ..core.atomic import (atomic_file, check_not_input, check_replaceable, remove_path,
                           replace_path, tmp_sibling)
from ..core.errors import RavisoError
from ..models.vae.model import VAEConfig
from . import runspec
from .config import PretrainConfig, TrainConfig
from .datasets import build_datasets
from .display import Display, sink_class
from .worker import train_func


# -- driver ------------------------------------------------------------------------------------


def resolve_configs(run_dir: Path, resume: bool, model: VAEConfig, train: TrainConfig,
                    given) -> tuple[dict, TrainConfig]:
    """(VAEConfig fields without n_genes, TrainConfig). On --resume the saved run.json is the base
    and only the `given` options override it; the model's shape may not change."""
    mopts = {k: v for k, v in model.to_dict().items() if k != "n_genes"}
    if not resume:
        return mopts, train
    saved = json.loads((run_dir / "run.json").read_text())
    for k in sorted(set(given) & set(mopts)):
        v, have = mopts[k], saved["model"].get(k)
        if v != have:
            raise RavisoError(f"--resume cannot change the model ({k}: run has {have}, got "
                              f"{tuple(v) if isinstance(v, list) else v})", run_dir)
    override = {k: getattr(train, k) for k in given if k in TrainConfig.__dataclass_fields__}
    return saved["model"], replace(TrainConfig.from_dict(saved["train"]), **override)


def changed_fields(*configs) -> set[str]:
    """The fields of `configs` that differ from their defaults (the options a caller gave)."""
    return {f.name for c in configs for f in fields(c)
            if getattr(c, f.name) != getattr(type(c)(), f.name)}


def pretrain(store_path, out, model: VAEConfig | None = None, train: TrainConfig | None = None,
             run: PretrainConfig | None = None, *, given=None) -> Path:
    """Train and write a finished RUN directory; returns its path.

    With `run.resume`, the saved run's configs are the base and the `given` option names (default:
    the fields that differ from their defaults) override them. A new RUN is a new Ray Train run
    (`runspec.new_identity`); with `run.overwrite` it is built in a temporary sibling that replaces
    the old RUN only when finished (a failure keeps the old one).
    """
    model, train, run = model or VAEConfig(), train or TrainConfig(), run or PretrainConfig()
    given = changed_fields(model, train) if given is None else set(given)
    run_dir, store = _prepare(store_path, out, run)
    mopts, tc = resolve_configs(run_dir, run.resume, model, train, given)
    if tc.max_failures is None:
        tc = replace(tc, max_failures=runspec.default_max_failures(run.address))
    mc = VAEConfig(**{**mopts, "n_genes": len(store.genes)})
    return _train_run(store, run_dir, mc, tc, run)


def _prepare(store_path, out, run: PretrainConfig):
    """(RUN path, Store) after the checks that need no Ray."""
    from ..data import Store

    run_dir = Path(out).resolve()
    store = Store(store_path)
    store.require("archs4")
    if run.resume:
        runspec.read_spec(run_dir)
    if not run.resume and run_dir.exists():
        check_not_input(run_dir, (store_path,))
        if not run.overwrite:
            raise RavisoError("already exists (pass --resume to continue it or --overwrite to "
                              "replace it)", run_dir)
        check_replaceable(run_dir)
    if not run_dir.parent.is_dir():
        raise RavisoError("parent directory does not exist", run_dir.parent)
    return run_dir, store


def _train_run(store, run_dir: Path, mc: VAEConfig, tc: TrainConfig, run: PretrainConfig) -> Path:
    """Start Ray, train (in a sibling with --overwrite), write the finished RUN."""
    resume, address, storage_path = run.resume, run.address, run.storage
    spec = runspec.read_spec(run_dir) if resume else None
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
        result = _fit(ray, store, work, mc, tc, storage, identity, run.quiet)
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
    sink = sink_class().remote()
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
    display = Display(sink, work, tc.epochs, rows, quiet)
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
    from ..core.inventory import sha256 as file_sha256

    _write_text(run_dir / "config.json", json.dumps({
        "run_name": run_name, "run_id": run_id, "model": mc.to_dict(), "train": asdict(tc),
        "epochs_done": epoch, "store": store_uri, "weights": "model.safetensors",
        "weights_sha256": file_sha256(run_dir / "model.safetensors"), "genes": "genes.txt",
        "files": {n: [(run_dir / n).stat().st_size, file_sha256(run_dir / n)]   # `load_run`
                  for n in ("genes.txt", "model.safetensors", "metrics.jsonl")},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return run_dir
