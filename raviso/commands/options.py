"""Typer options generated from config dataclass fields (`raviso.core.config.option`).

`@configured(cfg=CvConfig)` on a command with a ``cfg`` parameter replaces that parameter by one
typer option per field (flag, type, default, help from the field) and calls the command with the
built config. A ``given`` parameter receives the fields set on the command line.
"""

import dataclasses
import functools
import inspect
import types
import typing
from typing import Optional

import typer

from raviso.core.config import OptionError, flag_of
from raviso.core.errors import RavisoError


def _plain(tp):
    """`X | None` as Optional[X] (typer's spelling)."""
    if isinstance(tp, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return Optional[args[0]]
    return tp


def _int_tuple(text, name: str):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise OptionError(name, f"takes comma-separated integers, got {text!r}") from None


def _field_param(f: dataclasses.Field, tp) -> tuple[object, object, callable]:
    """(typer annotation, typer.Option, value -> field value) of one config field."""
    meta = dict(f.metadata)
    extra = dict(meta.get("extra") or {})
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    convert = (lambda v: v)
    tp = _plain(tp)
    if typing.get_origin(tp) is tuple:            # (int, ...) as "a,b,c"; (Path, ...) repeated
        (inner, *_) = typing.get_args(tp)
        if inner is int:
            tp, default = Optional[str], ",".join(str(v) for v in default)
            convert = functools.partial(_int_tuple, name=f.name)
        else:
            tp, default = Optional[list[inner]], None
            convert = (lambda v: tuple(v or ()))
    if extra.pop("required", False):
        default = ...
    help_text = meta.get("help") or ""
    if "{default}" in help_text:
        help_text, extra["show_default"] = help_text.format(default=default), False
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    return tp, typer.Option(default, flag, help=help_text, **extra), convert


def cli_fields(config) -> list[dataclasses.Field]:
    """The fields of `config` that are CLI options."""
    return [f for f in dataclasses.fields(config) if f.metadata.get("cli", True)]


def configured(**configs):
    """Decorator: each keyword names a parameter of the command and the config class it takes."""
    def wrap(command):
        sig = inspect.signature(command)
        hints = typing.get_type_hints(command)
        keep = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in
                sig.parameters.values() if p.name not in configs and p.name != "given"]
        taken = {p.name for p in keep}
        built, params = {}, []
        for arg, config in configs.items():
            types_ = typing.get_type_hints(config)
            for f in cli_fields(config):
                if f.name in taken:
                    raise TypeError(f"{command.__name__}: option {f.name} defined twice")
                tp, opt, convert = _field_param(f, types_[f.name])
                built.setdefault(arg, []).append((f.name, convert))
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=opt, annotation=tp))
                taken.add(f.name)
        wants_given = "given" in sig.parameters
        own_ctx = next((p.name for p in keep if p.annotation is typer.Context), None)
        ctx_param = inspect.Parameter("_ctx", inspect.Parameter.KEYWORD_ONLY,
                                      annotation=typer.Context)

        flags = flags_of(*configs.values())

        @functools.wraps(command)
        def run(*args, _ctx=None, **kwargs):
            _ctx = kwargs.get(own_ctx) if own_ctx else _ctx
            sources = {n: _ctx.get_parameter_source(n) for n in kwargs} if _ctx else {}
            given = {n for n, src in sources.items()
                     if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")}
            try:
                for arg, fields in built.items():
                    values = {name: convert(kwargs.pop(name)) for name, convert in fields}
                    kwargs[arg] = configs[arg](**values)
                if wants_given:
                    kwargs["given"] = frozenset(given)
                return command(*args, **kwargs)
            except OptionError as e:    # the one place a field's name becomes its flag
                raise RavisoError(f"{flags.get(e.option, e.option)} {e.problem}") from None

        ordered = [p for p in keep if p.kind != p.KEYWORD_ONLY]
        rest = [p for p in keep if p.kind == p.KEYWORD_ONLY]
        run.__signature__ = sig.replace(parameters=ordered + rest + params +
                                        ([] if own_ctx else [ctx_param]))
        run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
        del run.__wrapped__
        return run
    return wrap


def flags_of(*configs) -> dict[str, str]:
    """{field: flag} of every CLI field of `configs`."""
    return {f.name: flag_of(f) for c in configs for f in cli_fields(c)}


def out_option(help: str):
    """The required ``--out`` of a command: the one output it writes (`help` says what)."""
    return typer.Option(..., "--out", help=help)
