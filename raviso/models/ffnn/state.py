"""`TrainState`: a training loop's whole state between two epochs, so it can pause and resume.

`raviso.models.ffnn.fit.iter_train_ffnn` yields one after every epoch. `raviso tune` scores the
model between epochs (ASHA needs a validation loss per epoch) and checkpoints `state_dict()`; a
restarted trial passes it back as ``resume=`` and continues on exactly the same curve: weights,
Adam moments, the shuffle generator, the history and the early-stopping bookkeeping
(`EarlyStopping`, shared with `raviso.models.context.recipe`) all come back.
"""

from __future__ import annotations

import math

import torch


def snapshot(model: torch.nn.Module) -> dict:
    """A copy of the model's weights."""
    return {k: t.detach().clone() for k, t in model.state_dict().items()}


def seeded_epoch(rows, batch_size: int, gen: torch.Generator, epoch: int, opt, loss_of,
                 on_batch=None):
    """One pass over `rows` in an order drawn from `gen`, the batch loop of every raviso fit:
    per batch, ``loss_of(pos)`` (positions into `rows`) takes one step of `opt`; yields each
    batch's detached loss and size. ``on_batch(epoch, rows)`` sees the rows of every batch."""
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


class EarlyStopping:
    """The early-stopping bookkeeping of every raviso fit: the best validation loss, the weights
    that reached it, and the epochs waited since (`done` after `patience` without a new best)."""

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
