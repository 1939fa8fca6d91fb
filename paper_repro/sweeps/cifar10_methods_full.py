"""Paper Table 1 at full scale: every method for the paper's three CIFAR-10 light/booster rows.

    python -m rocket.sweep --config=paper_repro/configs/paper.py:cifar10 \
        --sweep=paper_repro/sweeps/cifar10_methods_full.py --workdir=/tmp/sweeps/cifar10_methods_full

Rows of Table 1 (arXiv:1708.04106v3): WRN-16-1 + WRN-40-1 and WRN-16-2 + WRN-40-2 with the
interval sharing (b) (``share=interval``: every conv of the light net is the booster's), and
WRN-40-1 with the bottom sharing (a) (``share=bottom``). Under bottom the light net is the
booster's stem and first two groups (official ``rocket_bottom.py``; ``light.*`` is unused), so
that row has its own light-alone and KD runs (``wrn16-1_40-1a__light``, ``__kd``); its
booster-alone run and the pre-trained teacher of its KD and rocket+KD runs are the first row's
(``wrn16-1_40-1__booster``: the booster alone does not depend on the sharing). The paper gives no
AT number for bottom (and AT needs three groups). ``rocket_kd`` is rocket plus KD from that
pre-trained teacher, as the paper's Rocket+KD. With paper.py the KD/AT terms have the official
code's scales (``loss_convention=paper``). 16 runs x 3 seeds (the paper reports the median of 3)
of 200 epochs: GPU only (see paper_repro/README.md for times). The official bottom file drops
the LR at epochs 70/130/190; these runs keep paper.py's 60/120/160, the paper's text.

Run names are ``<pair>__<method>``; ``paper_repro/compare.py`` places runs by their config.
"""

PAIRS = {
    "wrn16-1_40-1": {"light.depth": 16, "light.width": 1, "booster.depth": 40, "booster.width": 1,
                     "share": "interval"},
    "wrn16-2_40-2": {"light.depth": 16, "light.width": 2, "booster.depth": 40, "booster.width": 2,
                     "share": "interval"},
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
        dict(name=f"{tag}__rocket_kd", overrides={**pair, "method": "rocket_kd"}, teacher=teacher),
    ]
  teacher = "wrn16-1_40-1__booster"
  runs += [
      dict(name="wrn16-1_40-1a__light", overrides={**BOTTOM, "method": "light"}),
      dict(name="wrn16-1_40-1a__kd", overrides={**BOTTOM, "method": "kd"}, teacher=teacher),
      dict(name="wrn16-1_40-1a__rocket", overrides={**BOTTOM, "method": "rocket"}),
      dict(name="wrn16-1_40-1a__rocket_kd", overrides={**BOTTOM, "method": "rocket_kd"}, teacher=teacher),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
