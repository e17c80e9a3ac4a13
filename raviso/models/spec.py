"""One record per variant (`VariantSpec`) and the variant-spec strings of the command line.

A record holds every fact about a variant; its options are read from its factory's signature,
so they cannot drift from the code. ``share_net[context=vae]`` names the variant ``share_net``
with that option, as its own leaderboard column."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.errors import RavisoError

KINDS = ("baseline", "paper", "model")
NOT_OPTIONS = frozenset({"self", "name", "source"})   # constructor arguments set by the record
GENE_COPIES = 2.2                # training genes + a centred copy + PCA work (`capacity`)
FFNN_ISOFORM_BYTES = 16 * 64 * 4  # output layer, gradients, Adam moments, one batch (`capacity`)


def signature_options(fn: Callable, forwards: tuple = ()) -> frozenset:
    """The keyword options `fn` takes; its ``**kwargs`` stand for those of `forwards`."""
    names, spread = set(), False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            spread = True
        elif p.kind is not p.VAR_POSITIONAL:
            names.add(p.name)
    if spread:
        for target in forwards:
            names |= signature_options(target)
    return frozenset(names - NOT_OPTIONS)


CASTS = {"int": int, "float": float, "bool": bool, "str": str, "int | None": int,
         "float | None": float, "str | None": str}


class OptionRecord:
    """Base of a variant's typed options: a frozen dataclass whose fields are made with
    `raviso.core.config.option` (default, help, check and problem), as a stage's config is. A value
    is cast to its field's type (``name[epochs=5]`` strings, JSON numbers) and checked; the first
    failed check is one error naming the option."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, cast = getattr(self, f.name), CASTS.get(str(f.type))
            if cast is not None and value is not None:
                try:
                    object.__setattr__(self, f.name, cast(value))
                except (TypeError, ValueError):
                    raise RavisoError(f"bad option {f.name}={value!r} (a {f.type})") from None
        for f in dataclasses.fields(self):
            check, value = f.metadata.get("check"), getattr(self, f.name)
            if check is not None and not check(value):
                raise RavisoError(f"bad option {f.name}={value!r} ("
                                  f"{f.metadata.get('problem') or 'not valid'})")

    @classmethod
    def take(cls, options: dict) -> tuple["OptionRecord", dict]:
        """(the record of the options it has, the rest)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return (cls(**{k: v for k, v in options.items() if k in names}),
                {k: v for k, v in options.items() if k not in names})

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class VariantSpec:
    """Everything raviso knows about one variant."""

    name: str
    factory: Callable                     # factory(**options) -> Predictor
    kind: str                             # "baseline" | "paper" | "model"
    describe: str                         # one line
    needs: Callable[[dict], set]          # resolved options -> {"genes", "tissue", "latent:<k>"}
    default: bool = False                 # in `raviso cv`'s default list
    forwards: tuple = ()                  # what the factory's **kwargs are passed to
    drop: frozenset = frozenset()         # forwarded arguments the variant does not expose
    gene_copies: float = GENE_COPIES      # copies of the training genes a trial holds
    isoform_bytes: int = 0                # bytes per isoform of a neural model (0: not neural)
    inner_split: bool = False             # fits on an inner early-stop split (two target copies)
    context_model: bool = False           # trained by the context recipe: takes tissue=False
    saves: type | None = None             # the class whose save/load keep a fitted one (MODEL)
    space: dict = field(default_factory=dict)   # default search space (`raviso tune`)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"variant {self.name}: kind must be one of {KINDS}")

    @property
    def options(self) -> frozenset:
        return signature_options(self.factory, self.forwards) - self.drop


def split_list(text: str) -> list[str]:
    """'a,b[x=1,y=2],c' -> ['a', 'b[x=1,y=2]', 'c'] (commas inside brackets kept)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [s.strip() for s in out + [cur] if s.strip()]


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


def parse_spec(text: str) -> tuple[str, str, dict]:
    """'share_net[context=vae]@tuned' -> (display name, base variant, options in the brackets)."""
    text = str(text).strip()
    head, _, tag = text.partition("@")
    base, bracket, rest = head.partition("[")
    options: dict = {}
    if bracket:
        if not rest.endswith("]"):
            raise RavisoError(f"bad variant spec {text!r}: expected name[option=value,...]")
        for item in split_list(rest[:-1]):
            key, eq, val = item.partition("=")
            if not eq or not key.strip():
                raise RavisoError(f"bad variant spec {text!r}: {item!r} is not option=value")
            options[key.strip()] = _value(val.strip())
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    display = base.strip() + (f"[{opts}]" if options else "") + (f"@{tag}" if tag else "")
    return display, base.strip(), options
