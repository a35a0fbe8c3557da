"""Dataset readers behind one registry; importing this package registers every built-in reader."""

from lnlbench.data import cifar, digits, folder  # noqa: F401  (each module registers its readers on import)
from lnlbench.data.base import DATASETS, Dataset, DatasetReader, Split, load_dataset, register_dataset

__all__ = ["DATASETS", "Dataset", "DatasetReader", "Split", "load_dataset", "register_dataset"]

from lnlbench.data import clothing1m, webvision  # noqa: E402,F401  (Clothing1M, WebVision and ILSVRC2012-val readers)
