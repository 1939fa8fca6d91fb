"""``load_dataset(config)``: the one place that picks an image dataset by name."""

from __future__ import annotations

from rocket.data import cifar10, synthetic
from rocket.data.base import Dataset, DatasetError, subset


def load_dataset(config) -> Dataset:
  """The image dataset named by ``config.dataset``, with ``train_subset``/``test_subset`` applied."""
  name = config.dataset
  seed = data_seed(config)
  if name == "cifar10":
    ds = cifar10.load(config.data_dir, config.cache_dir)
  elif name in ("cifar100", "svhn"):
    from rocket.data import tfds_data  # noqa: PLC0415 -- imports tensorflow-datasets when present

    ds = tfds_data.load(name, config.data_dir)
  elif name == "synthetic":
    ds = synthetic.load(config.synthetic, seed=seed)
  else:
    raise DatasetError(
        f"unknown dataset {name!r}; choose one of cifar10, cifar100, svhn, synthetic")
  ds.train_images, ds.train_labels = subset(
      ds.train_images, ds.train_labels, config.train_subset, seed)
  if config.test_subset > 0:  # a fixed random subset (the same for every seed): the CIFAR-10
    # copy is sorted by class, so the first N images would hold only one or two classes
    ds.test_images, ds.test_labels = subset(ds.test_images, ds.test_labels, config.test_subset, seed=0)
  return ds


def data_seed(config) -> int:
  """The seed of the drawn data (synthetic images, ``train_subset``): ``config.data_seed``, or the
  run's ``seed`` when that is negative (the default)."""
  ds = config.get("data_seed", -1)
  return config.seed if ds < 0 else ds


def data_depends_on_seed(config) -> bool:
  """Whether runs that differ only in ``seed`` train on different data."""
  drawn = config.dataset == "synthetic" or config.train_subset > 0
  return drawn and config.get("data_seed", -1) < 0
