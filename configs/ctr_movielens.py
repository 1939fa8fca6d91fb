r"""Rocket Launching on MovieLens-100k as CTR (label = rating >= 4; per-user temporal split).

    python -m rocket.main --config=configs/ctr_movielens.py --workdir=/tmp/ml100k

Presets after ``:``: ``quick`` (2 epochs), ``tiny`` (synthetic data, for tests), ``tuned`` (crosses
sized from the data, early stopping, 4 epochs: paper_repro/results/ctr_movielens_tuned).
"""

from rocket.ctr.config import apply_preset, base_config


def get_config(arg: str = ""):
  c = base_config("movielens")
  c.features.crosses = "item*user_age*user_gender,item*user_occupation"
  c.batch_size = 512
  c.num_epochs = 3  # the best validation AUC comes within the first two epochs
  c.eval_every_epochs = 0.25
  if arg == "tuned":  # results/ctr_movielens_tuned (weight decay did not help here)
    c.num_epochs = 4
  return apply_preset(c, arg, "configs/ctr_movielens.py")
