"""Light-net depth sweep at a fixed booster (paper: light depth varied, booster fixed).

    python -m rocket.sweep --config=configs/cifar10.py:cpu --config.booster.depth=28 \
        --sweep=paper_repro/sweeps/depth_cifar10.py --workdir=/tmp/sweep_depth

Interval sharing runs the light net through the booster's first blocks, so the light net may be
no deeper than the booster: the CPU preset's WRN-16-1 booster is raised to WRN-28-1 here (the
full-scale presets' WRN-40-1 fits every depth).
"""

DEPTHS = (10, 16, 22)


def get_sweep():
  runs = []
  for d in DEPTHS:
    runs.append(dict(name=f"light-d{d}", overrides={"method": "light", "light.depth": d}))
    runs.append(dict(name=f"rocket-d{d}", overrides={"method": "rocket", "light.depth": d}))
  return dict(seeds=(0, 1), runs=runs)
