"""How `raviso pretrain` trains (`TrainConfig`) and runs (`PretrainConfig`); the model's shape is
`raviso.models.vae.model.VAEConfig`. Saved in RUN/config.json and every checkpoint, checked on
construction so a bad option fails before Ray starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..core.config import (StageConfig, address_option, option, overwrite_option, quiet_option,
                           seed_option)

SHUFFLES = ("files", "global", "none")
MATERIALIZE = ("auto", "always", "never")
AMP = ("auto", "bf16", "off")            # raviso.models.vae.loop.amp_dtype
COMPILE = ("auto", "on", "off")          # raviso.models.vae.loop.compile_wanted


def _at_least(low, default, help, **kw):
    return option(default, help, check=lambda v: v >= low, problem=f"must be >= {low}", **kw)


@dataclass
class TrainConfig(StageConfig):
    """How to train (the model's shape lives in `VAEConfig`)."""

    epochs: int = _at_least(1, 10, "Total epochs; with --resume the new total.")
    batch_size: int = _at_least(1, 64, "Per-worker batch.")
    lr: float = option(1e-4, "Adam learning rate.", check=lambda v: v > 0, problem="must be > 0")
    warmup_epochs: int = _at_least(0, 0, "Linear KL warm-up epochs.")
    val_fraction: float = option(0.02, "Held-out ARCHS4 fraction, by sample-id hash.",
                                 check=lambda v: 0 <= v < 1, problem="must be in [0, 1)")
    seed: int = seed_option()
    workers: int = _at_least(1, 1, "DDP workers.")
    cpus_per_worker: float = option(1.0, "Logical CPUs reserved per worker, may be fractional.",
                                    check=lambda v: v > 0, problem="must be > 0")
    gpu: bool = option(False, "One GPU per worker, NCCL.", flag="--gpu/--cpu")
    threads: int = option(0, "Torch threads per worker [0: node cores / workers on the node].",
                          show_default=False)
    shuffle: str = option("files", "files (file order re-drawn each epoch + local buffer) | "
                          "global | none [{default}].", check=lambda v: v in SHUFFLES,
                          problem=f"must be one of {', '.join(SHUFFLES)}")
    shuffle_buffer: int = option(2048, "Local shuffle buffer rows per worker.")
    materialize: str = option("auto", "auto | always | never: hold the data in the object store "
                              "[auto: when small].", check=lambda v: v in MATERIALIZE,
                              problem="must be auto, always or never", show_default=False)
    max_failures: int | None = option(None, "Worker failures to recover from the last "
                                      "checkpoint (default: 0 on a local Ray, 3 on a cluster).",
                                      check=lambda v: v is None or v >= -1,
                                      problem="must be >= -1")
    keep_checkpoints: int = _at_least(1, 2, "Checkpoints kept.")
    eval_gtex: bool = option(True, "Score gtex_gene each epoch when the store has it (--no-gtex-eval: "
                                "skip).", flag="--gtex-eval/--no-gtex-eval")
    max_steps: int = _at_least(0, 0, "Stop after this many optimizer steps in all (bounded "
                               "benchmarks) [0: no limit].", show_default=False)
    # on a GPU, keep each worker's shard on the device after epoch 1 (`loop.DeviceCache`); later
    # epochs then reshuffle within the shard, where Ray Data would mix rows across workers
    device_cache: bool = option(True, "With --gpu: keep each worker's rows in GPU memory after "
                                "the first epoch, when they fit in half of it [on].",
                                flag="--device-cache/--no-device-cache", show_default=False)
    # a GPU step at batch 64 is launch-bound; Adam's lr follows the square-root rule for
    # adaptive optimizers (docs/scaling.md, GPU step)
    gpu_batch_size: int = _at_least(0, 4096, "With --gpu: per-worker batch; --lr is scaled by "
                                    "sqrt(gpu-batch-size / batch-size) [4096; 0: --batch-size, "
                                    "lr unscaled].", show_default=False)
    amp: str = option("auto", "auto | bf16 | off: bf16 autocast with fp32 master weights "
                      "[auto: on CUDA only].", check=lambda v: v in AMP,
                      problem=f"must be one of {', '.join(AMP)}", show_default=False)
    compile: str = option("auto", "auto | on | off: torch.compile the VAE's encoder, decoder "
                          "and loss, eager on failure [auto: on CUDA only].",
                          check=lambda v: v in COMPILE,
                          problem=f"must be one of {', '.join(COMPILE)}", show_default=False)

    def batch_and_lr(self, device_type: str) -> tuple[int, float]:
        """(per-worker batch, Adam lr) of a run on `device_type`: `gpu_batch_size` on CUDA with
        lr x sqrt(gpu_batch_size / batch_size); `batch_size` and `lr` elsewhere."""
        if device_type != "cuda" or not self.gpu_batch_size:
            return self.batch_size, self.lr
        return self.gpu_batch_size, self.lr * math.sqrt(self.gpu_batch_size / self.batch_size)


@dataclass(frozen=True)
class PretrainConfig(StageConfig):
    """Where and how a pretraining run runs (not saved with the model)."""

    storage: str | None = option(None, "Ray Train storage for checkpoints (shared path or URI on "
                                 "a multi-node cluster) [RUN/checkpoints].")
    resume: bool = option(False, "Continue RUN from its last checkpoint.")
    overwrite: bool = overwrite_option("Replace an existing RUN.")
    quiet: bool = quiet_option("No live progress display.")
    address: str | None = address_option()


ENCODE_WHICH = ("gtex", "archs4", "both")


@dataclass(frozen=True)
class EncodeConfig(StageConfig):
    """The options of `raviso encode`."""

    which: str = option("gtex", "gtex | archs4 | both.", check=lambda v: v in ENCODE_WHICH,
                        problem=f"must be one of {', '.join(ENCODE_WHICH)}, got {{value!r}}")
    out: Path | None = option(None, "Output directory [STORE/latent/<run-name>].")
    batch_size: int = option(512, "Rows per inference batch.")
    concurrency: int = option(1, "Model replicas (Ray actors).")
    address: str | None = address_option()
