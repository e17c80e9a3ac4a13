"""The function every Ray Train worker runs for `raviso pretrain`: the shared epoch loop
(`raviso.models.vae.loop`) on its dataset shard, plus Ray's three additions: `prepare_model` (DDP),
`get_dataset_shard` and `ray.train.report` with a checkpoint each epoch (resumable)."""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from ..models.vae.model import VAEConfig
from .config import TrainConfig
from .datasets import expression_batches


def train_func(cfg: dict) -> None:
    """Runs on every Ray Train worker. `cfg`: model, train (dicts), sink (actor handle or None)."""
    import functools

    import ray.train
    import torch
    from ray.train.torch import get_device, prepare_model

    from ..models.vae.loop import CompiledParts, compile_wanted, make_optimizer
    from ..models.vae.model import VAE

    mc, tc, sink = VAEConfig.from_dict(cfg["model"]), TrainConfig.from_dict(cfg["train"]), cfg["sink"]
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = get_device()
    if device.type == "cpu":
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1)
                                                // max(1, ctx.get_local_world_size())))

    torch.manual_seed(tc.seed)
    model = VAE(mc)
    optimizer_state, start_epoch, history = _restore(model, ray.train.get_checkpoint())
    model = prepare_model(model)        # moves to device; DDP (gloo/nccl) when workers > 1
    batch_size, lr = tc.batch_and_lr(device.type)
    optimizer = make_optimizer(model, lr)
    compiled = CompiledParts(model) if compile_wanted(tc.compile, device.type) else None
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if rank == 0 and sink is not None:
        sink.reset.remote(history, start_epoch)

    reader = ShardReader({name: ray.train.get_dataset_shard(name) for name in
                          ("train", "val", "gtex") if name in cfg["datasets"]}, tc, device,
                         batch_size, compiled)
    steps = int(history[-1].get("steps", 0)) if history else 0
    for epoch in range(start_epoch, tc.epochs):
        say = functools.partial(_progress, sink if rank == 0 else None, ctx.get_world_size(),
                                epoch)
        record, steps = _epoch(model, optimizer, reader, epoch, rank, steps, say)
        history.append(record)
        _report(record, history, model, optimizer, rank, mc, tc, cfg.get("run_id"))
        if rank == 0 and sink is not None:
            sink.epoch.remote(record)
        if tc.max_steps and steps >= tc.max_steps:
            break


def _progress(sink, world_size: int, epoch: int, step: int, n: int) -> None:
    if sink is not None and step % 10 == 0:
        sink.step.remote(epoch, n * world_size)


class ShardReader:
    """A worker's dataset shards as batches of expression rows. On a GPU each shard stays on the
    device after its first pass (`DeviceCache`: ingest would otherwise hold the GPU to about half
    its rate); elsewhere every epoch reads the shard. `batch_size` (`TrainConfig.batch_and_lr`)
    and `compiled` (the model's `CompiledParts` or None) are the step's, fixed for the run."""

    def __init__(self, shards: dict, tc: TrainConfig, device, batch_size: int, compiled=None):
        from ..models.vae.loop import DeviceCache

        self.shards, self.tc, self.device = shards, tc, device
        self.batch_size, self.compiled = batch_size, compiled
        self.caches = {name: DeviceCache(device) for name in shards} \
            if tc.device_cache and device.type == "cuda" else {}

    def rows(self, name, batch_size, seed=None, **read):
        """The epoch's batches of one dataset: from the device cache when it holds the shard."""
        import torch

        from ..models.vae.loop import device_cache_budget

        cache = self.caches.get(name)
        if cache is not None and cache.ready:
            return cache.batches(batch_size, seed is not None and self.tc.shuffle != "none",
                                 seed or 0)
        batches = expression_batches(self.shards[name].iter_torch_batches(
            batch_size=batch_size, dtypes=torch.float32, **read))
        return batches if cache is None else cache.first(batches,
                                                          device_cache_budget(self.device))


def _epoch(model, optimizer, reader: ShardReader, epoch: int, rank: int, steps: int,
           progress) -> tuple[dict, int]:
    """One epoch of training and the validation scores: (its metrics record, steps so far)."""
    import torch

    from ..models.vae.loop import evaluate, kl_weight, train_epoch

    tc = reader.tc
    seed = tc.seed * 100_003 + epoch * 1009 + rank
    torch.manual_seed(seed)   # reproducible after resume
    w = kl_weight(epoch, tc.warmup_epochs)
    batches = reader.rows("train", reader.batch_size, seed,
                          local_shuffle_buffer_size=tc.shuffle_buffer if tc.shuffle == "files"
                          else None, local_shuffle_seed=None)
    t0 = time.time()
    # --max-steps (bounded benchmarks): every worker stops after the same number of steps
    # (a first pass cut short keeps nothing in the device cache)
    batch_iter = batches if not tc.max_steps else itertools.islice(
        batches, max(0, tc.max_steps - steps))
    taken = [0]

    def on_step(step, n):
        taken[0] = step + 1
        progress(step, n)

    tr = train_epoch(model, optimizer, batch_iter, w, reader.device, on_step, amp=tc.amp,
                     compiled=reader.compiled)
    steps += taken[0]
    record = {"epoch": epoch + 1, "kl_weight": w, **tr.to_dict("train_"), "steps": steps}
    record["samples_per_s"] = record.pop("train_samples_per_s")
    for name in ("val", "gtex"):
        if name in reader.shards:
            ev = evaluate(model, reader.rows(name, max(256, reader.batch_size)), seed=tc.seed,
                          device=reader.device)
            record.update({f"{name}_{k}": v for k, v in ev.to_dict().items()
                           if k in ("samples", "elbo", "recon", "kl")})
    record["epoch_seconds"] = time.time() - t0
    return record, steps


def _restore(model, ckpt) -> tuple:
    """(optimizer state, first epoch, metrics history) from Ray Train's last checkpoint of this
    run, its weights loaded into `model`; (None, 0, []) on a fresh start."""
    import torch

    if ckpt is None:
        return None, 0, []
    with ckpt.as_directory() as d:
        model.load_state_dict(torch.load(Path(d) / "model.pt", weights_only=True))
        optimizer_state = torch.load(Path(d) / "optimizer.pt", weights_only=True)
        state = json.loads((Path(d) / "state.json").read_text())
        history = [json.loads(line) for line in (Path(d) / "metrics.jsonl").read_text().splitlines()
                   if line.strip()]
    return optimizer_state, int(state["epoch"]), history


def _report(record: dict, history: list, model, optimizer, rank: int, mc: VAEConfig,
            tc: TrainConfig, run_id) -> None:
    """`ray.train.report` of the epoch's metrics; rank 0 attaches the checkpoint (weights,
    optimizer, the whole history, the configs and the run id that a resume checks)."""
    import tempfile

    import ray.train
    import torch

    from ..models.vae.loop import unwrap

    epoch = record["epoch"]
    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        if rank == 0:
            torch.save(unwrap(model).state_dict(), Path(d) / "model.pt")
            torch.save(optimizer.state_dict(), Path(d) / "optimizer.pt")
            (Path(d) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
            (Path(d) / "state.json").write_text(json.dumps(
                {"epoch": epoch, "model": mc.to_dict(), "train": asdict(tc), "run_id": run_id}))
            checkpoint = ray.train.Checkpoint.from_directory(d)
        ray.train.report(record, checkpoint=checkpoint,
                         checkpoint_dir_name=f"checkpoint_epoch-{epoch:05d}")
