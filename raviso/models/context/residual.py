"""The ridge start's target (step 3 of `raviso.models.context.recipe`): the residual of the start
against the isoforms, read block by block, never materialised whole."""

from __future__ import annotations

import numpy as np
import torch

from ...data.labelled import Labelled
from ..baselines.standard import tpm


class StartResidual:
    """``Y - start`` where start is the share term at its starting point, read per (rows, column
    block) like an array (what `ridge_select_fit` indexes, once per block), so the residual of
    157k isoforms is never materialised whole. Numpy on a CPU; on another `device` (a GPU) the
    elementwise work runs there with torch, the training rows' genes uploaded once
    (``use_torch`` forces the choice: tests run the torch path on a CPU). `genes`: the anchored
    genes of `rows` (share_net's fitted anchor) in place of the measured ones."""

    def __init__(self, data: Labelled, share: np.ndarray, free: np.ndarray, device="cpu",
                 use_torch: bool | None = None, genes: np.ndarray | None = None,
                 rows: np.ndarray | None = None):
        self.data, self.share, self.free = data, share, free
        self.anchored = None if genes is None else (np.asarray(rows, np.int64), genes)
        self.gene_of = np.asarray(data.isoform_gene, np.int64)
        self.shape = data.isoforms.shape
        self.device = torch.device(device)
        self.torch = self.device.type != "cpu" if use_torch is None else bool(use_torch)
        self._genes: tuple | None = None       # (rows, their genes on the device)

    def __getitem__(self, key):
        rows, cols = key
        gene = self.gene_of[cols]
        if self.torch:
            return self._torch_block(np.asarray(rows), cols, gene)
        g = tpm(self.gene_values(np.asarray(rows))[:, np.maximum(gene, 0)])
        start = np.where(gene >= 0, np.log2(self.share[cols] * g + 1.0), 0.0) + self.free[cols]
        return self.data.isoforms[rows, cols].astype(np.float64) - start

    def gene_values(self, rows: np.ndarray) -> np.ndarray:
        """(rows, genes) log2: the measured genes, or the anchored ones of the fitting rows."""
        if self.anchored is None:
            return self.data.genes[rows]
        fit_rows, genes = self.anchored
        order = np.argsort(fit_rows)
        return genes[order[np.searchsorted(fit_rows, rows, sorter=order)]]

    def _torch_block(self, rows: np.ndarray, cols, gene: np.ndarray) -> np.ndarray:
        dev = self.device
        if self._genes is None or not np.array_equal(self._genes[0], rows):
            self._genes = (rows, torch.from_numpy(
                np.ascontiguousarray(self.gene_values(rows), np.float32)).to(dev))
        at = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        tpm = torch.clamp(torch.exp2(self._genes[1][:, at(np.maximum(gene, 0))].double()) - 1.0,
                          min=0.0)
        start = torch.where(at(gene >= 0), torch.log2(at(self.share[cols]) * tpm + 1.0), 0.0)
        y = at(self.data.isoforms[rows, cols]).double()
        return (y - start - at(self.free[cols])).cpu().numpy()
