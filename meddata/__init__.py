"""meddata: machine-learning-ready medical datasets in one typed, OMOP-aligned format."""

from meddata.dataset import Dataset, load
from meddata.errors import MeddataError

__all__ = ["Dataset", "MeddataError", "__version__", "load"]
__version__ = "0.1.0"
