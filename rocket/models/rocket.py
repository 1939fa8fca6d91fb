"""The Rocket Launching network: a light net and a booster net with shared lower layers.

``RocketNet`` is one pure Flax module.  ``apply`` takes images and returns the
logits of every net it holds and each net's per-group feature maps (the
outputs of its WRN groups, which attention transfer needs)::

    out = model.apply(variables, images, train=False)
    out["logits"]["light"], out["logits"]["booster"], out["features"]["light"][g]

Sharing schemes (paper Fig. 2; the official code's ``rocket_interval.py`` and
``rocket_bottom.py``):

* ``interval`` (Fig. 2b; the default): the light WRN-d-k runs ``n_l = (d-4)/6``
  blocks per group, and **every convolution of the light net is the
  booster's**: the stem and blocks ``0 .. n_l-1`` of each booster group.  The
  light net keeps its own batch-norm layers in every block (the two nets feed
  the shared convolutions different inputs, and only the light net is served)
  and its own head.  Light and booster need equal widths and
  ``n_l <= n_booster``.  WRN-16-1 light + WRN-40-1 booster: the light net owns no
  convolution kernel.
* ``bottom`` (Fig. 2a): the light net is the booster's stem and its **whole first
  two groups** (convolutions shared, own batch norms), with its own head
  (BN-ReLU-pool-FC) on the group-1 output: :func:`light_spec` gives
  ``WRNSpec(booster.depth, booster.width, num_groups=2)`` whatever
  ``config.light`` says.  Its "light alone" baseline is that same two-group net.
* ``none``: two independent WRNs.  (The official ``param_share=False`` path still
  shares the stem convolution; ours shares nothing.)

Parameter tree (``variables["params"]``):

* ``shared``  -- the stem and the booster blocks the light net runs through;
  each such block holds one set of batch norms per net (``bn1_light``,
  ``bn1_booster``, ...), owned by that net (:func:`rocket.objective.param_owner`);
* ``light``   -- the light net's own layers (its head; own blocks only under
  ``none``);
* ``booster`` -- the booster's own blocks and head.

A single-net model (``light`` or ``booster`` baselines) is built by passing
``None`` for the other spec; it then has exactly the parameters of a plain
WRN of that size.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from rocket.models.wrn import GROUP_STRIDES, Block, Head, Stem, WRNSpec
from rocket.objective import NETS

SHARE_SCHEMES = ("interval", "bottom", "none")
# Scheme names that no longer exist, with what replaced them.
RETIRED_SHARE_SCHEMES = {
    "group_bottom": "it shared only the stem and the first block of each group, which is not the "
                    "paper's scheme; use share='interval' (the official code's: every conv of the "
                    "light net is the booster's)",
}


def check_share_name(share: str) -> None:
  if share in RETIRED_SHARE_SCHEMES:
    raise ValueError(f"share={share!r} was removed: {RETIRED_SHARE_SCHEMES[share]}")
  if share not in SHARE_SCHEMES:
    raise ValueError(f"unknown share scheme {share!r}; choose one of {SHARE_SCHEMES}")


def light_spec(share: str, light: WRNSpec, booster: WRNSpec) -> WRNSpec:
  """The light net a scheme trains: ``light``, or under ``bottom`` the booster's first two groups."""
  check_share_name(share)
  if share == "bottom":
    return WRNSpec(booster.depth, booster.width, num_groups=2)
  return light


def shared_block_ids(share: str, light: WRNSpec) -> tuple[tuple[int, int], ...]:
  """(group, block) indices of the booster blocks the light net runs through."""
  check_share_name(share)
  if share == "none":
    return ()
  return tuple((g, b) for g in range(light.num_groups) for b in range(light.blocks_per_group))


def check_sharing(light: Optional[WRNSpec], booster: Optional[WRNSpec], share: str) -> None:
  """Raises ValueError when the two specs cannot share layers under ``share``."""
  check_share_name(share)
  if share == "none" or light is None or booster is None:
    return
  if share == "bottom":
    if light != light_spec("bottom", light, booster):
      raise ValueError(f"share='bottom' trains the booster's first two groups as the light net "
                       f"({light_spec('bottom', light, booster).name}), got {light.name}")
    return
  if light.num_groups != 3 or booster.num_groups != 3:
    raise ValueError("share='interval' needs two three-group WRNs")
  if light.width != booster.width:
    raise ValueError(
        f"share='interval' runs the light net through the booster's convolutions, whose weights "
        f"must fit both nets, but the light net is {light.name} (width {light.width}) and the "
        f"booster is {booster.name} (width {booster.width}). Use equal widths (the light net "
        f"no deeper than the booster) or share='none'.")
  if light.blocks_per_group > booster.blocks_per_group:
    raise ValueError(f"share='interval' needs a light net no deeper than the booster, got "
                     f"{light.name} with {booster.name}")


class _Tower(nn.Module):
  """The layers one net owns: optionally the stem, the blocks not in ``skip``, its head."""

  spec: WRNSpec
  own_stem: bool
  skip: tuple[tuple[int, int], ...]
  num_classes: int
  bn_momentum: float
  dtype: Any
  init_scheme: str

  def setup(self):
    if self.own_stem:
      self.stem = Stem(self.dtype, self.init_scheme)
    blocks = {}
    for g, (f, s) in enumerate(zip(self.spec.group_widths, GROUP_STRIDES)):
      for b in range(self.spec.blocks_per_group):
        if (g, b) not in self.skip:
          blocks[f"group{g}_block{b}"] = Block(f, s if b == 0 else 1, self.bn_momentum,
                                               self.dtype, init_scheme=self.init_scheme)
    self.blocks = blocks
    self.head = Head(self.num_classes, self.bn_momentum, self.dtype, self.init_scheme)


class _SharedConvs(nn.Module):
  """The stem and the shared booster blocks, each with one set of batch norms per net."""

  width: int
  ids: tuple[tuple[int, int], ...]
  bn_momentum: float
  dtype: Any
  init_scheme: str

  def setup(self):
    self.stem = Stem(self.dtype, self.init_scheme)
    widths = WRNSpec(10, self.width).group_widths
    self.blocks = {
        f"group{g}_block{b}": Block(
            widths[g], GROUP_STRIDES[g] if b == 0 else 1, self.bn_momentum, self.dtype,
            bn_names=NETS, init_scheme=self.init_scheme)
        for g, b in self.ids}


class RocketNet(nn.Module):
  """Light + booster WRNs with shared lower layers (see module docstring).

  Under ``share="bottom"`` pass ``light=light_spec("bottom", ...)``, the booster's first
  two groups (:func:`rocket.image_task.build_model` does).
  """

  light: Optional[WRNSpec]
  booster: Optional[WRNSpec]
  share: str = "interval"
  num_classes: int = 10
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  init_scheme: str = "he_fan_out"

  @property
  def nets(self) -> tuple[str, ...]:
    return tuple(n for n in NETS if getattr(self, n) is not None)

  @property
  def effective_share(self) -> str:
    return self.share if len(self.nets) == 2 else "none"

  def setup(self):
    if not self.nets:
      raise ValueError("RocketNet needs at least one of light/booster.")
    check_share_name(self.share)
    check_sharing(self.light, self.booster, self.effective_share)
    shared = self.effective_share != "none"
    ids = shared_block_ids(self.effective_share, self.light) if shared else ()
    if shared:
      self.shared = _SharedConvs(self.booster.width, ids, self.bn_momentum, self.dtype, self.init_scheme)
    self.towers = {n: _Tower(getattr(self, n), not shared, ids, self.num_classes, self.bn_momentum,
                             self.dtype, self.init_scheme, name=n) for n in self.nets}
    self.ids = ids

  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    if self.ids:  # no batch norm before the stem: both nets share its output
      stem = self.shared.stem(x)
    logits, feats = {}, {}
    for n in self.nets:
      spec, tower = getattr(self, n), self.towers[n]
      h = stem if self.ids else tower.stem(x)
      feats[n] = []
      for g in range(spec.num_groups):
        for b in range(spec.blocks_per_group):
          if (g, b) in self.ids:
            h = self.shared.blocks[f"group{g}_block{b}"](h, train, stream=n)
          else:
            h = tower.blocks[f"group{g}_block{b}"](h, train)
        feats[n].append(h)
      logits[n] = tower.head(h, train)
    return {"logits": logits, "features": feats}
