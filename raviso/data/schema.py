"""What a store is on disk: its layout, the manifest's name and the Arrow type of its one expression
column (the whole vector as one ``arrow.fixed_shape_tensor``). Readers need only this; the writer
is `raviso.data.store`. Layout: docs/output.md and docs/internals.md."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EXPR = "expr"
GENE_DATASETS = ("archs4", "gtex_gene")
ISOFORM_DATASETS = ("gtex_isoform", "truth", "truth_heldout")
DATASETS = ("archs4", "gtex_gene", "gtex_isoform", "truth", "truth_heldout")


def expr_type(n_features: int) -> pa.DataType:
    return pa.fixed_shape_tensor(pa.float32(), [n_features])


def schema(n_features: int) -> pa.Schema:
    return pa.schema(
        [
            ("sample_id", pa.string()),
            ("tissue", pa.string()),
            ("donor", pa.string()),
            (EXPR, expr_type(n_features)),
        ]
    )


def tensor_array(X: np.ndarray) -> pa.ExtensionArray:
    """(n, d) float32 -> FixedShapeTensorArray without copying when X is C-contiguous float32."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(X)
