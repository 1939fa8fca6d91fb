"""Every method and ablation of the paper on one light/booster pair (CIFAR-10).

Use with a base config that sets the budget, e.g. the CPU scale:

    python -m rocket.sweep --config=configs/cifar10.py:cpu \
        --sweep=paper_repro/sweeps/ablation_cifar10.py --workdir=/tmp/sweep_ablation

``share=bottom`` trains a different light net (the booster's first two groups), so its rocket
row is compared with its own light-alone row (``light-share_bottom``). The ``*-paper_scale``
rows use the official code's KD/AT scales (``loss_convention=paper``); the others Hinton's KD
and the AT paper's beta/2.
"""


def get_sweep():
  rocket = {"method": "rocket"}
  paper = {"loss_convention": "paper"}
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="booster", overrides={"method": "booster"}),
      dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
      dict(name="at", overrides={"method": "at"}, teacher="booster"),
      dict(name="at_kd", overrides={"method": "at_kd"}, teacher="booster"),
      dict(name="rocket", overrides=rocket),
      dict(name="rocket_kd", overrides={"method": "rocket_kd"}, teacher="booster"),
      # the official code's KD/AT scales
      dict(name="kd-paper_scale", overrides={"method": "kd", **paper}, teacher="booster"),
      dict(name="at-paper_scale", overrides={"method": "at", **paper}, teacher="booster"),
      dict(name="rocket_kd-paper_scale", overrides={"method": "rocket_kd", **paper}, teacher="booster"),
      # sharing
      dict(name="rocket-share_none", overrides={**rocket, "share": "none"}),
      dict(name="light-share_bottom", overrides={"method": "light", "share": "bottom"}),
      dict(name="rocket-share_bottom", overrides={**rocket, "share": "bottom"}),
      # gradient block
      dict(name="rocket-gb_off", overrides={**rocket, "gradient_block": "off"}),
      dict(name="rocket-gb_strict", overrides={**rocket, "gradient_block": "strict"}),
      # hint kinds
      dict(name="rocket-hint_kd_kl", overrides={**rocket, "hint.kind": "kd_kl",
                                                "hint.temperature": 4.0, "hint.weight": 1.0}),
      dict(name="rocket-hint_l2_softmax", overrides={**rocket, "hint.kind": "l2_softmax",
                                                     "hint.weight": 1.0}),
  ]
  return dict(seeds=(0, 1), runs=runs)
