"""`raviso tune STORE --variant V --trials N --out TUNE`: the command around
`raviso.evaluate.tune.search` (kept apart so the search itself does not import the cv driver,
which imports it for nested CV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tune import search, write_search


def tune_store(store, variant: str, trials: int, out, *, space_file=None, pretrained=None,
               pretrained_ae=None, max_epochs: int = 100, inner_folds: int = 3, seed: int = 0,
               group_by: str = "donor", fold_scheme: str = "kfold", scheduler: str = "asha",
               grace: int | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
               max_failures: int = 2, address: str | None = None, num_cpus: int | None = None,
               storage: str | None = None, overwrite: bool = False, progress=print) -> Path:
    """`raviso tune STORE --variant V --trials N --out TUNE`: search on ALL labelled rows (split
    into inner folds) and write TUNE/best.json, trials.parquet, search.png atomically."""
    from ..core.atomic import atomic_dir, check_writable_target
    from ..core.ray_session import init_ray
    from .inputs import latent_runs, load_labelled, parse_variants
    from .tune_space import default_space, is_dimension, read_space

    out = check_writable_target(Path(out), overwrite)
    (variant,) = parse_variants(variant)
    space = read_space(space_file, variant) if space_file else default_space(variant)
    runs = latent_runs([variant], pretrained, pretrained_ae,
                       {k: v for k, v in space.items() if not is_dimension(v)})
    progress(f"loading labelled set from {store}")
    st, data = load_labelled(store, runs)
    init_ray(address=address, num_cpus=num_cpus)
    base = {"seed": seed, **({"device": "cuda"} if gpus_per_trial else {})}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        outcome = search(data, np.arange(data.n), variant, space, trials=trials,
                         storage=storage or Path(tmp) / "tune", base_options=base,
                         max_epochs=max_epochs, inner_folds=inner_folds, seed=seed,
                         group_by=group_by, fold_scheme=fold_scheme, scheduler=scheduler,
                         grace=grace, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial, max_failures=max_failures,
                         progress=progress)
        outcome.best["search"].update(store=st.uri, pretrained=runs or None)
        write_search(tmp, outcome)
    return out
