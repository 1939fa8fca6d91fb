"""Dataset container and the dispatcher over dataset names."""

from __future__ import annotations

import dataclasses

import numpy as np


class DatasetError(RuntimeError):
  """A dataset cannot be found or read; the message says what to do."""


@dataclasses.dataclass
class Dataset:
  name: str
  train_images: np.ndarray  # uint8 [N, H, W, C]
  train_labels: np.ndarray  # int32 [N]
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: np.ndarray  # float32 [C], per-channel mean of the train images in [0, 1]
  std: np.ndarray
  description: str = ""

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std in [0, 1], computed in float64 chunks."""
  flat = images.reshape(-1, images.shape[-1])
  s = np.zeros(flat.shape[1]); s2 = np.zeros(flat.shape[1])  # noqa: E702
  for i in range(0, len(flat), 1 << 22):
    chunk = flat[i:i + (1 << 22)].astype(np.float64) / 255.0
    s += chunk.sum(0); s2 += np.square(chunk).sum(0)  # noqa: E702
  mean = s / len(flat)
  std = np.sqrt(s2 / len(flat) - mean**2)
  return mean.astype(np.float32), std.astype(np.float32)


def subset(images, labels, n: int, seed: int):
  """A seeded random subset of ``n`` examples (kept in their original order)."""
  if n <= 0 or n >= len(labels):
    return images, labels
  idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(labels))[:n])
  return images[idx], labels[idx]
