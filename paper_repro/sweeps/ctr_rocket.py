"""CTR: the light net alone vs co-trained with a booster (paper Sec. 4.3), and the baselines.

``rocket_kd`` and ``kd`` distil from the finished ``booster`` run (a pre-trained teacher, as the
paper's Rocket+KD), not from the co-trained booster.

Use with a CTR base config, e.g.:

    python -m rocket.sweep --config=configs/ctr_frappe.py --config.progress_bar=False \
        --sweep=paper_repro/sweeps/ctr_rocket.py --workdir=/tmp/sweeps/ctr_frappe
"""


def get_sweep():
  rocket = {"method": "rocket"}
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="booster", overrides={"method": "booster"}),
      dict(name="rocket", overrides=rocket),
      dict(name="rocket_kd", overrides={"method": "rocket_kd"}, teacher="booster"),
      dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
      dict(name="rocket-share_none", overrides={**rocket, "share": "none"}),
      dict(name="rocket-gb_off", overrides={**rocket, "gradient_block": "off"}),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
