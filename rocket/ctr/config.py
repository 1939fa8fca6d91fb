"""The shared base of the CTR config files (``configs/ctr_*.py``).

Every field can be overridden on the command line, e.g.::

    python -m rocket.main --config=configs/ctr_frappe.py --workdir=/tmp/frappe \
        --config.method=light --config.embedding.rows=qr --config.embedding.buckets=500
"""

from __future__ import annotations

import ml_collections

from rocket.config_util import core_config
from rocket.ctr.embeddings import default_embedding_config


def base_config(dataset: str) -> ml_collections.ConfigDict:
  # the fields every task reads (method, hint, kd, optim, devices, bookkeeping):
  # rocket/config_util.py's core_config, with the CTR defaults below
  c = core_config()
  c.task = "ctr"

  # What to train (methods: light | booster | rocket | rocket_kd | kd).
  # The served net: a small MLP over the concatenated embeddings (lr | fm | deepfm | autoint | mlp |
  # finalmlp | din, which needs features.history).
  # dropout: after each hidden layer, in training; batch_norm: before each hidden ReLU;
  # attention_layers / heads: kind autoint (heads: also finalmlp's fusion heads).
  c.light = ml_collections.ConfigDict(dict(kind="mlp", hidden="32", cross_layers=0, dropout=0.0,
                                           batch_norm=False, attention_layers=0, heads=2))
  # The booster: deep and wide MLP with DCN-v2 cross layers beside it.
  c.booster = ml_collections.ConfigDict(dict(kind="mlp", hidden="512,256,128", cross_layers=2,
                                             dropout=0.0, batch_norm=False, attention_layers=0,
                                             heads=2))
  c.share = "embedding"  # embedding (paper: the nets share the embedding layer) | none
  c.hint.weight = 0.1
  c.kd.alpha, c.kd.temperature = 0.5, 1.0

  # Data and features.
  c.dataset = dataset  # frappe | movielens | synthetic_ctr | criteo | avazu
  c.data_dir = ""  # "" = ../shared/data/ctr/<dataset> beside the checkout, or $ROCKET_DATA_DIR/ctr
  c.cache_dir = ""
  c.features = ml_collections.ConfigDict(dict(
      min_count=1,  # values seen fewer times in train map to the OOV id 0
      hash_buckets=0,  # >0: hashing trick for every base field instead of a vocabulary
      train_subset=0,
      crosses="",  # hashed crosses computed in-graph, e.g. "item*user_age,item*user_gender"
      cross_buckets=10_000,  # rows of each cross's table; 0 = from the data (cross_load)
      cross_load=0.25,  # cross_buckets=0: distinct training values per bucket (rows = distinct / load)
      # movielens: each user's `history` most recent earlier items as a sequence field (0 = none;
      # every net pools it, kind din attends over it); history_of: rated (all) | liked (rating >= 4)
      history=0,
      history_of="rated",
  ))
  c.synthetic_ctr = ml_collections.ConfigDict(dict(num_users=200, num_items=300, num_train=20_000,
                                                   num_test=4_000))
  # compression: rows / dims / rank / dtype / qat; l2: penalty on the rows a batch looks up
  c.embedding = default_embedding_config()

  # Optimisation.
  c.num_epochs = 5  # Frappe and MovieLens overfit after a few epochs; metrics.jsonl has every epoch
  c.batch_size = 1024
  c.eval_batch_size = 4096
  c.optim.update(name="adam", lr=1e-3, nesterov=False, weight_decay=0.0, schedule="constant",
                 lr_boundaries=(0.5, 0.75), lr_decay=0.1)

  # Bookkeeping.
  c.eval_every_epochs = 0.5  # CTR nets overfit within a few epochs: evaluate often, pick by valid AUC
  c.select.metric = "valid/{net}_auc"  # keep (and export) the best-validation checkpoint
  return c


def apply_preset(c: ml_collections.ConfigDict, arg: str, path: str) -> ml_collections.ConfigDict:
  """Presets shared by the CTR config files: "" (full), "quick" (a minute on CPU), "tiny" (tests),
  "tuned" (crosses sized from the data, early stopping; a config file adds its own numbers)."""
  if arg == "tuned":  # paper_repro/sweeps/ctr_tuned.py, results/ctr_*_tuned*
    c.features.cross_buckets = 0
    c.select.patience = 6
  elif arg == "quick":
    c.num_epochs = 2
  elif arg == "tiny":
    c.dataset = "synthetic_ctr"
    c.synthetic_ctr.num_train, c.synthetic_ctr.num_test = 2048, 512
    c.features.crosses = "item*hour"  # the synthetic fields: user, item, hour, device
    c.booster.hidden = "64,32"
    c.num_epochs, c.batch_size, c.eval_batch_size = 2, 256, 512
    c.log_every_steps = 4
    c.progress_bar = False
  elif arg:
    raise ValueError(f"unknown preset {arg!r} for {path}; use '', 'quick', 'tiny' or 'tuned'")
  return c
