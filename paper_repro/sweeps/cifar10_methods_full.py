"""Paper Table 1 at full scale: every method for the paper's three CIFAR-10 light/booster rows.

    python -m rocket.sweep --config=paper_repro/configs/paper.py:cifar10 \
        --sweep=paper_repro/sweeps/cifar10_methods_full.py --workdir=/tmp/sweeps/cifar10_methods_full

Rows of Table 1 (arXiv:1708.04106v3): WRN-16-1 + WRN-40-1 and WRN-16-2 + WRN-40-2 with the
interval sharing (b) (our ``share=group_bottom``), and WRN-16-1 + WRN-40-1 with the bottom
sharing (a) (``share=bottom``). The light-alone, booster-alone, KD and AT runs do not depend on
the sharing, so row (a) reuses those of the first row (the paper lists separate numbers from its
separate "bottle" code). 3 seeds, as the paper (which reports their median). 16 runs x 3 seeds of
200 epochs: GPU only (see paper_repro/README.md for times).

Run names are ``<pair>__<method>``; ``paper_repro/compare.py`` places runs by their config.
"""

PAIRS = {
    "wrn16-1_40-1": {"light.depth": 16, "light.width": 1, "booster.depth": 40, "booster.width": 1,
                     "share": "group_bottom"},
    "wrn16-2_40-2": {"light.depth": 16, "light.width": 2, "booster.depth": 40, "booster.width": 2,
                     "share": "group_bottom"},
}
BOTTOM = {**PAIRS["wrn16-1_40-1"], "share": "bottom"}


def get_sweep():
  runs = []
  for tag, pair in PAIRS.items():
    teacher = f"{tag}__booster"
    runs += [
        dict(name=f"{tag}__light", overrides={**pair, "method": "light"}),
        dict(name=teacher, overrides={**pair, "method": "booster"}),
        dict(name=f"{tag}__at", overrides={**pair, "method": "at"}, teacher=teacher),
        dict(name=f"{tag}__kd", overrides={**pair, "method": "kd"}, teacher=teacher),
        dict(name=f"{tag}__rocket", overrides={**pair, "method": "rocket"}),
        dict(name=f"{tag}__rocket_kd", overrides={**pair, "method": "rocket_kd"}),
    ]
  runs += [
      dict(name="wrn16-1_40-1a__rocket", overrides={**BOTTOM, "method": "rocket"}),
      dict(name="wrn16-1_40-1a__rocket_kd", overrides={**BOTTOM, "method": "rocket_kd"}),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
