"""CIFAR-100 and SVHN through tensorflow-datasets, for users who have it.

tfds is optional (``pip install -e ".[tfds]"``); the data must already be in
the tfds data dir (``tfds build cifar100`` on a machine with internet, or
``--config.data_dir`` pointing at a prepared tfds folder).
"""

from __future__ import annotations

import numpy as np

from rocket.data.base import Dataset, DatasetError, channel_stats

TFDS_NAMES = {"cifar100": ("cifar100", 100), "svhn": ("svhn_cropped", 10)}


def load(name: str, data_dir: str = "") -> Dataset:
  tfds_name, num_classes = TFDS_NAMES[name]
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DatasetError(
        f"dataset {name!r} is read through tensorflow-datasets, which is not installed. "
        f"Install it with `pip install -e \".[tfds]\"` and prepare the data with "
        f"`tfds build {tfds_name}` (needs internet once), or use --config.dataset=cifar10."
    ) from e
  try:
    splits = tfds.as_numpy(tfds.load(tfds_name, split=["train", "test"], batch_size=-1,
                                     as_supervised=True, data_dir=data_dir or None,
                                     download=False))
  except Exception as e:  # noqa: BLE001 -- tfds raises many types for missing data
    raise DatasetError(
        f"tensorflow-datasets could not load {tfds_name!r} ({e}). Prepare it with "
        f"`tfds build {tfds_name}` or point --config.data_dir at its tfds data dir.") from e
  (tr_x, tr_y), (te_x, te_y) = splits
  mean, std = channel_stats(tr_x)
  return Dataset(name, tr_x.astype(np.uint8), tr_y.astype(np.int32), te_x.astype(np.uint8),
                 te_y.astype(np.int32), num_classes, mean, std,
                 description=f"{tfds_name} (tensorflow-datasets)")
