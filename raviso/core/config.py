"""The base of the per-stage config dataclasses (`ConvertConfig`, `CvConfig`, `FitConfig`; pretrain
has its own validated `TrainConfig`).

Why one object per stage: the CLI turns a command's flags into ONE config and hands it to the stage
function, so a stage's options are listed, typed and defaulted in one place and travel together
(into the Tune driver, results.json, a resumed run) instead of as two dozen loose arguments. The
stage functions keep their keyword arguments (tests, benchmarks and notebooks call them that way):
``stage(..., cfg=Config(a=1))`` is ``stage(..., a=1)``. `tests/test_stage_configs.py` keeps each
config's fields and its stage function's keywords the same set: a new option is a field here and a
keyword there.
"""

from __future__ import annotations

import dataclasses


class StageConfig:
    """Mixin for a stage's config dataclass."""

    def kwargs(self) -> dict:
        """The fields as the stage function's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
