"""Rocket Launching on CIFAR-10: WRN-16-1 light net + WRN-40-1 booster.

Defaults follow the paper and its official code (200 epochs, batch 128, SGD
momentum 0.9, lr 0.1 x 0.2 at 30/60/80% of training = epochs 60/120/160,
weight decay 5e-4, hint weight 0.03 on the MSE of logits), except two details:
we use Nesterov momentum and zero padding for the random crops, where the
official code uses plain momentum and reflect padding (set
``--config.optim.nesterov=False --config.pad_mode=reflect`` to match it;
``paper_repro/configs/paper.py`` does).

    python -m rocket.main --config=configs/cifar10.py --workdir=/tmp/rocket_run
    python -m rocket.main --config=configs/cifar10.py:cpu --workdir=/tmp/r   # small CPU budget
    python -m rocket.main --config=configs/cifar10.py --config.method=light \
        --config.num_epochs=30 --workdir=/tmp/light

Every field below can be overridden with ``--config.<field>=<value>``.
The optional argument after ``:`` picks a preset (``cpu``, ``tiny``).
"""

import ml_collections


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()

  # What to train.
  c.method = "rocket"  # light | booster | rocket | rocket_kd | kd | at | at_kd
  c.light = ml_collections.ConfigDict(dict(depth=16, width=1))  # WRN-16-1
  c.booster = ml_collections.ConfigDict(dict(depth=40, width=1))  # WRN-40-1
  c.share = "group_bottom"  # none | bottom (Fig. 2a) | group_bottom (Fig. 2b)
  c.hint = ml_collections.ConfigDict(dict(
      kind="mse_logits",  # mse_logits | kd_kl | l2_softmax
      weight=0.03,  # lambda
      temperature=1.0,  # only for kd_kl
      warmup_epochs=0.0,  # >0: lambda ramps up linearly from 0 over these epochs
  ))
  c.kd = ml_collections.ConfigDict(dict(alpha=0.9, temperature=4.0))  # kd, at_kd, rocket_kd
  c.at = ml_collections.ConfigDict(dict(beta=1e3))  # at, at_kd: weight beta/2 per the AT code
  c.teacher_workdir = ""  # kd/at/at_kd: a finished booster run to use as teacher;
  # "" = train one in <workdir>/teacher first (reused on rerun)
  c.gradient_block = "on"  # on | off | strict (see rocket/methods.py)
  c.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)
  c.bn_momentum = 0.9  # PyTorch's 0.1

  # Data.
  c.dataset = "cifar10"  # cifar10 | cifar100 | svhn (tfds) | synthetic
  c.data_dir = ""  # "" = ../shared/data/cifar10 beside the checkout, or $ROCKET_DATA_DIR
  c.cache_dir = ""  # decoded-image cache; "" = ~/.cache/rocket
  c.train_subset = 0  # >0: train on a seeded random subset of this many images
  c.test_subset = 0  # >0: evaluate on a fixed random subset of N test images (quick checks only)
  c.augment = True  # 4-pixel pad + random 32x32 crop + horizontal flip, on device
  c.pad_mode = "constant"  # constant (zeros) | reflect
  c.augment_flip = True  # False for digits (SVHN): crops only
  c.synthetic = ml_collections.ConfigDict(dict(num_train=512, num_test=256, image_size=32,
                                               num_classes=10, noise=0.5))

  # Optimisation.
  c.num_epochs = 200
  c.num_train_steps = 0  # >0 overrides num_epochs
  c.batch_size = 128  # global batch, split over all devices
  c.eval_batch_size = 500
  c.optim = ml_collections.ConfigDict(dict(
      lr=0.1,
      momentum=0.9,
      nesterov=True,
      weight_decay=5e-4,  # L2 added to the gradient, as PyTorch's SGD does
      schedule="step",  # step | cosine | constant
      lr_boundaries=(0.3, 0.6, 0.8),  # fractions of training (epochs 60/120/160 of 200)
      lr_decay=0.2,  # step schedule factor
      warmup_epochs=0.0,
      grad_clip_norm=0.0,  # >0: clip by global norm
  ))
  c.seed = 0

  # Devices: the global batch is split over `data`; CTR embedding tables are row-sharded over
  # `model` (when their row count divides). -1 = all remaining devices. See README "Running on
  # many devices".
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))

  # Bookkeeping.
  c.eval_every_epochs = 1.0
  c.eval_every_steps = 0  # >0 overrides eval_every_epochs
  c.log_every_steps = 50
  c.checkpoint_every_steps = 0  # >0: also checkpoint between evaluations
  c.max_checkpoints = 2
  c.progress_bar = True

  if arg == "cpu":  # ~1.5 min (light) to ~3.5 min (rocket) on 2 CPU cores
    c.light.depth, c.booster.depth = 10, 16  # WRN-10-1 light, WRN-16-1 booster
    c.train_subset = 10000
    c.num_train_steps = 150  # ~1.9 epochs of the subset
    c.optim.schedule = "cosine"
    c.test_subset = 2000
    c.eval_every_steps = 50
  elif arg == "tiny":  # seconds; for smoke tests
    c.dataset = "synthetic"
    c.light.depth, c.booster.depth = 10, 10
    c.num_train_steps = 20
    c.batch_size = 32
    c.eval_every_steps = 10
    c.log_every_steps = 5
    c.progress_bar = False
  elif arg:
    raise ValueError(f"unknown preset {arg!r} for configs/cifar10.py; use '', 'cpu' or 'tiny'")
  return c
