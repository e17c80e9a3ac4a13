"""Search spaces for `raviso tune` / nested `raviso cv --tune N`, and the tuned-config file.

A search space is a JSON object, one entry per variant option (the names `make_variant` takes)::

    {"lr": {"loguniform": [1e-4, 1e-2]},      # sampled on a log scale
     "dropout": {"uniform": [0.0, 0.5]},
     "n_components": {"int": [16, 256]},      # integers, both ends included
     "hidden": {"choice": ["32", "64,32"]},   # one of these values
     "batch_size": {"grid": [32, 64]},        # every value (a grid: random search, no TPE)
     "scale": true}                           # anything else: a fixed value, not searched

``raviso tune --space FILE`` reads such an object (or ``{"space": {...}}``). The default spaces
below are deliberately narrow: on 16 trials a search learns little from dimensions that rarely
matter, and each dimension is one the variant actually takes (each variant's space is in its
registry record, `raviso.models.variants`) (``dropout`` and ``weight_decay`` only
where the model has them). Epochs are NOT a dimension: every trial of an FFNN variant
trains up to the budget (``max_epochs``), reports its inner-validation MSE after every epoch, and
the chosen config's ``epochs`` is the epoch where the best trial's pooled inner-validation MSE was
lowest -- the curve tunes it for free, and ASHA uses the same per-epoch reports to stop bad trials
early. ``share_net`` and ``ffnn_plus`` stop early on their own inner split (no per-epoch steps):
each trial is one full fit per inner fold, searched by TPE without ASHA.

``best.json`` (format ``raviso.tune.best/1``)::

    format, variant, options (everything make_variant needs, epochs included), inner_val_mse,
    best_epoch, trial_id, search {algorithm, scheduler, trials, inner_folds, max_epochs, space,
    seed, rows}, created, raviso_version

``raviso cv --config best.json`` and ``raviso fit --config best.json`` read it back
(`read_best`), so one tuned config is reused without searching again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from ... import __version__
from ...core.errors import RavisoError

BEST_FORMAT = "raviso.tune.best/1"
KINDS = ("loguniform", "uniform", "int", "choice", "grid")



def default_spaces() -> dict[str, dict]:
    """{variant: its default search space} from the registry (variants without one: absent)."""
    from ...models.variants import SPECS

    return {s.name: s.space for s in SPECS if s.space}


def default_space(variant: str) -> dict:
    """The documented default space of `variant`, restricted to the options it takes."""
    from ...models.variants import variant_options

    spaces = default_spaces()
    if variant not in spaces:
        raise RavisoError(f"variant {variant} has no default search space (tunable: "
                          f"{', '.join(sorted(spaces))}); pass --space FILE")
    takes = variant_options(variant)
    return {k: v for k, v in spaces[variant].items() if k in takes}


def read_space(path, variant: str) -> dict:
    """A --space FILE, checked against the options `variant` takes."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RavisoError("no such search-space file", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RavisoError(f"not a JSON search space: {e}", path) from None
    space = doc.get("space", doc) if isinstance(doc, dict) else None
    if not isinstance(space, dict) or not space:
        raise RavisoError("a search space is a non-empty JSON object of option: dimension",
                          path)
    check_space(space, variant, path)
    return space


def check_space(space: dict, variant: str, where="search space") -> None:
    from ...models.variants import variant_options

    takes = variant_options(variant)
    unknown = sorted(set(space) - set(takes))
    if unknown:
        raise RavisoError(f"{variant} takes no option(s) {', '.join(unknown)} (it takes: "
                          f"{', '.join(sorted(takes))})", where)
    if "epochs" in space:
        raise RavisoError("epochs is not a search dimension (it is chosen from the per-epoch "
                          "curve; set the budget with --max-epochs)", where)
    for name, dim in space.items():
        if not is_dimension(dim):
            continue
        (kind, arg), = dim.items()
        if kind in ("choice", "grid"):
            ok = isinstance(arg, list) and len(arg) > 0
        else:
            ok = (isinstance(arg, list) and len(arg) == 2
                  and all(isinstance(a, (int, float)) and math.isfinite(a) for a in arg)
                  and arg[0] < arg[1] and (kind != "loguniform" or arg[0] > 0))
        if not ok:
            raise RavisoError(f"bad dimension {name}: {json.dumps(dim)} (choice/grid take a "
                              "non-empty list; loguniform/uniform/int take [low, high], low < "
                              "high, loguniform low > 0)", where)


def is_dimension(dim) -> bool:
    return isinstance(dim, dict) and len(dim) == 1 and next(iter(dim)) in KINDS


def has_grid(space: dict) -> bool:
    return any(is_dimension(d) and "grid" in d for d in space.values())


def tune_domains(space: dict) -> dict:
    """raviso dimensions -> Ray Tune domains (fixed values pass through)."""
    from ray import tune

    make = {"loguniform": lambda a: tune.loguniform(*a), "uniform": lambda a: tune.uniform(*a),
            "int": lambda a: tune.randint(a[0], a[1] + 1), "choice": tune.choice,
            "grid": tune.grid_search}
    out = {}
    for name, dim in space.items():
        if is_dimension(dim):
            (kind, arg), = dim.items()
            out[name] = make[kind](arg)
        else:
            out[name] = dim
    return out


def plain(value):
    """numpy scalars from Tune/Optuna -> JSON-able Python values."""
    return value.item() if hasattr(value, "item") else value


# -- best.json -----------------------------------------------------------------------------------
def best_doc(variant: str, options: dict, inner_val_mse: float, best_epoch: int, trial_id: str,
             search: dict) -> dict:
    return {"format": BEST_FORMAT, "variant": variant,
            "options": {k: plain(v) for k, v in options.items()},
            "inner_val_mse": float(inner_val_mse), "best_epoch": int(best_epoch),
            "trial_id": trial_id, "search": search,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "raviso_version": __version__}


def read_best(path) -> tuple[str, dict]:
    """(variant, options) from a best.json written by `raviso tune` (checked)."""
    from ...models.variants import VARIANTS, variant_options

    path = Path(path)
    if path.is_dir():
        path = path / "best.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RavisoError("no such tuned config (raviso tune ... --out TUNE writes "
                          "TUNE/best.json)", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RavisoError(f"corrupt tuned config: {e}", path) from None
    if not isinstance(doc, dict) or doc.get("format") != BEST_FORMAT:
        raise RavisoError(f"not a tuned config (format {BEST_FORMAT} expected)", path)
    variant, options = doc.get("variant"), doc.get("options")
    if variant not in VARIANTS or not isinstance(options, dict):
        raise RavisoError(f"tuned config names unknown variant {variant!r}", path)
    unknown = sorted(set(options) - set(variant_options(variant)))
    if unknown:
        raise RavisoError(f"tuned config has option(s) {variant} does not take: "
                          f"{', '.join(unknown)}", path)
    return variant, options
