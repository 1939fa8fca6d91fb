r"""Rocket Launching on Frappe (app-usage CTR, 10 fields, 957 users).

    python -m rocket.main --config=configs/ctr_frappe.py --workdir=/tmp/frappe
    python -m rocket.main --config=configs/ctr_frappe.py --config.method=light --workdir=/tmp/frappe_light

Presets after ``:``: ``quick`` (2 epochs), ``tiny`` (synthetic data, for tests), ``tuned`` (crosses
sized from the data, early stopping, weight decay 1e-4, 15 epochs: paper_repro/results/ctr_frappe_tuned_wd).
The data is a fixed 80/10/10 re-split of the libfm release (see rocket/ctr/data.py).
"""

from rocket.ctr.config import apply_preset, base_config


def get_config(arg: str = ""):
  c = base_config("frappe")
  c.features.crosses = "user*item,item*daytime"
  if arg == "tuned":  # results/ctr_frappe_tuned_wd: the light net alone beats every sklearn baseline
    c.num_epochs, c.optim.weight_decay = 15, 1e-4
  return apply_preset(c, arg, "configs/ctr_frappe.py")
