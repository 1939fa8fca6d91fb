"""Image datasets as uint8 NHWC arrays in host memory.

``load_dataset(config)`` returns a :class:`Dataset`; the per-step batching,
sharding and augmentation live in :mod:`rocket.input_pipeline`.
"""

from rocket.data.base import Dataset, DatasetError
from rocket.data.loaders import load_dataset

__all__ = ["Dataset", "DatasetError", "load_dataset"]
