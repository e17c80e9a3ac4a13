"""`raviso encode RUN STORE`: posterior means of a store's samples as a latent Parquet dataset.
Design notes: docs/stages.md."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..io.align import column_index
from ..core.atomic import atomic_dir
from ..data.reader import Store, tensor_to_numpy
from ..core.errors import RavisoError
from .config import EncodeConfig
from .pretrain import connect, quiet_ray_data
from .runs import Run, load_run, weights_sha256
from ..data.store import tensor_array

WHICH = {"gtex": ("gtex",), "archs4": ("archs4",), "both": ("gtex", "archs4")}
DATASET_OF = {"gtex": "gtex_gene", "archs4": "archs4"}


def check_gene_order(run: Run, store: Store) -> None:
    """Refuse a store whose genes are not exactly the model's, in the model's order."""
    if list(store.genes) == list(run.genes):
        return
    idx, _ = column_index(store.genes, run.genes, source=store.uri, what="model genes")
    if len(store.genes) != len(run.genes):
        raise RavisoError(f"store has {len(store.genes)} genes, the model takes {len(run.genes)} "
                          f"({run.path}/genes.txt); re-convert the store with the model's genes",
                          store.uri)
    first = int(np.flatnonzero(idx != np.arange(len(idx)))[0])
    raise RavisoError(
        f"gene order differs from the model's ({run.path}/genes.txt): column {first} is "
        f"{store.genes[first]}, the model expects {run.genes[first]}; re-convert the store in the "
        "model's gene order", store.uri)


class _Encoder:
    """Ray Data callable class: one model per actor, posterior mean per batch."""

    def __init__(self, config: dict, state: list):
        import ray
        import torch

        from ..models.vae.model import VAE, VAEConfig

        state = ray.get(state[0])     # wrapped in a list: fetched here, not pinned as an arg
        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = VAE(VAEConfig.from_dict(config))
        self.model.load_state_dict(state)
        self.model.eval()

    def __call__(self, batch: dict) -> dict:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch["expr"], dtype=np.float32))
        return {"sample_id": batch["sample_id"], "z": self.model.encode(x).numpy()}


def encode(run, store, cfg: EncodeConfig | None = None, **options) -> dict[str, Path]:
    """Encode `cfg.which` (gtex, archs4 or both) of `store`; returns {which: output directory}.
    `options`: EncodeConfig fields replacing `cfg`'s."""
    cfg = EncodeConfig.build(cfg, **options)
    which, out, address = cfg.which, cfg.out, cfg.address
    batch_size, concurrency = cfg.batch_size, cfg.concurrency
    run = run if isinstance(run, Run) else load_run(run)
    store = store if isinstance(store, Store) else Store(store)
    check_gene_order(run, store)
    for w in WHICH[which]:
        store.require(DATASET_OF[w])
    out = Path(out) if out is not None else Path(store.root) / "latent" / run.name
    out.mkdir(parents=True, exist_ok=True)

    ray = connect(address)
    quiet_ray_data()
    state = ray.put({k: v.detach().clone() for k, v in run.model.state_dict().items()})
    written = {}
    for w in WHICH[which]:
        ds = _encoded(ray, store, DATASET_OF[w], run, state, batch_size, concurrency)
        with atomic_dir(out / w, overwrite=True) as tmp:
            rows = _write(ds, tmp / "part-00000.parquet", run.latent_dim)
            expected = store.n_rows(DATASET_OF[w])
            if rows != expected:
                raise RavisoError(f"encoded {rows} rows, the store holds {expected}", store.uri)
            (tmp / "latent.json").write_text(json.dumps({
                "run": str(Path(run.path).resolve()), "run_name": run.name,
                "weights_sha256": weights_sha256(run.path), "store": store.uri,
                "dataset": DATASET_OF[w], "rows": rows, "latent_dim": run.latent_dim}, indent=1))
        written[w] = out / w
    return written


def cached_latent(run: Run, store: Store, dataset: str = "gtex") -> Path | None:
    """``STORE/latent/<run name>/<dataset>`` only if THIS run wrote it: its latent.json names the
    same resolved RUN path and weights checksum. A re-trained RUN, or another RUN with the same
    folder name, gets None (the caller encodes afresh) instead of someone else's latents."""
    d = Path(store.root) / "latent" / run.name / dataset
    try:
        meta = json.loads((d / "latent.json").read_text())
    except (OSError, ValueError):
        return None
    if (meta.get("run") != str(Path(run.path).resolve())
            or meta.get("weights_sha256") != weights_sha256(run.path)):
        return None
    return d


def _encoded(ray, store, name, run, state, batch_size, concurrency):
    import ray.data

    ds = store.ray_dataset(name).select_columns(["sample_id", "expr"])
    ds.context.execution_options.preserve_order = True     # this dataset only: rows in store order
    from ray.data import ActorPoolStrategy

    # max_restarts=0: the weights are a constructor argument in the object store, which Ray
    # cannot promise to keep for a restart; a failed encode is simply re-run (it is atomic).
    # Ray 2.60 has no named parameter for it yet, hence the silenced deprecation warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ds.map_batches(
            _Encoder, fn_constructor_kwargs={"config": run.model_config.to_dict(),
                                             "state": [state]},
            batch_size=batch_size, batch_format="numpy",
            compute=ActorPoolStrategy(size=concurrency), max_restarts=0)


def _write(ds, path: Path, latent_dim: int) -> int:
    schema = pa.schema([("sample_id", pa.string()),
                        ("z", pa.fixed_shape_tensor(pa.float32(), [latent_dim]))])
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            ids = pa.array([str(s) for s in batch["sample_id"]], pa.string())
            writer.write_table(pa.Table.from_arrays([ids, tensor_array(batch["z"])], schema=schema))
            rows += len(ids)
    return rows


def read_latent(path) -> tuple[np.ndarray, np.ndarray]:
    """(sample_id (n,) str, Z (n, latent) float32) from an encode output directory or file."""
    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise RavisoError("no latent Parquet files (run `raviso encode` first)", path)
    try:
        table = pa.concat_tables([pq.read_table(f, columns=["sample_id", "z"]) for f in files])
    except (pa.ArrowInvalid, KeyError, OSError) as e:
        raise RavisoError(f"not a latent dataset: {str(e).splitlines()[0]}", path) from None
    return (np.asarray(table.column("sample_id").to_pylist(), dtype=str),
            tensor_to_numpy(table.column("z")))
