"""`TrainConfig`: how `raviso pretrain` trains (the model's shape is `raviso.models.vae.VAEConfig`).
Built by the CLI from flags, saved in RUN/config.json and in every checkpoint, checked on
construction so a bad flag fails before Ray starts."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import RavisoError


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
    max_failures: int | None = None   # None: `runspec.default_max_failures` (0 local, 3 cluster)
    keep_checkpoints: int = 2
    eval_gtex: bool = True
    max_steps: int = 0            # stop after this many optimizer steps in all (0: no limit)
    # on a GPU, keep each worker's shard on the device after epoch 1 (`loop.DeviceCache`); later
    # epochs then reshuffle within the shard, where Ray Data would mix rows across workers
    device_cache: bool = True

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
                  (self.max_failures is None or self.max_failures >= -1,
                   "--max-failures must be >= -1")]
        for ok, msg in checks:
            if not ok:
                raise RavisoError(msg)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
