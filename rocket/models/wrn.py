"""Wide residual networks (Zagoruyko & Komodakis, 2016), pre-activation variant.

WRN-d-k has ``n = (d - 4) / 6`` basic blocks in each of three groups of widths
16k, 32k and 64k (strides 1, 2, 2), after a 3x3 stem convolution with 16
channels.  A block is ``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` with an identity
shortcut, or a 1x1 convolution on the pre-activated input where the shape
changes.  The head is ``BN-ReLU-global-avg-pool-dense``.

The modules here are the building bricks of :mod:`rocket.models.rocket`,
which wires a light and a booster WRN together; :class:`WideResNet` is the
plain single network (used for tests and as a reference).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

# He-normal (fan_out) initialisation as in the reference PyTorch WRN code.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class WRNSpec:
  """Depth and width of one WRN; validates ``depth = 6n + 4``."""

  depth: int
  width: int

  def __post_init__(self):
    if not isinstance(self.depth, int) or self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(
          f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got "
          f"depth={self.depth!r}.")
    if not isinstance(self.width, int) or self.width < 1:
      raise ValueError(f"WRN width must be a positive integer, got {self.width!r}.")

  @property
  def blocks_per_group(self) -> int:
    return (self.depth - 4) // 6

  @property
  def group_widths(self) -> tuple[int, int, int]:
    return (16 * self.width, 32 * self.width, 64 * self.width)

  @property
  def name(self) -> str:
    return f"WRN-{self.depth}-{self.width}"


GROUP_STRIDES = (1, 2, 2)
STEM_WIDTH = 16


def BatchNorm(momentum: float = 0.9, dtype: Any = jnp.float32, name: str | None = None):
  """BatchNorm with the PyTorch defaults (momentum 0.1 -> flax 0.9, eps 1e-5).

  Called as ``bn(x, train)``: the running averages are used when not training.
  """
  bn = nn.BatchNorm(momentum=momentum, epsilon=1e-5, dtype=dtype, name=name)
  return lambda x, train: bn(x, use_running_average=not train)


class Stem(nn.Module):
  """The 3x3, 16-channel input convolution."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    return nn.Conv(STEM_WIDTH, (3, 3), padding=1, use_bias=False,
                   kernel_init=conv_init, dtype=self.dtype, name="conv")(x)


class Block(nn.Module):
  """Pre-activation basic block.

  ``bn_names`` lets a caller keep separate batch-norm layers for the same
  convolution weights (used when one block is shared by two nets that feed it
  different inputs, see :mod:`rocket.models.rocket`): the block then owns
  ``bn1_<name>``/``bn2_<name>`` for every name and uses the one given in
  ``stream``.
  """

  features: int
  stride: int
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  bn_names: Sequence[str] = ("",)

  @nn.compact
  def __call__(self, x, train: bool, stream: str = ""):
    if stream not in self.bn_names:
      raise ValueError(f"unknown stream {stream!r}; block has {self.bn_names}")
    bn = {f"bn{i}": {s: BatchNorm(self.bn_momentum, self.dtype,
                                  name=f"bn{i}_{s}" if s else f"bn{i}")
                     for s in self.bn_names} for i in (1, 2)}
    conv = lambda f, k, s, n: nn.Conv(  # noqa: E731
        f, (k, k), strides=s, padding=(k - 1) // 2, use_bias=False,
        kernel_init=conv_init, dtype=self.dtype, name=n)
    o = nn.relu(bn["bn1"][stream](x, train))
    y = conv(self.features, 3, self.stride, "conv1")(o)
    y = nn.relu(bn["bn2"][stream](y, train))
    y = conv(self.features, 3, 1, "conv2")(y)
    if x.shape[-1] != self.features or self.stride != 1:
      x = conv(self.features, 1, self.stride, "shortcut")(o)
    return x + y


class Head(nn.Module):
  """BN-ReLU, global average pooling and the classifier."""

  num_classes: int
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu(BatchNorm(self.bn_momentum, self.dtype, name="bn")(x, train))
    x = jnp.mean(x, axis=(1, 2))
    # The logits are always float32, whatever the compute dtype.
    return nn.Dense(self.num_classes, dtype=jnp.float32, name="fc")(x).astype(jnp.float32)


class WideResNet(nn.Module):
  """A plain WRN-d-k: images in, ``(logits, [group outputs])`` out."""

  depth: int
  width: int
  num_classes: int = 10
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec = WRNSpec(self.depth, self.width)
    x = Stem(self.dtype, name="stem")(x.astype(self.dtype))
    feats = []
    for g, (f, s) in enumerate(zip(spec.group_widths, GROUP_STRIDES)):
      for b in range(spec.blocks_per_group):
        x = Block(f, s if b == 0 else 1, self.bn_momentum, self.dtype,
                  name=f"group{g}_block{b}")(x, train)
      feats.append(x)
    return Head(self.num_classes, self.bn_momentum, self.dtype, name="head")(x, train), feats
