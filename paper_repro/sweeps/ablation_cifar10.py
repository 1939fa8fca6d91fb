"""Every method and ablation of the paper on one light/booster pair (CIFAR-10).

Use with a base config that sets the budget, e.g. the CPU scale:

    python -m rocket.sweep --config=configs/cifar10.py:cpu \
        --sweep=paper_repro/sweeps/ablation_cifar10.py --workdir=/tmp/sweep_ablation
"""


def get_sweep():
  rocket = {"method": "rocket"}
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="booster", overrides={"method": "booster"}),
      dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
      dict(name="at", overrides={"method": "at"}, teacher="booster"),
      dict(name="at_kd", overrides={"method": "at_kd"}, teacher="booster"),
      dict(name="rocket", overrides=rocket),
      dict(name="rocket_kd", overrides={"method": "rocket_kd"}),
      # sharing
      dict(name="rocket-share_none", overrides={**rocket, "share": "none"}),
      dict(name="rocket-share_bottom", overrides={**rocket, "share": "bottom"}),
      # gradient block
      dict(name="rocket-gb_off", overrides={**rocket, "gradient_block": "off"}),
      dict(name="rocket-gb_strict", overrides={**rocket, "gradient_block": "strict"}),
      # hint kinds
      dict(name="rocket-hint_kd_kl", overrides={**rocket, "hint.kind": "kd_kl",
                                                "hint.temperature": 4.0, "hint.weight": 1.0}),
      dict(name="rocket-hint_l2_softmax", overrides={**rocket, "hint.kind": "l2_softmax",
                                                     "hint.weight": 10.0}),
  ]
  return dict(seeds=(0, 1), runs=runs)
