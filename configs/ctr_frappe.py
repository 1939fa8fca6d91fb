r"""Rocket Launching on Frappe (app-usage CTR, 10 fields, 957 users).

    python -m rocket.main --config=configs/ctr_frappe.py --workdir=/tmp/frappe
    python -m rocket.main --config=configs/ctr_frappe.py --config.method=light --workdir=/tmp/frappe_light

Presets after ``:``: ``quick`` (2 epochs), ``tiny`` (synthetic data, for tests).
The data is a fixed 80/10/10 re-split of the libfm release (see rocket/ctr/data.py).
"""

from rocket.ctr.config import apply_preset, base_config


def get_config(arg: str = ""):
  c = base_config("frappe")
  c.features.crosses = "user*item,item*daytime"
  return apply_preset(c, arg, "configs/ctr_frappe.py")
