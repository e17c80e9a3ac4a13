"""The one optimizer factory of raviso's training loops (pretraining, FFNN fits, share_net)."""

from __future__ import annotations

import torch


def make_adam(params, lr: float, decoupled: bool = False, fused: bool | None = None):
    """Adam (or AdamW with ``decoupled``; `params` may be groups), fused where torch has a kernel
    for these parameters, else the default implementation (same maths)."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)
    if fused is not False:
        try:
            return cls(params, lr=lr, fused=True)
        except (RuntimeError, ValueError, TypeError):     # no fused kernel for this device/build
            if fused:
                raise
    return cls(params, lr=lr)
