"""aekit's data layer: named data sets, user files, preprocessing and mini-batches.

``load_dataset(name_or_path)`` returns a ``DatasetSplits`` whose splits are whole float32
tensors; ``batches`` slices them by one seeded permutation per epoch; ``Preprocessing`` records
the scaling, binarization and flattening a model was trained with. Named data sets (``DATASETS``)
are looked for in ``data_dir``, then ``AEKIT_DATA``, then the cache, and downloaded with a
checksum check when missing; see ``list_datasets``.
"""

from aekit.data.batches import batches, num_batches
from aekit.data.catalog import DATASETS, DatasetSpec, list_datasets
from aekit.data.download import FileSpec, resolve_file
from aekit.data.load import load_dataset
from aekit.data.preprocess import Preprocessing
from aekit.data.splits import DatasetSplits, Split

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetSplits",
    "FileSpec",
    "Preprocessing",
    "Split",
    "batches",
    "list_datasets",
    "load_dataset",
    "num_batches",
    "resolve_file",
]
