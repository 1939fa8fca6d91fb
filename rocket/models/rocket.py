"""The Rocket Launching network: a light net and a booster net with shared lower layers.

``RocketNet`` is one pure Flax module.  ``apply`` takes images and returns the
logits of every net it holds and each net's per-group feature maps (the
outputs of the three WRN groups, which attention transfer needs)::

    out = model.apply(variables, images, train=False)
    out["logits"]["light"], out["logits"]["booster"], out["features"]["light"][g]

Parameter tree (``variables["params"]``):

* ``shared``  -- layers used by both nets (present unless ``share="none"``);
* ``light``   -- the light net's own layers;
* ``booster`` -- the booster's own layers.

Sharing schemes (paper, Fig. 2):

* ``none``: two independent WRNs.
* ``bottom`` (Fig. 2a): the stem convolution and the first block of the first
  group are shared.  Both nets feed them the same image, so they are computed
  once per step.
* ``group_bottom`` (Fig. 2b, "interval" in the official code): the stem and the
  first block of *every* group are shared.  From the second group on, the two
  nets feed a shared block different inputs, so the block's convolution
  weights are shared but each net keeps its own batch-norm layers (scale,
  bias and running statistics), since the two streams have different
  statistics and only the light net runs at inference.

Sharing a block needs both nets to have the same width there (the weights must
fit both), so ``bottom`` and ``group_bottom`` require equal WRN widths; the
depths may differ freely.  A mismatch raises a ``ValueError`` that says so.

A single-net model (``light`` or ``booster`` baselines) is built by passing
``None`` for the other spec; it then has exactly the parameters of a plain
WRN of that size.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from rocket.models.wrn import GROUP_STRIDES, Block, Head, Stem, WRNSpec

SHARE_SCHEMES = ("none", "bottom", "group_bottom")
NETS = ("light", "booster")


def shared_block_ids(share: str) -> tuple[tuple[int, int], ...]:
  """(group, block) indices whose weights are shared under a scheme."""
  if share == "none":
    return ()
  if share == "bottom":
    return ((0, 0),)
  if share == "group_bottom":
    return ((0, 0), (1, 0), (2, 0))
  raise ValueError(f"unknown share scheme {share!r}; choose one of {SHARE_SCHEMES}")


def check_sharing(light: Optional[WRNSpec], booster: Optional[WRNSpec], share: str) -> None:
  """Raises ValueError when the two specs cannot share layers under ``share``."""
  shared_block_ids(share)  # validates the name
  if share != "none" and light is not None and booster is not None and light.width != booster.width:
    raise ValueError(
        f"share={share!r} shares WRN blocks, whose weights must fit both nets, but the "
        f"light net is {light.name} (width {light.width}) and the booster is {booster.name} "
        f"(width {booster.width}). Use equal widths (depths may differ) or share='none'.")


class _Tower(nn.Module):
  """The layers one net owns: optionally the stem, its own blocks, its head."""

  spec: WRNSpec
  own_stem: bool
  skip: tuple[tuple[int, int], ...]
  num_classes: int
  bn_momentum: float
  dtype: Any

  def setup(self):
    if self.own_stem:
      self.stem = Stem(self.dtype)
    blocks = {}
    for g, (f, s) in enumerate(zip(self.spec.group_widths, GROUP_STRIDES)):
      for b in range(self.spec.blocks_per_group):
        if (g, b) not in self.skip:
          blocks[f"group{g}_block{b}"] = Block(f, s if b == 0 else 1, self.bn_momentum, self.dtype)
    self.blocks = blocks
    self.head = Head(self.num_classes, self.bn_momentum, self.dtype)


class _Shared(nn.Module):
  """Stem and shared blocks; blocks past the first group keep a BN per stream."""

  width: int
  ids: tuple[tuple[int, int], ...]
  streams: tuple[str, ...]
  bn_momentum: float
  dtype: Any

  def setup(self):
    self.stem = Stem(self.dtype)
    widths = WRNSpec(10, self.width).group_widths
    self.blocks = {
        f"group{g}_block{b}": Block(
            widths[g], GROUP_STRIDES[g] if b == 0 else 1, self.bn_momentum, self.dtype,
            bn_names=("",) if g == 0 else self.streams)
        for g, b in self.ids}


class RocketNet(nn.Module):
  """Light + booster WRNs with shared lower layers (see module docstring)."""

  light: Optional[WRNSpec]
  booster: Optional[WRNSpec]
  share: str = "bottom"
  num_classes: int = 10
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @property
  def nets(self) -> tuple[str, ...]:
    return tuple(n for n in NETS if getattr(self, n) is not None)

  @property
  def effective_share(self) -> str:
    return self.share if len(self.nets) == 2 else "none"

  def setup(self):
    if not self.nets:
      raise ValueError("RocketNet needs at least one of light/booster.")
    check_sharing(self.light, self.booster, self.share)
    ids = shared_block_ids(self.effective_share)
    shared = self.effective_share != "none"
    if shared:
      self.shared = _Shared(self.light.width, ids, self.nets, self.bn_momentum, self.dtype)
    towers = {}
    for n in self.nets:
      towers[n] = _Tower(getattr(self, n), not shared, ids, self.num_classes,
                         self.bn_momentum, self.dtype, name=n)
    self.towers = towers

  def __call__(self, x, train: bool = False):
    nets = self.nets
    ids = shared_block_ids(self.effective_share)
    x = x.astype(self.dtype)
    if ids:
      stem = self.shared.stem(x)
      h = {n: stem for n in nets}
    else:
      h = {n: self.towers[n].stem(x) for n in nets}
    feats = {n: [] for n in nets}
    for g in range(3):
      if (g, 0) in ids:
        blk = self.shared.blocks[f"group{g}_block0"]
        if g == 0:  # same input for both nets: compute once
          y = blk(h[nets[0]], train)
          h = {n: y for n in nets}
        else:
          h = {n: blk(h[n], train, stream=n) for n in nets}
      for n in nets:
        spec = getattr(self, n)
        for b in range(spec.blocks_per_group):
          if (g, b) not in ids:
            h[n] = self.towers[n].blocks[f"group{g}_block{b}"](h[n], train)
        feats[n].append(h[n])
    logits = {n: self.towers[n].head(h[n], train) for n in nets}
    return {"logits": logits, "features": feats}


def param_owner(path: tuple[str, ...]) -> str:
  """Which net a parameter belongs to: ``light``, ``booster`` or ``shared``.

  ``path`` is the key path of the leaf in ``variables["params"]``.  The
  per-stream batch-norm layers inside shared blocks (``bn1_light``,
  ``bn2_booster``, ...) belong to their stream's net: only that net uses them.
  """
  top = path[0]
  if top in NETS:
    return top
  if top != "shared":
    raise ValueError(f"unexpected top-level parameter collection {top!r}")
  for part in path:
    for n in NETS:
      if part.endswith("_" + n) and part.startswith("bn"):
        return n
  return "shared"


def owner_tree(params) -> Any:
  """A pytree like ``params`` whose leaves are :func:`param_owner` labels."""
  import jax  # local: keeps the module import light

  return jax.tree_util.tree_map_with_path(
      lambda kp, _: param_owner(tuple(k.key for k in kp)), params)
