"""A tiny, learnable synthetic image dataset for tests and smoke runs.

Each class has a fixed random prototype image, smooth (a 4x4 random colour
grid scaled up) so that the standard crop/flip augmentation keeps it
recognisable; an example is its class's prototype plus Gaussian pixel
noise, clipped to uint8.  Deterministic in the seed.
"""

from __future__ import annotations

import numpy as np

from rocket.data.base import Dataset, channel_stats


def load(cfg, seed: int = 0) -> Dataset:
  rng = np.random.default_rng([seed, 12345])
  s, k = cfg.image_size, cfg.num_classes
  cells = rng.uniform(0, 1, size=(k, 4, 4, 3))
  rep = -(-s // 4)
  protos = np.repeat(np.repeat(cells, rep, axis=1), rep, axis=2)[:, :s, :s]

  def make(n):
    y = rng.integers(0, k, size=n).astype(np.int32)
    x = protos[y] + cfg.noise * rng.standard_normal((n, s, s, 3))
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), y

  tr_x, tr_y = make(cfg.num_train)
  te_x, te_y = make(cfg.num_test)
  mean, std = channel_stats(tr_x)
  return Dataset("synthetic", tr_x, tr_y, te_x, te_y, k, mean, std,
                 description=f"synthetic ({k} class prototypes + noise {cfg.noise})")
