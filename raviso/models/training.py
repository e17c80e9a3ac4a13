"""The one epoch loop of every torch model but the VAE (whose DDP loop is `raviso.models.vae.loop`):
the FFNN regressors and the context models (share_net, ffnn_plus) are all trained by
`train_epochs`. Around it, what those fits share: the inner donor split they stop early on, the
targets on the device, the seeded batch order, Adam, the early-stopping bookkeeping and
`TrainState` (a loop's whole state between two epochs, so `raviso tune` can pause and resume it).
Each model gives the loop its batch loss and its validation score; the recipe around the loop
(`raviso.models.context.recipe`, `raviso.models.ffnn.regressors`) says what they are."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..core.errors import RavisoError

PREMADE_TARGET_BYTES = 512 << 20
PREDICT_ROWS = 2048
VAL_SPLITS = ("rows", "donors")   # inner split: a fraction of the rows / of the donors by tissue
RESIDENT_FRACTION = 0.5   # GPU targets stay on the device when they fit in this share of its free memory


# -- the inner donor split -------------------------------------------------------------------------
def inner_split(rows: np.ndarray, donor, fraction: float, seed: int, tissue=None,
                by: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, early-stopping rows) from the training rows, in whole donors when known:
    ``by="rows"`` takes donors until `fraction` of the ROWS; ``by="donors"`` takes `fraction` of
    the DONORS, stratified by tissue (`donor_split`)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) < 2:
        raise RavisoError("early stopping needs at least 2 training samples")
    if not 0 < fraction < 1:
        raise RavisoError(f"val_fraction must be in (0, 1), got {fraction}")
    if by not in VAL_SPLITS:
        raise RavisoError(f"val_split must be one of {', '.join(VAL_SPLITS)}, got {by!r}")
    rng = np.random.default_rng(seed)
    want = max(1, int(round(fraction * len(rows))))
    if donor is None:
        groups = rows.astype(str)
    else:
        d = np.asarray(donor)[rows].astype(str)
        groups = np.where(d == "", np.char.add("row:", rows.astype(str)), d)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if by == "donors":
        t = np.zeros(len(rows), int) if tissue is None else \
            np.unique(np.asarray(tissue)[rows].astype(str), return_inverse=True)[1]
        val = donor_split(inverse, t, fraction, rng)[inverse]
        return rows[~val], rows[val]
    chosen = np.zeros(len(names), bool)
    taken = 0
    for g in rng.permutation(len(names))[:-1]:         # always leave one group for fitting
        if taken >= want:
            break
        chosen[g] = True
        taken += counts[g]
    val = chosen[inverse]
    return rows[~val], rows[val]


def donor_split(group: np.ndarray, tissue: np.ndarray, fraction: float, rng) -> np.ndarray:
    """Chosen groups (bool per group) for the early-stopping split: round(fraction x groups) of
    them, at least 1 and never all, filled tissue by tissue (rarest first) so that each tissue
    gets about `fraction` of the groups that hold it."""
    n = int(group.max()) + 1
    want = min(n - 1, max(1, int(round(fraction * n))))
    holds = np.zeros((int(tissue.max()) + 1, n), bool)
    holds[tissue, group] = True
    chosen = np.zeros(n, bool)
    order = rng.permutation(n)
    for k in np.argsort(holds.sum(axis=1), kind="stable"):
        quota = max(1, int(round(fraction * holds[k].sum())))
        have = int((chosen & holds[k]).sum())
        for g in order[holds[k][order] & ~chosen[order]]:
            if chosen.sum() >= want or have >= quota:
                break
            chosen[g], have = True, have + 1
    return chosen


# -- targets on the device ---------------------------------------------------------------------------
def target_getter(Y: np.ndarray, rows: np.ndarray, device: torch.device
                  ) -> Callable[[np.ndarray], torch.Tensor]:
    """positions into `rows` -> target tensor. Pre-made when small, gathered per batch if not.

    On a GPU the training rows' targets live on the device in their storage dtype (float16 at
    course width: 13,885 x 156,958 = 4.4 GB) when they fit in `RESIDENT_FRACTION` of the free
    device memory, and batches are gathered there; otherwise each batch is gathered into a pinned
    host buffer and copied asynchronously."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        if len(rows) * Y.shape[1] * Y.dtype.itemsize <= RESIDENT_FRACTION * free:
            Yd = torch.from_numpy(np.ascontiguousarray(Y[rows])).to(device)
            return lambda pos: Yd[torch.from_numpy(pos).to(device)].float()
        return _pinned_gather(Y, rows, device)
    if len(rows) * Y.shape[1] * 4 <= PREMADE_TARGET_BYTES:
        Yt = torch.from_numpy(np.ascontiguousarray(Y[rows], dtype=np.float32)).to(device)
        return lambda pos: Yt[torch.from_numpy(pos).to(device)]
    return lambda pos: torch.from_numpy(
        np.ascontiguousarray(Y[rows[pos]], dtype=np.float32)).to(device)


def _pinned_gather(Y: np.ndarray, rows: np.ndarray, device: torch.device):
    pinned: dict = {}       # batch size -> two pinned buffers, each with its copy's event
    turn = [0]

    def gather(pos):
        pair = pinned.get(len(pos))
        if pair is None:
            pair = pinned[len(pos)] = [
                (torch.empty((len(pos), Y.shape[1]), dtype=torch.from_numpy(Y[:1]).dtype,
                             pin_memory=True), torch.cuda.Event()) for _ in range(2)]
        turn[0] ^= 1
        buf, copied = pair[turn[0]]
        # the async copy out of this buffer two batches ago must be done before it is
        # overwritten (the training loop does not synchronise every step)
        copied.synchronize()
        np.take(Y, rows[pos], axis=0, out=buf.numpy())
        y = buf.to(device, non_blocking=True)
        copied.record()
        return y.float()
    return gather


# -- optimiser, batches, early stopping ------------------------------------------------------------
def make_adam(params, lr: float, decoupled: bool = False, fused: bool | None = None):
    """Adam (or AdamW with ``decoupled``; `params` may be groups), fused where torch has a kernel
    for these parameters, else the default implementation (same maths). The one optimiser
    factory of raviso (the VAE's pretraining too)."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)
    if fused is not False:
        try:
            return cls(params, lr=lr, fused=True)
        except (RuntimeError, ValueError, TypeError):     # no fused kernel for this device/build
            if fused:
                raise
    return cls(params, lr=lr)


def seeded_epoch(rows, batch_size: int, gen: torch.Generator, epoch: int, opt, loss_of,
                 on_batch=None):
    """One pass over `rows` in an order drawn from `gen`: per batch, ``loss_of(pos)`` (positions
    into `rows`) takes one step of `opt`; yields each batch's detached loss and size.
    ``on_batch(epoch, rows)`` sees the rows of every batch (tests count them)."""
    perm = torch.randperm(len(rows), generator=gen).numpy()
    for s in range(0, len(rows), batch_size):
        pos = perm[s:s + batch_size]
        if on_batch is not None:
            on_batch(epoch, rows[pos])
        loss = loss_of(pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield loss.detach(), len(pos)


@torch.no_grad()
def chunked_mse(model: torch.nn.Module, forward, targets, n: int, chunk: int) -> float:
    """The MSE over `n` validation rows, `chunk` rows at a time: ``forward(start, stop)`` predicts
    positions start..stop, ``targets(positions)`` gives their truth (float64 sum)."""
    model.eval()
    total, n_out = 0.0, 1
    for s in range(0, n, chunk):
        pos = np.arange(s, min(s + chunk, n))
        diff = forward(s, s + len(pos)) - targets(pos)
        total += float(torch.sum(diff.double() ** 2))
        n_out = diff.shape[1]
    model.train()
    return total / (n * n_out)


def snapshot(model: torch.nn.Module) -> dict:
    """A copy of the model's weights."""
    return {k: t.detach().clone() for k, t in model.state_dict().items()}


class EarlyStopping:
    """The best validation loss, the weights that reached it, and the epochs waited since
    (`done` after `patience` without a new best)."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_state, self.waited = int(patience), math.inf, None, 0

    def update(self, loss: float, model: torch.nn.Module) -> bool:
        """Record one validation loss; True (and the weights kept) when it is a new best."""
        if loss < self.best:
            self.best, self.waited, self.best_state = loss, 0, snapshot(model)
            return True
        self.waited += 1
        return False

    @property
    def done(self) -> bool:
        return self.waited >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


class TrainState:
    """Weights, optimiser, shuffle generator, history and early stopping between two epochs:
    `state_dict` / `load_state_dict` continue a loop on exactly the same curve."""

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 gen: torch.Generator, hist: dict, patience: int = 10):
        self.model, self.opt, self.gen, self.hist = model, opt, gen, hist
        self.stop = EarlyStopping(patience)

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.hist["train_loss"])

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "gen": self.gen.get_state(), "hist": self.hist, "best": self.stop.best,
                "best_state": self.stop.best_state, "waited": self.stop.waited}

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.opt.load_state_dict(sd["opt"])
        self.gen.set_state(sd["gen"])
        self.hist.clear()
        self.hist.update(sd["hist"])       # the same dict object: callers may hold it
        self.stop.best, self.stop.best_state, self.stop.waited = (sd["best"], sd["best_state"],
                                                                  sd["waited"])


# -- the epoch loop ------------------------------------------------------------------------------------
def train_epochs(st: TrainState, rows: np.ndarray, batch_size: int, epochs: int, loss_of,
                 score=None, sched=None, on_batch=None):
    """Train ``st.model`` up to `epochs` epochs (counting those `st` has done), yielding `st`
    after every epoch; returns the history. Each epoch visits every row of `rows` once in a
    seeded order, one optimiser step per batch of ``loss_of(positions)``; then `sched` steps.
    With `score` (() -> validation MSE): stop after ``patience`` epochs without a new best and
    restore the best weights; ``best_epoch`` is the best score's index in ``val_loss`` (a caller
    that scored the start first has it at 0)."""
    hist, model = st.hist, st.model
    while st.epoch < epochs and not hist["stopped_early"]:
        epoch = st.epoch
        model.train()              # a caller may have predicted (eval mode) between epochs
        total = None
        for loss, k in seeded_epoch(rows, batch_size, st.gen, epoch, st.opt, loss_of, on_batch):
            total = loss.double() * k if total is None else total + loss.double() * k
        hist["train_loss"].append(float(total) / len(rows))
        if sched is not None:
            sched.step()
        if score is not None:
            hist["val_loss"].append(score())
            if st.stop.update(hist["val_loss"][-1], model):
                hist["best_epoch"] = len(hist["val_loss"]) - 1
            else:
                hist["stopped_early"] = st.stop.done
        hist["epochs_run"] = st.epoch
        yield st
    st.stop.restore(model)
    hist["epochs_run"] = st.epoch
    model.eval()
    return hist
