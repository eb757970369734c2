"""meddata: machine-learning-ready medical datasets in one typed, OMOP-aligned format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meddata.errors import MeddataError

if TYPE_CHECKING:
    from meddata.dataset import Dataset, load

__all__ = ["Dataset", "MeddataError", "__version__", "load"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Dataset and load bring in pyarrow and polars: imported on first use, so `meddata --help`
    # and the conversion workers (which never load a dataset) start without them.
    if name in ("Dataset", "load"):
        from meddata import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'meddata' has no attribute {name!r}")
