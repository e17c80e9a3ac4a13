"""`FitConfig`: the options of `raviso fit` (see `raviso.serve.fit.fit_store`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import StageConfig


@dataclass(frozen=True)
class FitConfig(StageConfig):
    variant: str | None = None             # None: share_net, or the tuned config's
    pretrained: str | None = None
    pretrained_ae: str | None = None
    epochs: int | None = None
    seed: int = 0
    overwrite: bool = False
    target_dtype: str = "auto"
    config: str | None = None              # best.json from `raviso tune`
