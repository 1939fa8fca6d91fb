"""bfloat16 compute (float32 parameters and optimizer state) against float32, rocket on CIFAR-10.

Checks that ``--config.compute_dtype=bfloat16`` does not cost accuracy. CPU scale, as run for
``paper_repro/results/bf16_cifar10_cpu``:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m rocket.sweep \
        --config=configs/cifar10.py:cpu --config.num_train_steps=400 --config.eval_every_steps=100 \
        --config.progress_bar=False --sweep=paper_repro/sweeps/bf16_cifar10.py --workdir=/tmp/bf16
"""


def get_sweep():
  return dict(seeds=(0, 1, 2), runs=[
      dict(name="rocket-float32", overrides={"method": "rocket", "compute_dtype": "float32"}),
      dict(name="rocket-bfloat16", overrides={"method": "rocket", "compute_dtype": "bfloat16"}),
  ])
