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


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()

  # What to train.
  c.method = "rocket"  # light | booster | rocket | rocket_kd | kd | at | at_kd
  c.light = ml_collections.ConfigDict(dict(depth=16, width=1))  # WRN-16-1
  c.booster = ml_collections.ConfigDict(dict(depth=40, width=1))  # WRN-40-1
  # interval (Fig. 2b): every conv of the light net is the booster's | bottom (Fig. 2a): the
  # light net is the booster's first two groups (config.light is then unused) | none
  c.share = "interval"
  c.hint = ml_collections.ConfigDict(dict(
      kind="mse_logits",  # mse_logits | kd_kl | l2_softmax
      weight=0.03,  # lambda
      temperature=1.0,  # only for kd_kl
      warmup_epochs=0.0,  # >0: lambda ramps up linearly from 0 over these epochs
  ))
  c.kd = ml_collections.ConfigDict(dict(alpha=0.9, temperature=4.0))  # kd, at_kd, rocket_kd
  c.at = ml_collections.ConfigDict(dict(beta=1e3))  # at, at_kd
  # Scales of the KD/AT terms: modern (Hinton's a*T^2*KL, beta/2) | paper (the official code's
  # 2a*T^2/C*KL, beta, and a full CE(light) in rocket_kd). The hint is the paper's in both.
  c.loss_convention = "modern"
  c.teacher_workdir = ""  # kd/at/at_kd/rocket_kd: a finished booster run to use as teacher;
  # "" = train one in <workdir>/teacher first (reused on rerun)
  c.gradient_block = "on"  # on | off | strict (see rocket/methods.py)
  c.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)
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

  # Optimisation.
  c.num_epochs = 200
  c.num_train_steps = 0  # >0 overrides num_epochs
  c.batch_size = 128  # global batch, split over all devices
  c.eval_batch_size = 500
  c.optim = ml_collections.ConfigDict(dict(
      name="sgd",  # sgd | adam | adagrad
      lr=0.1,
      momentum=0.9,
      nesterov=True,
      weight_decay=5e-4,  # L2 added to the gradient, as PyTorch's SGD does
      schedule="step",  # step | cosine | constant
      lr_boundaries=(0.3, 0.6, 0.8),  # fractions of training (epochs 60/120/160 of 200)
      lr_decay=0.2,  # step schedule factor
      reset_momentum=False,  # step schedule: restart the momentum at each drop (official code)
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
  c.tensorboard = True  # also write TensorBoard event files (<workdir>/tensorboard/)

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
