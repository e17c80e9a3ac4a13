"""The base of the per-stage config dataclasses: one field per option, written once.

A field made with `option()` carries its name, type, default, help text, CLI flag and check; the
CLI builds its flags from these fields (`raviso.commands.options`) and a stage takes its config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .errors import RavisoError


class OptionError(RavisoError):
    """A bad option value; `option` is the config field's name. The CLI says the flag instead."""

    def __init__(self, option: str, problem: str):
        self.option, self.problem = option, problem
        super().__init__(f"{option} {problem}")


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
           check: Callable[[Any], bool] | None = None, problem: str = "", cli: bool = True,
           factory: Callable[[], Any] | None = None, **extra) -> Any:
    """A config field: `help` and `flag` (default ``--name-with-dashes``) for the CLI, `check`
    (value -> ok) with `problem` ("must be >= 1") for `StageConfig.validate`; `cli=False`: Python
    only. `extra`: more typer.Option arguments (metavar, ...)."""
    meta = {"help": help, "flag": flag, "check": check, "problem": problem, "cli": cli,
            "extra": extra}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """The CLI flag of a config field (its first name, ``--no-x`` forms aside)."""
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return flag.split("/")[0]


class StageConfig:
    """Mixin for a stage's config dataclass."""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Run every field's `check`; the first failure raises `OptionError` naming the field."""
        for f in dataclasses.fields(self):
            check, value = f.metadata.get("check"), getattr(self, f.name)
            if check is not None and not check(value):
                problem = f.metadata.get("problem") or "is not valid (got {value!r})"
                raise OptionError(f.name, problem.format(value=value))

    def kwargs(self) -> dict:
        """The fields as a dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def build(cls, cfg=None, **options):
        """`cfg` with `options` replaced (or a fresh config of `options`): how a stage accepts
        its config or, from Python, the same options as keywords."""
        return dataclasses.replace(cfg, **options) if cfg is not None else cls(**options)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def field_flags(*configs) -> dict[str, str]:
    """{field name: CLI flag} over `configs` (for printing an `OptionError`)."""
    return {f.name: flag_of(f) for c in configs for f in dataclasses.fields(c)}


# options several commands share, each defined here once
def address_option(help: str = "Ray cluster address (default: start a local Ray).") -> Any:
    return option(None, help)


def overwrite_option(help: str = "Replace an existing output (only a raviso output is ever "
                     "replaced).") -> Any:
    return option(False, help)


TARGET_DTYPE = "auto"   # the stored isoform targets' dtype unless asked (raviso.data.mapped)


def target_dtype_option(help: str = "auto | float32 | float16.") -> Any:
    return option(TARGET_DTYPE, help)


def seed_option(help: str = "Random seed.") -> Any:
    return option(0, help)


def pretrained_option(help: str = "VAE run (latent 'vae').") -> Any:
    return option(None, help)


def pretrained_ae_option(help: str = "Autoencoder (beta=0) run (latent 'ae').") -> Any:
    return option(None, help)


def quiet_option(help: str = "No progress display (a bar with rows/s and ETA on a terminal, a "
                 "line every 10 s otherwise).") -> Any:
    return option(False, help)
