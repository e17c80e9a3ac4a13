"""The per-epoch training and evaluation loop, shared VERBATIM by plain in-process torch (tests, the
benchmark's baseline) and by the Ray Train worker in `raviso.train.pretrain`.

The loop only sees an iterable of (n, genes) float32 tensors, so the benchmark's "identical loop in
plain torch on in-memory data" is literally this code: Ray adds data shards, DDP (`prepare_model`)
and `ray.train.report` around it, nothing inside it.

Statistics are sums over samples of the per-batch means times the batch size, divided by the total
sample count: exact per-sample means over the epoch (the last, smaller batch weighs less). Under
DDP, `all_reduce` sums them over workers before dividing, so every worker reports the global mean.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import torch

from ..training import make_adam
from .model import LossRecord

TERMS = ("loss", "elbo", "recon", "kl")
AMP = ("auto", "bf16", "off")
COMPILE = ("auto", "on", "off")


def make_optimizer(model: torch.nn.Module, lr: float, fused: bool | None = None):
    """Adam, fused where torch supports it for these parameters (CPU float32 since torch 2.4 and
    CUDA): the same maths as the default for-each Adam, in far fewer passes over memory
    (bench/README.md, "Measurements behind code choices")."""
    return make_adam([p for p in model.parameters() if p.requires_grad], lr, fused=fused)


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """Linear KL warm-up: weight epoch/warmup for the first `warmup_epochs` epochs, then 1
    (epoch is 0-based, so the first epoch trains the plain autoencoder objective)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, epoch / warmup_epochs)


@dataclass
class EpochStats:
    """Per-sample means over one pass. `samples_per_s` is the steady-state rate: the clock starts
    when the first batch has been consumed (time to first batch and one-off warm-up excluded, as
    in Ray's own ingest benchmarks); `seconds` is the whole pass."""

    samples: int = 0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    loss: float = float("nan")
    elbo: float = float("nan")
    recon: float = float("nan")
    kl: float = float("nan")

    def to_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


class _Accumulator:
    def __init__(self, device):
        self.sums = torch.zeros(len(TERMS) + 1, dtype=torch.float64, device=device)
        self.t0 = time.perf_counter()
        self.t_first = None
        self.n_first = 0
        self.n = 0          # python int: no device sync per step

    def add(self, rec: LossRecord, n: int) -> None:
        vals = torch.stack([t.detach() for t in rec]).double() * n
        self.sums[:-1] += vals
        self.sums[-1] += n
        self.n += n
        if self.t_first is None:
            self.t_first = time.perf_counter()
            self.n_first = n

    def result(self, distributed: bool) -> EpochStats:
        """Global means (summed over DDP workers when `distributed`)."""
        sums = self.sums.clone()
        seconds = time.perf_counter() - self.t0
        steady = time.perf_counter() - (self.t_first or self.t0)
        rate = torch.tensor([self.n - self.n_first, steady], dtype=torch.float64,
                            device=sums.device)
        if distributed:
            torch.distributed.all_reduce(sums)
            # global rate = total samples / slowest worker's time
            n_after = rate[:1].clone()
            torch.distributed.all_reduce(n_after)
            t = rate[1:].clone()
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            rate = torch.cat([n_after, t])
        n = int(sums[-1].item())
        means = (sums[:-1] / max(n, 1)).tolist() if n else [float("nan")] * len(TERMS)
        sps = rate[0].item() / rate[1].item() if rate[1].item() > 0 and rate[0].item() > 0 else 0.0
        return EpochStats(samples=n, seconds=seconds, samples_per_s=sps,
                          **dict(zip(TERMS, means)))


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (evaluation needs no gradient sync)."""
    return getattr(model, "module", model)


def amp_dtype(amp: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype of a step: ``auto`` is bf16 on CUDA only, ``bf16`` on any device (CPU
    autocast too), ``off`` none. Parameters and Adam state stay float32 under it (autocast casts
    copies for the matmuls), so the optimizer updates fp32 master weights."""
    if amp == "bf16" or (amp == "auto" and device_type == "cuda"):
        return torch.bfloat16
    return None


def compile_wanted(setting: str, device_type: str) -> bool:
    """``on``, or ``auto`` on CUDA (where a step is short enough for kernel launches and unfused
    elementwise passes to matter); ``off`` otherwise."""
    return setting == "on" or (setting == "auto" and device_type == "cuda")


class CompiledParts:
    """A VAE's encoder, decoder and loss compiled in place with `torch.compile` (an instance
    `forward`/`loss` attribute, so state_dict keys, DDP and checkpoints are unchanged). The
    reparameterisation noise stays eager, so a compiled step draws the same random numbers as
    an eager one. `disable(error)` restores the eager methods after a failed compilation."""

    def __init__(self, model: torch.nn.Module):
        module = unwrap(model)
        self.parts = [(module.encoder, "forward"), (module.decoder, "forward"), (module, "loss")]
        for obj, name in self.parts:
            setattr(obj, name, torch.compile(getattr(obj, name)))

    @property
    def active(self) -> bool:
        return bool(self.parts)

    def disable(self, error: BaseException) -> None:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"torch.compile failed ({type(error).__name__}: {first}); training eagerly",
                      RuntimeWarning, stacklevel=2)
        for obj, name in self.parts:
            obj.__dict__.pop(name, None)
        self.parts = []


def master_dtypes(model: torch.nn.Module, optimizer) -> set:
    """The dtypes of the parameters and the optimizer's floating-point state ({float32} under
    bf16 autocast: fp32 master weights)."""
    out = {p.dtype for p in model.parameters()}
    for state in optimizer.state.values():
        out |= {v.dtype for k, v in state.items() if torch.is_tensor(v) and k != "step"}
    return out


def _forward_backward(model, optimizer, x, kl_weight, dtype) -> LossRecord:
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        rec = model(x, kl_weight=kl_weight)
    optimizer.zero_grad(set_to_none=True)
    rec.loss.backward()
    return rec


def train_epoch(model, optimizer, batches: Iterable[torch.Tensor], kl_weight: float = 1.0,
                device=None, on_step: Callable[[int, int], None] | None = None,
                amp: str = "auto", compiled: CompiledParts | None = None) -> EpochStats:
    """One pass of Adam steps over `batches`; returns the epoch's training means.

    `on_step(step, samples_so_far)` is called after every step (progress display). `amp`: see
    `amp_dtype`. `compiled`: the model's `CompiledParts`; a step whose compilation fails is
    redone eagerly (one warning) and the rest of the run stays eager."""
    model.train()
    acc = _Accumulator(device or "cpu")
    for step, x in enumerate(batches):
        if device is not None:
            x = x.to(device, non_blocking=True)
        dtype = amp_dtype(amp, x.device.type)
        try:
            rec = _forward_backward(model, optimizer, x, kl_weight, dtype)
        except Exception as e:      # noqa: BLE001 (compiler errors have no common base class)
            if compiled is None or not compiled.active:
                raise
            compiled.disable(e)
            rec = _forward_backward(model, optimizer, x, kl_weight, dtype)
        optimizer.step()
        acc.add(rec, x.shape[0])
        if on_step is not None:
            on_step(step, acc.n)
    return acc.result(_is_distributed())


@torch.no_grad()
def evaluate(model, batches: Iterable[torch.Tensor], seed: int = 0, device=None) -> EpochStats:
    """Validation means (full KL weight, i.e. the true ELBO), with reparameterisation noise from a
    generator seeded by `seed` so successive epochs are scored on the same noise."""
    module = unwrap(model)
    module.eval()
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    acc = _Accumulator(device or "cpu")
    for x in batches:
        if device is not None:
            x = x.to(device, non_blocking=True)
        acc.add(module(x, kl_weight=1.0, generator=gen), x.shape[0])
    return acc.result(_is_distributed())


def tensor_batches(X: torch.Tensor, batch_size: int, shuffle: bool = True,
                   generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Mini-batches of an in-memory (n, genes) tensor, reshuffled on every call."""
    n = X.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        yield X[order[i:i + batch_size]]


class DeviceCache:
    """Keeps a dataset's rows on the training device after the first pass over it, so later
    epochs gather batches from device memory instead of the input pipeline.

    Why: a GPU trains the paper VAE about twice as fast as a 16-core node decodes the Parquet
    store (bench/README.md, gpu, has the figures): streamed every epoch, ingest would hold the
    GPU to about half its rate. ARCHS4's training rows (164k x 18,965 float32 = 12.5 GB) fit on
    an 80 GB card.

    `first(batches, budget_bytes)` passes the first epoch's batches through (moved to the
    device) and keeps them while they fit in `budget_bytes`; once a pass has run to its end,
    `ready` is True and `batches()` yields mini-batches of the kept rows (reshuffled on the
    device per seed). A pass cut short (``--max-steps``) or over budget keeps nothing."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.X: torch.Tensor | None = None

    @property
    def ready(self) -> bool:
        return self.X is not None

    def first(self, batches: Iterable[torch.Tensor], budget_bytes: float
              ) -> Iterator[torch.Tensor]:
        parts, held = [], 0
        for x in batches:
            x = x.to(self.device, non_blocking=True)
            if parts is not None:
                held += x.numel() * x.element_size()
                if held <= budget_bytes:
                    parts.append(x)
                else:
                    parts = None
            yield x
        if parts:               # reached only when the pass ran to its end
            self.X = torch.cat(parts)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0
                ) -> Iterator[torch.Tensor]:
        gen = torch.Generator(device=self.device).manual_seed(seed)
        n = self.X.shape[0]
        order = (torch.randperm(n, device=self.device, generator=gen) if shuffle
                 else torch.arange(n, device=self.device))
        for i in range(0, n, batch_size):
            yield self.X[order[i:i + batch_size]]


def device_cache_budget(device) -> float:
    """Bytes a worker may keep on `device`: half its free memory on CUDA (the model, Adam state
    and activations keep the rest); 0 elsewhere (on CPU the rows are already in host memory)."""
    device = torch.device(device)
    if device.type != "cuda":
        return 0.0
    return 0.5 * torch.cuda.mem_get_info(device)[0]
