"""`raviso tune STORE --variant V --trials N --out TUNE`: the command around
`raviso.evaluate.tune.search.search` (kept apart so the search itself does not import the cv driver,
which imports it for nested CV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import TuneConfig
from .search import SearchRun, search, write_search


def tune_store(store, out, cfg: TuneConfig | None = None, *, progress=print,
               **options) -> Path:
    """Search on ALL labelled rows (split into inner folds) and write TUNE/best.json,
    trials.parquet, search.png atomically. `options`: TuneConfig fields replacing `cfg`'s."""
    import dataclasses

    from ...core.atomic import atomic_dir, check_writable_target
    from ...core.ray_session import init_ray
    from ..engine.inputs import latent_runs, load_labelled, parse_variants
    from .space import default_space, is_dimension, read_space

    cfg = TuneConfig.build(cfg, **options)
    out = check_writable_target(Path(out), cfg.overwrite)
    (variant,) = parse_variants(cfg.variant)
    cfg = dataclasses.replace(cfg, variant=variant)
    space = read_space(cfg.space, variant) if cfg.space else default_space(variant)
    runs = latent_runs([variant], cfg.pretrained, cfg.pretrained_ae,
                       {k: v for k, v in space.items() if not is_dimension(v)})
    progress(f"loading labelled set from {store}")
    st, data = load_labelled(store, runs)
    init_ray(address=cfg.address, num_cpus=cfg.num_cpus)
    base = {"seed": cfg.seed, **({"device": "cuda"} if cfg.gpus_per_trial else {})}
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        outcome = search(data, np.arange(data.n), space, cfg,
                         SearchRun(cfg.storage or Path(tmp) / "tune"), base_options=base,
                         progress=progress)
        outcome.best["search"].update(store=st.uri, pretrained=runs or None)
        write_search(tmp, outcome)
    return out
