"""The Ray Data side of pretraining: the store's ARCHS4 rows split into train and validation by a
hash of the sample id (stable across runs and worker counts), the GTEx rows as a second
validation set, file-level or global shuffles, and materialisation in the object store when the
datasets fit."""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.store import rows_per_group
from .config import TrainConfig


def is_validation(sample_ids, fraction: float) -> np.ndarray:
    """Deterministic held-out mask: crc32 of the sample id, stable across processes and runs."""
    if fraction <= 0:
        return np.zeros(len(sample_ids), bool)
    cut = fraction * 2.0 ** 32
    return np.fromiter((zlib.crc32(str(s).encode()) < cut for s in sample_ids), bool,
                       count=len(sample_ids))


def _keep_split(table, fraction: float, want_val: bool):
    """map_batches body: the rows of one side of the split, expression column only."""
    ids = table.column("sample_id").to_pylist()
    mask = is_validation(ids, fraction)
    if not want_val:
        mask = ~mask
    return table.select(["expr"]).filter(pa.array(mask))


def build_datasets(store, tc: TrainConfig, object_store_bytes: float = 0) -> dict:
    """Ray Datasets for the trainer: "train" (reshuffled per epoch), "val", "gtex" (if present).

    Small stores (everything under a quarter of the object store with ``materialize="auto"``; under
    80% of it for ``--gpu``, whose appetite streaming cannot feed) are
    read ONCE by the driver with pyarrow and put in the object store (`ray.data.from_arrow`, no
    read tasks, whose worker start-up costs seconds on a small machine); training then reshuffles
    by `randomize_block_order` (cheap on in-memory blocks) plus the local buffer. Larger stores
    stream from Parquet every epoch with the file order re-drawn (see the module docstring).
    """
    import ray.data
    from ray.data import FileShuffleConfig

    total = sum(store.n_rows(n) * len(store.genes) * 4 for n in ("archs4", "gtex_gene")
                if store.has(n))
    # a GPU consumes rows several times faster than streamed Parquet delivers them, and faster
    # than the object store does too (bench/README.md, scale): GPU runs hold whatever fits
    hold = tc.materialize == "always" or (tc.materialize == "auto" and total < (
        0.8 if tc.gpu else 0.25) * object_store_bytes)
    want_gtex = tc.eval_gtex and store.has("gtex_gene")
    if hold:
        def held(name, cols, want_val=None):
            table = pq.ParquetDataset(store.path_of(name), filesystem=store.fs).read(columns=cols)
            if want_val is not None:
                table = _keep_split(table, tc.val_fraction, want_val)
            step = rows_per_group(len(store.genes))
            return ray.data.from_arrow([table.slice(i, step)
                                        for i in range(0, max(1, table.num_rows), step)])

        cols = ["sample_id", "expr"]
        datasets = {"train": held("archs4", cols, False)}
        if tc.val_fraction > 0:
            datasets["val"] = held("archs4", cols, True)
        if want_gtex:
            datasets["gtex"] = held("gtex_gene", ["expr"])
        if tc.shuffle == "files":
            datasets["train"] = datasets["train"].randomize_block_order()
    else:
        shuffle = (FileShuffleConfig(seed=tc.seed, reseed_after_execution=True)
                   if tc.shuffle == "files" else None)

        def split(want_val, **read):
            ds = store.ray_dataset("archs4", **read).select_columns(["sample_id", "expr"])
            return ds.map_batches(
                _keep_split, batch_format="pyarrow", batch_size=None,
                fn_kwargs={"fraction": tc.val_fraction, "want_val": want_val})

        datasets = {"train": split(False, shuffle=shuffle)}
        if tc.val_fraction > 0:
            datasets["val"] = split(True)
        if want_gtex:
            datasets["gtex"] = store.ray_dataset("gtex_gene").select_columns(["expr"])
    if tc.shuffle == "global":
        datasets["train"] = datasets["train"].random_shuffle()
    return datasets


def expression_batches(batches):
    for b in batches:
        yield b["expr"]
