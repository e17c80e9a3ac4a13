"""What a store is on disk: the layout, the manifest's name and the Arrow type of its one
expression column. Readers (`reader.Store`, encode, predict) need only this; the writer is
`raviso.data.store`.

Layout::

    STORE/manifest.json          feature names, shapes, dtype, isoform->gene map, sources, version
    STORE/archs4/part-*.parquet  unlabelled compendium (genes)
    STORE/gtex_gene/part-*.parquet    labelled set, gene expression (same canonical gene order)
    STORE/gtex_isoform/part-*.parquet labelled set, isoform expression (rows match gtex_gene)
    STORE/truth/part-*.parquet   synthetic data only: noise-free isoform values (rows match)
    STORE/truth_heldout/part-*.parquet  synthetic only: held-out-donor expectation of the observed
                                 isoforms (`raviso.synth.heldout`; rows match)

Each row is one sample: ``sample_id`` (string), ``tissue`` and ``donor`` (string, null when unknown)
and ``expr``, the whole expression vector as ONE ``arrow.fixed_shape_tensor`` float32 column.
One column per gene is unusable at 18,965 or 156,958 features (multi-MB footers, OOM); the
Arrow-native tensor type arrives in Ray Data as an (n, d) tensor and stays readable without Ray.
"""

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
