"""`TrainState`: a training loop's whole state between two epochs, so it can pause and resume.

`raviso.models.ffnn_fit.iter_train_ffnn` yields one after every epoch. `raviso tune` scores the
model between epochs (ASHA needs a validation loss per epoch) and checkpoints `state_dict()`; a
restarted trial passes it back as ``resume=`` and continues on exactly the same curve: weights,
Adam moments, the shuffle generator, the history and the early-stopping bookkeeping all come back.
"""

from __future__ import annotations

import math

import torch


class TrainState:
    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 gen: torch.Generator, hist: dict):
        self.model, self.opt, self.gen, self.hist = model, opt, gen, hist
        self.best, self.best_state, self.waited = math.inf, None, 0

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.hist["train_loss"])

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "gen": self.gen.get_state(), "hist": self.hist, "best": self.best,
                "best_state": self.best_state, "waited": self.waited}

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.opt.load_state_dict(sd["opt"])
        self.gen.set_state(sd["gen"])
        self.hist.clear()
        self.hist.update(sd["hist"])       # the same dict object: callers may hold it
        self.best, self.best_state, self.waited = sd["best"], sd["best_state"], sd["waited"]
