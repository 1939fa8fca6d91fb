"""Training methods: which nets a run holds and which loss terms it sums.

A method is a small declarative record; the train step (``rocket.train``) is
written once against it.  New methods (KD with a frozen teacher, attention
transfer, ...) add a record and, where needed, a loss term here.
"""

from __future__ import annotations

import dataclasses

from rocket import losses


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  nets: tuple[str, ...]  # nets the model holds, trained by cross-entropy each
  hint: bool  # adds lambda * hint(light, booster)
  description: str


METHODS = {
    m.name: m for m in (
        Method("light", ("light",), False, "the light net trained alone (baseline)"),
        Method("booster", ("booster",), False, "the booster net trained alone (baseline)"),
        Method("rocket", ("light", "booster"), True,
               "Rocket Launching: light and booster co-trained with shared layers and a hint"),
    )
}

# gradient_block values: "on" stops the hint's gradient at the booster's logits
# (the standard implementation); "off" lets it flow into the booster; "strict"
# blocks only the booster's own parameters: the shared layers receive the
# hint's gradient through the light path *and* the booster path.
GRADIENT_BLOCK_MODES = ("on", "off", "strict")


def get_method(name: str) -> Method:
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(
        f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None


def normalize_gradient_block(value) -> str:
  """Accepts on/off/strict and the booleans True/False (and their strings)."""
  v = str(value).strip().lower()
  v = {"true": "on", "1": "on", "false": "off", "0": "off", "none": "off"}.get(v, v)
  if v not in GRADIENT_BLOCK_MODES:
    raise ValueError(
        f"gradient_block must be one of {GRADIENT_BLOCK_MODES} (or True/False), got {value!r}")
  return v


def loss_terms(method: Method, outputs, labels, hint_cfg, hint_blocked: bool, weights=None):
  """Unweighted loss terms as a dict of scalars: ``ce_<net>`` and ``hint``."""
  logits = outputs["logits"]
  terms = {f"ce_{n}": losses.cross_entropy(logits[n], labels, weights) for n in method.nets}
  if method.hint:
    terms["hint"] = losses.hint_loss(
        logits["light"], logits["booster"], hint_cfg.kind, hint_cfg.temperature,
        gradient_block=hint_blocked, weights=weights)
  return terms


def term_weights(method: Method, hint_cfg) -> dict[str, float]:
  w = {f"ce_{n}": 1.0 for n in method.nets}
  if method.hint:
    w["hint"] = float(hint_cfg.weight)
  return w
