"""What `raviso cv`, `raviso tune` and `raviso fit` read before training: the variants by name,
the pretrained RUN behind each latent they need, and the store's labelled set with those latents
attached (columns aligned by gene name to the run's genes)."""

from __future__ import annotations

import numpy as np

from ...data.reader import Store
from ...core.errors import RavisoError
from ...data.labelled import Labelled


def variant_groups() -> dict[str, tuple[str, ...]]:
    """The names `--variants` takes for a group: ``default`` (what cv runs unasked) and ``paper``
    (the paper's variants)."""
    from ...models.variants import DEFAULT_VARIANTS, PAPER_VARIANTS

    return {"default": tuple(DEFAULT_VARIANTS), "paper": tuple(PAPER_VARIANTS)}


def _expand(text) -> tuple[list[str], set[str]]:
    """(display names, those that came from a group name) of a --variants value."""
    from ...models.spec import parse_spec, split_list

    if text is None or text == "" or text == []:
        text = ["default"]
    groups, names, grouped = variant_groups(), [], set()
    for item in (split_list(text) if isinstance(text, str) else text):
        item = str(item).strip()
        if item in groups:
            names += [v for v in groups[item] if v not in names]
            grouped.update(groups[item])
        elif item:
            names.append(parse_spec(item)[0])
    return names, grouped


def parse_variants(text) -> list[str]:
    """'a,b[option=value,...]' or a list -> validated variant display names (default: every
    variant of `DEFAULT_VARIANTS`; ``default`` and ``paper`` name groups, e.g.
    ``default,paper,ffnn_plus``; `available_variants` drops those a store cannot feed).
    ``share_net[context=vae]`` is share_net with that option, a leaderboard column of its own."""
    from ...models.spec import parse_spec
    from ...models.variants import VARIANTS, resolve_options

    names, _ = _expand(text)
    unknown = [v for v in names if parse_spec(v)[1] not in VARIANTS]
    if unknown:
        raise RavisoError(f"unknown variant(s) {', '.join(unknown)} (known: "
                          f"{', '.join([*variant_groups(), *VARIANTS])})")
    if len(set(names)) != len(names):
        raise RavisoError(f"variant listed twice in {','.join(names)}")
    for v in names:
        resolve_options(v)           # options in brackets: known to that variant
    return names


def available_variants(text, pretrained=None, pretrained_ae=None, options=None
                       ) -> tuple[list[str], dict[str, str]]:
    """(variants to run, {skipped variant: why}). A variant named on its own is run as given (a
    missing input is then an error, from `latent_runs`); those of a group (the default list,
    ``paper``) are kept when their inputs are there, and the others are named with why."""
    names = parse_variants(text)
    _, grouped = _expand(text)
    given = {"vae": pretrained, "ae": pretrained_ae}
    keep, skipped = [], {}
    for v in names:
        missing = sorted(k for k in _latents(v, options) if not given.get(k))
        if missing and v in grouped:
            skipped[v] = f"needs a pretrained run ({', '.join(FLAGS.get(k, k) for k in missing)})"
        else:
            keep.append(v)
    return keep, skipped


FLAGS = {"vae": "--pretrained", "ae": "--pretrained-ae"}
NO_TISSUE = "no tissue given (the store's tissue column is empty): a tissue baseline would be "\
    "its plain twin"


def drop_tissue_baselines(names: list, tissue, progress) -> None:
    """Remove `tissue_baselines` from `names` in place, saying why."""
    for v in tissue_baselines(names, tissue):
        progress(f"skipping {v}: {NO_TISSUE}")
        names.remove(v)


def tissue_baselines(names, tissue) -> list[str]:
    """The baselines of `names` that exist only to read tissue, when `tissue` (the labelled
    rows') tells fewer than two apart: they are not built (`NO_TISSUE`)."""
    from ...models.spec import parse_spec
    from ...models.variants import BASELINES, variant_needs

    known = {str(t) for t in ([] if tissue is None else list(tissue)) if t not in (None, "")}
    if len(known) > 1:
        return []
    return [v for v in names if parse_spec(v)[1] in BASELINES and "tissue" in variant_needs(v)]


def _latents(variant: str, options) -> list[str]:
    from ...models.variants import variant_needs

    return [n.split(":", 1)[1] for n in sorted(variant_needs(variant, **(options or {})))
            if n.startswith("latent:")]


def latent_runs(variants, pretrained=None, pretrained_ae=None, options=None,
                tuned_config=None) -> dict[str, str]:
    """Which latent spaces the variants need given their options (shared and per-variant, as
    `make_variant` resolves them; plus a best.json's) -> the run that provides each."""
    given = {"vae": pretrained, "ae": pretrained_ae}
    wanted = [(v, options) for v in variants]
    if tuned_config:
        from ..tune.space import read_best

        variant, tuned = read_best(tuned_config)
        wanted.append((variant, {**(options or {}), **tuned}))
    runs = {}
    for v, opts in wanted:
        for name in _optional_latents(v, opts):    # read when given (recommended's context)
            if given.get(name):
                runs[name] = str(given[name])
        for name in _latents(v, opts):
            if name not in given:
                raise RavisoError(f"variant {v} needs latent {name!r}, which raviso cv cannot make")
            if not given[name]:
                raise RavisoError(f"variant {v} needs a pretrained run: pass {FLAGS[name]} RUN")
            runs[name] = str(given[name])
    return runs


def _optional_latents(variant: str, options) -> list[str]:
    from ...models.variants import optional_latents

    return optional_latents(variant, **(options or {}))


def latent_for(run_path, store: Store, data: Labelled) -> tuple[np.ndarray, np.ndarray]:
    """(sample_id, Z) of the labelled samples in `run_path`'s latent space: read from
    ``STORE/latent/<run name>/gtex`` when `raviso encode` wrote it with THIS run (same path and
    weights checksum: `cached_latent`), else encoded in memory from `data.genes` (columns aligned
    by name to the run's genes)."""
    from ...train.encode import cached_latent, read_latent
    from ...train.runs import load_run

    run = load_run(run_path)
    cached = cached_latent(run, store)
    if cached is not None:
        return read_latent(cached)
    return data.sample_id, run.encode_named(data.genes, data.gene_names, source=store.uri)


def attach_latents(data: Labelled, store: Store, runs: dict[str, str]) -> None:
    """Each run's latent, and a loader of the run itself (small to pickle into every trial) for
    the context that fine-tunes its encoder."""
    from functools import partial

    from ...train.runs import load_run

    for name, run_path in runs.items():
        sid, Z = latent_for(run_path, store, data)
        data.add_latent(name, sid, Z)
        data.encoders[name] = partial(load_run, run_path)


def load_labelled(store, runs: dict[str, str], target_dtype: str = "auto"
                  ) -> tuple[Store, Labelled]:
    """The store's labelled set, its matrices memory-mapped (`raviso.data.mapped`: one copy per
    machine, shared by every trial, pickled as an address), with the latents `runs` provide."""
    st = store if isinstance(store, Store) else Store(store)
    data = Labelled.from_store(st, mapped=True, target_dtype=target_dtype)
    attach_latents(data, st, runs)
    return st, data
