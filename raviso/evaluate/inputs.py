"""What `raviso cv`, `raviso tune` and `raviso fit` read before training: the variants by name,
the pretrained RUN behind each latent they need, and the store's labelled set with those latents
attached (columns aligned by gene name to the run's genes)."""

from __future__ import annotations

import numpy as np

from ..data.reader import Store
from ..core.errors import RavisoError
from ..data.labelled import Labelled


def parse_variants(text) -> list[str]:
    """'a,b' or a list -> validated variant names (default: raviso's recommended models, the
    paper's variants and the baselines)."""
    from ..models.variants import BASELINES, PAPER_VARIANTS, RECOMMENDED, VARIANTS

    if text is None or text == "" or text == []:
        return list(RECOMMENDED) + list(PAPER_VARIANTS) + list(BASELINES)
    names = [v.strip() for v in (text.split(",") if isinstance(text, str) else text) if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise RavisoError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    if len(set(names)) != len(names):
        raise RavisoError(f"variant listed twice in {','.join(names)}")
    return names


def latent_runs(variants, pretrained=None, pretrained_ae=None) -> dict[str, str]:
    """Which latent spaces the variants need -> the run that provides each (error if not given)."""
    from ..models.variants import variant_needs

    given = {"vae": pretrained, "ae": pretrained_ae}
    flag = {"vae": "--pretrained", "ae": "--pretrained-ae"}
    runs = {}
    for v in variants:
        for need in variant_needs(v):
            if not need.startswith("latent:"):
                continue
            name = need.split(":", 1)[1]
            if name not in given:
                raise RavisoError(f"variant {v} needs latent {name!r}, which raviso cv cannot make")
            if not given[name]:
                raise RavisoError(f"variant {v} needs a pretrained run: pass {flag[name]} RUN")
            runs[name] = str(given[name])
    return runs


def latent_for(run_path, store: Store, data: Labelled) -> tuple[np.ndarray, np.ndarray]:
    """(sample_id, Z) of the labelled samples in `run_path`'s latent space: read from
    ``STORE/latent/<run name>/gtex`` when `raviso encode` wrote it with THIS run (same path and
    weights checksum: `cached_latent`), else encoded in memory from `data.genes` (columns aligned
    by name to the run's genes)."""
    from ..train.encode import cached_latent, read_latent
    from ..train.runs import load_run

    run = load_run(run_path)
    cached = cached_latent(run, store)
    if cached is not None:
        return read_latent(cached)
    return data.sample_id, run.encode_named(data.genes, data.gene_names, source=store.uri)


def attach_latents(data: Labelled, store: Store, runs: dict[str, str]) -> None:
    for name, run_path in runs.items():
        sid, Z = latent_for(run_path, store, data)
        data.add_latent(name, sid, Z)


def load_labelled(store, runs: dict[str, str], target_dtype: str = "auto"
                  ) -> tuple[Store, Labelled]:
    """The store's labelled set, its matrices memory-mapped (`raviso.data.mapped`: one copy per
    machine, shared by every trial, pickled as an address), with the latents `runs` provide."""
    st = store if isinstance(store, Store) else Store(store)
    data = Labelled.from_store(st, mapped=True, target_dtype=target_dtype)
    attach_latents(data, st, runs)
    return st, data
