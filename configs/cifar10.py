"""Rocket Launching on CIFAR-10: WRN-16-1 light net + WRN-40-1 booster.

The method is the paper's, as its official code (GitHub zhougr1993/Rocket-Launching) runs it:
interval sharing (every conv of the light net is the booster's), the hint
0.03 * ||z_light - z_booster||^2 summed over classes, the gradient block, 200 epochs of batch
128, SGD momentum 0.9, lr 0.1 x 0.2 at 30/60/80% of training, weight decay 5e-4.  Training
details where we keep modern defaults (``paper_repro/configs/paper.py`` sets the official
ones): Nesterov momentum (official: plain), zero padding for the random crops (official:
``symmetric``, OpenCV's BORDER_REFLECT), He fan_out init with BN scale 1 (official: He fan_in,
BN scale ~ U[0,1)), no momentum reset at the LR drops (official: the optimiser is re-created),
drops after epochs 60/120/160 (official: after 59/119/159), Hinton's KD scale and AT's beta/2
(``loss_convention``; see rocket/methods.py).

    python -m rocket.main --config=configs/cifar10.py --workdir=/tmp/rocket_run
    python -m rocket.main --config=configs/cifar10.py:cpu --workdir=/tmp/r   # small CPU budget
    python -m rocket.main --config=configs/cifar10.py --config.method=light \
        --config.num_epochs=30 --workdir=/tmp/light

Every field below can be overridden with ``--config.<field>=<value>``.
The optional argument after ``:`` picks a preset (``cpu``, ``tiny``).
"""

import ml_collections

from rocket.config_util import core_config


def get_config(arg: str = ""):
  # method, hint, kd, at, loss_convention, gradient_block, optim, schedule, devices and
  # bookkeeping: rocket/config_util.py's core_config (its defaults are this file's)
  c = core_config()

  # The nets.
  c.light = ml_collections.ConfigDict(dict(depth=16, width=1))  # WRN-16-1
  c.booster = ml_collections.ConfigDict(dict(depth=40, width=1))  # WRN-40-1
  # interval (Fig. 2b): every conv of the light net is the booster's | bottom (Fig. 2a): the
  # light net is the booster's first two groups (config.light is then unused) | none
  c.share = "interval"
  c.bn_momentum = 0.9  # PyTorch's 0.1
  c.init = "he_fan_out"  # he_fan_out | paper (official: He fan_in convs and FC, BN scale U[0,1))

  # Data.
  c.dataset = "cifar10"  # cifar10 | cifar100 | svhn (tfds) | synthetic
  c.data_dir = ""  # "" = ../shared/data/cifar10 beside the checkout, or $ROCKET_DATA_DIR
  c.cache_dir = ""  # decoded-image cache; "" = ~/.cache/rocket
  c.train_subset = 0  # >0: train on a seeded random subset of this many images
  c.data_seed = -1  # seed of the subset / synthetic images; <0: the run's seed
  c.test_subset = 0  # >0: evaluate on a fixed random subset of N test images (quick checks only)
  c.augment = True  # 4-pixel pad + random 32x32 crop + horizontal flip, on device
  c.pad_mode = "constant"  # constant (zeros) | reflect | symmetric (official: cv2.BORDER_REFLECT)
  c.augment_flip = True  # False for digits (SVHN): crops only
  c.synthetic = ml_collections.ConfigDict(dict(num_train=512, num_test=256, image_size=32,
                                               num_classes=10, noise=0.5))

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
