"""``load_ctr_dataset(config)``: the one place that picks a CTR dataset by name (see
:mod:`rocket.ctr.data` for the datasets and their splits)."""

from __future__ import annotations

from rocket.ctr import criteo, data
from rocket.data.base import DatasetError


def load_ctr_dataset(config) -> data.CTRDataset:
  """The CTR dataset named by ``config.dataset`` (one of ``DATASETS``); see the module docstring."""
  name = config.dataset
  data_dir = str(data.config_get(config, "data_dir", "") or "")
  cache_dir = str(data.config_get(config, "cache_dir", "") or "")
  seed = int(data.config_get(config, "seed", 0))
  opts = data.FeatureOptions.from_config(config)
  if opts.history and name != "movielens":
    raise DatasetError(f"features.history (a past-items sequence) needs per-user event times: only "
                       f"movielens has them, not {name}; set --config.features.history=0")
  if name == "frappe":
    ds = data.load_frappe(data_dir, opts)
  elif name == "movielens":
    ds = data.load_movielens(data_dir, opts)
  elif name == "synthetic_ctr":
    ds = data.load_synthetic(data.config_get(config, "synthetic_ctr", None), seed, opts)
  elif name in ("criteo", "avazu"):
    ds = criteo.load(name, data_dir, cache_dir, opts)
  else:
    raise DatasetError(f"unknown CTR dataset {name!r}; choose one of {', '.join(data.DATASETS)}")
  ds.train = data.subset_train(ds.train, opts.train_subset, seed)
  return ds
