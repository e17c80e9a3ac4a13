"""How an FFNN regressor is fitted (`raviso.models.ffnn.regressors` says why): real epochs over
every training row in a seeded permutation, fused Adam, targets pre-made or gathered per batch
(never a copy of the whole isoform matrix), optional early stopping on an inner split of whole
donors with the best epoch's weights restored, and a generator form that yields after every
epoch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ...core.errors import RavisoError
from .optim import make_adam
from .state import TrainState, seeded_epoch


PREMADE_TARGET_BYTES = 512 << 20

PREDICT_ROWS = 2048


VAL_SPLITS = ("rows", "donors")   # inner split: a fraction of the rows / of the donors by tissue


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


# targets go device-resident when they fit in this fraction of the free device memory
RESIDENT_FRACTION = 0.5


def target_getter(Y: np.ndarray, rows: np.ndarray, device: torch.device
                   ) -> Callable[[np.ndarray], torch.Tensor]:
    """positions into `rows` -> target tensor. Pre-made when small, gathered per batch if not.

    On a GPU the training rows' targets live on the device in their storage dtype (float16 at
    course width: 13,885 x 156,958 = 4.4 GB) when they fit in half the free device memory, and
    batches are gathered there; otherwise each batch is gathered into a pinned host buffer and
    copied asynchronously."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        if len(rows) * Y.shape[1] * Y.dtype.itemsize <= RESIDENT_FRACTION * free:
            Yd = torch.from_numpy(np.ascontiguousarray(Y[rows])).to(device)
            return lambda pos: Yd[torch.from_numpy(pos).to(device)].float()
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
    if len(rows) * Y.shape[1] * 4 <= PREMADE_TARGET_BYTES:
        Yt = torch.from_numpy(np.ascontiguousarray(Y[rows], dtype=np.float32)).to(device)
        return lambda pos: Yt[torch.from_numpy(pos).to(device)]
    return lambda pos: torch.from_numpy(
        np.ascontiguousarray(Y[rows[pos]], dtype=np.float32)).to(device)


@torch.no_grad()
def _mse(model: nn.Module, X: torch.Tensor, targets: Callable, n: int) -> float:
    model.eval()
    total = 0.0
    for s in range(0, n, PREDICT_ROWS):
        pos = np.arange(s, min(s + PREDICT_ROWS, n))
        diff = model(X[s:s + len(pos)]) - targets(pos)
        total += float(torch.sum(diff.double() ** 2))
    model.train()
    return total / (n * model.net[-1].out_features)


def train_ffnn(model: nn.Module, X: torch.Tensor, Y: np.ndarray, rows: np.ndarray,
               **kw) -> dict:
    """Train in place on inputs X (row k = labelled row ``rows[k]``) and targets ``Y[rows]``;
    return the history. The options are `iter_train_ffnn`'s."""
    steps = iter_train_ffnn(model, X, Y, rows, **kw)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def iter_train_ffnn(model: nn.Module, X: torch.Tensor, Y: np.ndarray, rows: np.ndarray, *,
                    epochs: int, batch_size: int = 64, lr: float = 1e-4, seed: int = 0,
                    X_val: torch.Tensor | None = None, val_rows: np.ndarray | None = None,
                    patience: int = 10,
                    on_batch: Callable[[int, np.ndarray], None] | None = None,
                    resume: dict | None = None):
    """`train_ffnn` as a generator: yields a `TrainState` after every epoch (callers score,
    report and checkpoint between epochs: `raviso tune`); returns the history at the end.

    Each epoch visits every row exactly once (seeded permutation). With ``X_val``/``val_rows``,
    stops after `patience` epochs without a lower validation MSE and restores the best weights.
    ``on_batch(epoch, labelled_rows)`` is called per batch (tests use it to count rows).
    ``resume``: a `TrainState.state_dict` to continue from.
    """
    device = X.device
    targets = target_getter(Y, rows, device)
    val_targets = None if val_rows is None else target_getter(Y, val_rows, device)
    gen = torch.Generator().manual_seed(seed)
    opt = make_adam(model.parameters(), lr)
    loss_fn = nn.MSELoss()
    n = len(rows)
    hist: dict = {"train_loss": [], "val_loss": [], "best_epoch": None, "stopped_early": False,
                  "rows_per_epoch": n}
    st = TrainState(model, opt, gen, hist, patience)
    if resume is not None:
        st.load_state_dict(resume)
    while st.epoch < epochs and not hist["stopped_early"]:
        epoch = st.epoch
        model.train()              # a caller may have predicted (eval mode) between epochs
        total = torch.zeros((), dtype=torch.float64, device=device)

        def loss_of(pos):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(X[torch.from_numpy(pos).to(device)])
            return loss_fn(out.float(), targets(pos))

        for loss, k in seeded_epoch(rows, batch_size, gen, epoch, opt, loss_of, on_batch):
            total += loss * k
        hist["train_loss"].append(float(total) / n)
        if val_targets is not None:
            v = _mse(model, X_val, val_targets, len(val_rows))
            hist["val_loss"].append(v)
            if st.stop.update(v, model):
                hist["best_epoch"] = epoch
            else:
                hist["stopped_early"] = st.stop.done
        hist["epochs_run"] = st.epoch
        yield st
    st.stop.restore(model)
    hist["epochs_run"] = st.epoch
    model.eval()
    return hist
