"""The Parquet store: the writer (`store`), the reader (`reader.Store`), cross-validation folds
(`folds`), the labelled set (`labelled`) and remote copies (`remote`). May import core only.

`raviso.data.Store`, `raviso.data.make_folds` and `raviso.data.donor_of` are the documented Python
API and are re-exported here."""

from .folds import Folds, donor_of, make_folds
from .reader import Store

__all__ = ["Folds", "Store", "donor_of", "make_folds"]
