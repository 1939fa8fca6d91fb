"""Wide residual networks (Zagoruyko & Komodakis, 2016), pre-activation variant.

WRN-d-k has ``n = (d - 4) / 6`` basic blocks in each of three groups of widths
16k, 32k and 64k (strides 1, 2, 2), after a 3x3 stem convolution with 16
channels.  A block is ``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` with an identity
shortcut, or a 1x1 convolution on the pre-activated input where the shape
changes.  The head is ``BN-ReLU-global-avg-pool-dense``.

A :class:`WRNSpec` may stop after its first ``num_groups`` groups: the light
net of the paper's "bottom" scheme is the stem and the first two groups of the
booster, with its head on the 32k channels of group 1.

Initialisation (``init_scheme``; ``config.init``): ``"paper"`` is the official code's (AT 2017
``utils.py``): He-normal with fan_in for every conv and the classifier weight,
classifier bias 0, BN scale ~ U[0, 1) (PyTorch < 1.2's default), BN bias 0.
``"he_fan_out"`` (our default) is the common modern choice: He-normal fan_out
convs, LeCun-normal classifier, BN scale 1.

The modules here are the building bricks of :mod:`rocket.models.rocket`,
which wires a light and a booster WRN together; :class:`WideResNet` is the
plain single network (used for tests and as a reference).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

_HE_FAN_IN = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# name -> (conv kernel, classifier kernel, BN scale) initialisers
INITS = {
    "he_fan_out": (nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                   nn.initializers.lecun_normal(), nn.initializers.ones),
    "paper": (_HE_FAN_IN, _HE_FAN_IN, nn.initializers.uniform(1.0)),
}


def check_init(name: str) -> None:
  if name not in INITS:
    raise ValueError(f"config.init must be one of {tuple(INITS)}, got {name!r}")


@dataclasses.dataclass(frozen=True)
class WRNSpec:
  """Depth and width of one WRN (validates ``depth = 6n + 4``); ``num_groups < 3`` keeps only
  the first groups (the paper's "bottom" light net is ``WRNSpec(40, 1, num_groups=2)``)."""

  depth: int
  width: int
  num_groups: int = 3

  def __post_init__(self):
    if not isinstance(self.depth, int) or self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(
          f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got "
          f"depth={self.depth!r}.")
    if not isinstance(self.width, int) or self.width < 1:
      raise ValueError(f"WRN width must be a positive integer, got {self.width!r}.")
    if self.num_groups not in (1, 2, 3):
      raise ValueError(f"a WRN has 1 to 3 groups, got num_groups={self.num_groups!r}.")

  @property
  def blocks_per_group(self) -> int:
    return (self.depth - 4) // 6

  @property
  def group_widths(self) -> tuple[int, ...]:
    return (16 * self.width, 32 * self.width, 64 * self.width)[:self.num_groups]

  @property
  def name(self) -> str:
    base = f"WRN-{self.depth}-{self.width}"
    return base if self.num_groups == 3 else f"{base} groups 0-{self.num_groups - 1}"


GROUP_STRIDES = (1, 2, 2)
STEM_WIDTH = 16


def BatchNorm(momentum: float = 0.9, dtype: Any = jnp.float32, name: str | None = None,
              init_scheme: str = "he_fan_out"):
  """BatchNorm with the PyTorch defaults (momentum 0.1 -> flax 0.9, eps 1e-5).

  Called as ``bn(x, train)``: the running averages are used when not training.
  """
  bn = nn.BatchNorm(momentum=momentum, epsilon=1e-5, dtype=dtype, name=name,
                    scale_init=INITS[init_scheme][2])
  return lambda x, train: bn(x, use_running_average=not train)


class Stem(nn.Module):
  """The 3x3, 16-channel input convolution."""

  dtype: Any = jnp.float32
  init_scheme: str = "he_fan_out"

  @nn.compact
  def __call__(self, x):
    return nn.Conv(STEM_WIDTH, (3, 3), padding=1, use_bias=False,
                   kernel_init=INITS[self.init_scheme][0], dtype=self.dtype, name="conv")(x)


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
  init_scheme: str = "he_fan_out"

  @nn.compact
  def __call__(self, x, train: bool, stream: str = ""):
    if stream not in self.bn_names:
      raise ValueError(f"unknown stream {stream!r}; block has {self.bn_names}")
    bn = {f"bn{i}": {s: BatchNorm(self.bn_momentum, self.dtype,
                                  name=f"bn{i}_{s}" if s else f"bn{i}", init_scheme=self.init_scheme)
                     for s in self.bn_names} for i in (1, 2)}
    conv = lambda f, k, s, n: nn.Conv(  # noqa: E731
        f, (k, k), strides=s, padding=(k - 1) // 2, use_bias=False,
        kernel_init=INITS[self.init_scheme][0], dtype=self.dtype, name=n)
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
  init_scheme: str = "he_fan_out"

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu(BatchNorm(self.bn_momentum, self.dtype, name="bn", init_scheme=self.init_scheme)(x, train))
    x = jnp.mean(x, axis=(1, 2))
    # The logits are always float32, whatever the compute dtype.
    return nn.Dense(self.num_classes, dtype=jnp.float32, kernel_init=INITS[self.init_scheme][1],
                    name="fc")(x).astype(jnp.float32)


class WideResNet(nn.Module):
  """A plain WRN-d-k: images in, ``(logits, [group outputs])`` out."""

  depth: int
  width: int
  num_classes: int = 10
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  num_groups: int = 3
  init_scheme: str = "he_fan_out"

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec = WRNSpec(self.depth, self.width, self.num_groups)
    x = Stem(self.dtype, self.init_scheme, name="stem")(x.astype(self.dtype))
    feats = []
    for g, (f, s) in enumerate(zip(spec.group_widths, GROUP_STRIDES)):
      for b in range(spec.blocks_per_group):
        x = Block(f, s if b == 0 else 1, self.bn_momentum, self.dtype, init_scheme=self.init_scheme,
                  name=f"group{g}_block{b}")(x, train)
      feats.append(x)
    head = Head(self.num_classes, self.bn_momentum, self.dtype, self.init_scheme, name="head")
    return head(x, train), feats
