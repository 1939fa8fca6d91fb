"""Paper Table 4 (CIFAR-100 and SVHN): every method on one light/booster pair.

The pair and the data come from the base config: with paper_repro/configs/paper.py:cifar100 or
:svhn it is the paper's WRN-16-1 light + WRN-40-1 booster, interval sharing (b); with
:cifar100_cpu / :svhn_cpu the CPU preset's WRN-10-1 + WRN-16-1. ``rocket_kd`` is the paper's
Rocket+KD: rocket plus KD from the pre-trained ``booster`` run, like ``kd`` and ``at``. Data through
tensorflow-datasets (``pip install -e ".[tfds]"``, then ``tfds build cifar100`` /
``tfds build svhn_cropped`` once).

    python -m rocket.sweep --config=paper_repro/configs/paper.py:cifar100 \
        --sweep=paper_repro/sweeps/table4.py --workdir=/tmp/sweeps/cifar100_full
    python -m rocket.sweep --config=paper_repro/configs/paper.py:svhn \
        --sweep=paper_repro/sweeps/table4.py --workdir=/tmp/sweeps/svhn_full

The same file works with ``--config=configs/cifar10.py --config.dataset=cifar100`` (our default
optimiser settings instead of the paper's).
"""


def get_sweep():
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="booster", overrides={"method": "booster"}),
      dict(name="at", overrides={"method": "at"}, teacher="booster"),
      dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
      dict(name="rocket", overrides={"method": "rocket"}),
      dict(name="rocket_kd", overrides={"method": "rocket_kd"}, teacher="booster"),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
