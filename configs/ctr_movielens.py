r"""Rocket Launching on MovieLens-100k as CTR (label = rating >= 4; per-user temporal split).

    python -m rocket.main --config=configs/ctr_movielens.py --workdir=/tmp/ml100k

Presets after ``:``: ``quick`` (2 epochs), ``tiny`` (synthetic data, for tests), ``tuned`` (no
crosses, embedding L2 1e-2, up to 20 epochs with early stopping: paper_repro/results/ctr_movielens_l2;
the earlier tuned point, crosses sized from the data and 4 epochs, is results/ctr_movielens_tuned).
"""

from rocket.ctr.config import apply_preset, base_config


def get_config(arg: str = ""):
  c = base_config("movielens")
  c.features.crosses = "item*user_age*user_gender,item*user_occupation"
  c.batch_size = 512
  c.num_epochs = 3  # the best validation AUC comes within the first two epochs
  c.eval_every_epochs = 0.25
  c = apply_preset(c, arg, "configs/ctr_movielens.py")
  if arg == "tuned":  # results/ctr_movielens_l2: the crosses overfit (-0.008 AUC); L2 on the rows
    c.features.crosses = ""  # a batch looks up lets the nets train for 5-10 epochs, not 1
    c.embedding.l2 = 1e-2
    c.num_epochs, c.select.patience = 20, 8
  return c
