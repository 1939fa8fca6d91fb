"""Batches for training and evaluation, and the on-device augmentation.

Training order is a pure function of ``(seed, step)``: epoch ``e`` uses the
permutation ``default_rng([seed, e])``, and step ``s`` takes batch
``s % steps_per_epoch`` of epoch ``s // steps_per_epoch`` (the last partial
batch of an epoch is dropped).  A run resumed at step ``s`` therefore sees
exactly the batches an uninterrupted run would.

Batches leave the host as uint8 (4x less to copy than float32), split over
the mesh's ``data`` axis; cropping, flipping and normalisation run inside the
jitted train step (:func:`augment` and :func:`normalize`).
"""

from __future__ import annotations

import collections
import functools
import threading
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def train_indices(step: int, seed: int, n: int, batch_size: int) -> np.ndarray:
  """Indices of the global batch at ``step``."""
  spe = n // batch_size
  epoch, i = divmod(step, spe)
  return _epoch_permutation(seed, epoch, n)[i * batch_size:(i + 1) * batch_size]


def epoch_indices(epoch: int, seed: int, n: int, batch_size: int) -> np.ndarray:
  """``[steps_per_epoch, batch_size]``: the indices of every batch of ``epoch`` (row ``i`` is
  :func:`train_indices` of the epoch's step ``i``)."""
  spe = n // batch_size
  return _epoch_permutation(seed, epoch, n)[:spe * batch_size].reshape(spe, batch_size)


def global_batch(sharding, *arrays: np.ndarray):
  """Places host arrays (the global batch) on the mesh, split over ``data``.

  Each process contributes its own contiguous slice of the global batch, so
  the same call works on one host and on many.
  """
  nproc, pid = jax.process_count(), jax.process_index()
  out = []
  for a in arrays:
    per = a.shape[0] // nproc
    local = a[pid * per:(pid + 1) * per]
    out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
  return out


def train_batches(images, labels, *, seed: int, batch_size: int, start_step: int,
                  num_steps: int, sharding, prefetch: int = 2) -> Iterator[tuple]:
  """Yields ``(step, images, labels)`` device batches, prefetched by a thread."""
  n = len(labels)

  def produce(step):
    idx = train_indices(step, seed, n, batch_size)
    return (step, *global_batch(sharding, images[idx], labels[idx]))

  if prefetch <= 0:
    for step in range(start_step, num_steps):
      yield produce(step)
    return
  # A small producer thread overlaps the host gather and host-to-device copy
  # with the device's work on the previous step.
  buf = collections.deque()
  cv = threading.Condition()
  stop = threading.Event()

  def worker():
    try:
      for step in range(start_step, num_steps):
        item = produce(step)
        with cv:
          while len(buf) >= prefetch and not stop.is_set():
            cv.wait()
          if stop.is_set():
            return
          buf.append(item)
          cv.notify_all()
    except BaseException as e:  # noqa: BLE001 -- re-raised in the consumer
      with cv:
        buf.append(e)
        cv.notify_all()

  t = threading.Thread(target=worker, daemon=True)
  t.start()
  try:
    for _ in range(start_step, num_steps):
      with cv:
        while not buf:
          cv.wait()
        item = buf.popleft()
        cv.notify_all()
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    with cv:
      cv.notify_all()


def eval_batches(images, labels, batch_size: int, sharding):
  """Yields ``(images, labels, weights)``; the last batch is padded, weight 0."""
  n = len(labels)
  for start in range(0, n, batch_size):
    x, y = images[start:start + batch_size], labels[start:start + batch_size]
    w = np.ones(len(y), np.float32)
    pad = batch_size - len(y)
    if pad:
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      w = np.concatenate([w, np.zeros(pad, np.float32)])
    yield global_batch(sharding, x, y, w)


def normalize(images_u8, mean, std, dtype=jnp.float32):
  x = images_u8.astype(jnp.float32) / 255.0
  return ((x - jnp.asarray(mean)) / jnp.asarray(std)).astype(dtype)


def augment(rng, images, pad: int = 4, pad_mode: str = "constant", flip: bool = True):
  """Random ``pad``-pixel-padded crop and (``flip``) horizontal flip, per image, on device.

  Works on any dtype; ``images`` is ``[B, H, W, C]``.  ``pad_mode`` is a ``jnp.pad`` mode:
  ``constant`` (zeros), ``reflect`` or ``symmetric`` (the edge pixel repeated, which is
  OpenCV's ``BORDER_REFLECT``, the official code's).
  """
  b, h, w, _ = images.shape
  k_crop, k_flip = jax.random.split(rng)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=pad_mode)
  offs = jax.random.randint(k_crop, (b, 2), 0, 2 * pad + 1)
  flips = jax.random.bernoulli(k_flip, 0.5, (b,)) & flip

  def one(img, off, flip):
    crop = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))
    return jnp.where(flip, crop[:, ::-1], crop)

  return jax.vmap(one)(padded, offs, flips)
