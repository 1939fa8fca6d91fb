"""Training methods: which nets a run holds and which loss terms it sums.

A method is a small declarative record; the train step (``rocket.train``) is
written once against it.

=========  =================  ==========================================================
method     nets trained       loss
=========  =================  ==========================================================
light      light              CE(light)
booster    booster            CE(booster)
rocket     light + booster    CE(light) + CE(booster) + lambda * hint(light, booster)
rocket_kd  light + booster    (1-a) CE(light) + CE(booster) + lambda * hint + a * KD(booster -> light)
kd         light (+teacher)   (1-a) CE(light) + a * KD(teacher -> light)
at         light (+teacher)   CE(light) + beta/2 * AT(teacher -> light)
at_kd      light (+teacher)   (1-a) CE(light) + a * KD(teacher -> light) + beta/2 * AT(...)
=========  =================  ==========================================================

KD is Hinton's ``T^2 * KL(softmax(z_t/T) || softmax(z_s/T))`` (``kd.temperature``,
``kd.alpha``).  The official Rocket/AT PyTorch code scales its KD term by an
extra factor 2 (``T*T*2*alpha``); we keep Hinton's form, so ``kd.alpha=0.9``
here is not numerically the same weight as theirs.  AT is the attention
transfer of Zagoruyko & Komodakis at the output of each of the three WRN
groups, weighted by ``beta / 2`` (``at.beta``, their default 1e3), as in their
code.  The teacher of ``kd``/``at``/``at_kd`` is a booster-sized net trained
alone first (see ``rocket.train.train_and_evaluate``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from rocket import losses


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  nets: tuple[str, ...]  # nets the model holds, each trained by cross-entropy
  hint: bool = False  # adds lambda * hint(light, booster)
  kd_from: Optional[str] = None  # "teacher" | "booster": KD term on the light net
  at: bool = False  # attention transfer from the teacher
  description: str = ""

  @property
  def needs_teacher(self) -> bool:
    return self.kd_from == "teacher" or self.at


METHODS = {
    m.name: m for m in (
        Method("light", ("light",), description="the light net trained alone (baseline)"),
        Method("booster", ("booster",), description="the booster net trained alone (baseline)"),
        Method("rocket", ("light", "booster"), hint=True,
               description="Rocket Launching: co-training with shared layers and a hint"),
        Method("rocket_kd", ("light", "booster"), hint=True, kd_from="booster",
               description="Rocket Launching plus KD from the co-trained booster"),
        Method("kd", ("light",), kd_from="teacher",
               description="Hinton KD from a booster-sized teacher trained first"),
        Method("at", ("light",), at=True,
               description="attention transfer from a booster-sized teacher trained first"),
        Method("at_kd", ("light",), kd_from="teacher", at=True, description="AT plus KD"),
    )
}

# gradient_block values: "on" stops the light<-booster terms' gradient at the
# booster's logits (the standard implementation); "off" lets it flow into the
# booster; "strict" blocks only the booster's own parameters: the shared
# layers receive the gradient through the light path *and* the booster path.
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


def booster_transfer_terms(method: Method, light_logits, booster_logits, config, blocked: bool):
  """The terms through which the booster teaches the light net (hint, KD from booster)."""
  terms = {}
  if method.hint:
    terms["hint"] = losses.hint_loss(light_logits, booster_logits, config.hint.kind,
                                     config.hint.temperature, gradient_block=blocked)
  if method.kd_from == "booster":
    target = booster_logits if not blocked else jax.lax.stop_gradient(booster_logits)
    terms["kd"] = losses.kd_kl(light_logits, target, config.kd.temperature)
  return terms


def loss_terms(method: Method, outputs, labels, config, blocked: bool, teacher=None):
  """Unweighted loss terms as a dict of scalars (``ce_<net>``, ``hint``, ``kd``, ``at``).

  ``teacher`` holds the frozen teacher's outputs (``logits``/``features``) for
  the methods that need one.
  """
  logits = outputs["logits"]
  terms = {f"ce_{n}": losses.cross_entropy(logits[n], labels) for n in method.nets}
  if "booster" in logits and "light" in logits:
    terms.update(booster_transfer_terms(method, logits["light"], logits["booster"], config, blocked))
  if method.kd_from == "teacher":
    terms["kd"] = losses.kd_kl(logits["light"], teacher["logits"], config.kd.temperature)
  if method.at:
    terms["at"] = losses.attention_transfer(outputs["features"]["light"],
                                            teacher["features"])
  return terms


def term_weights(method: Method, config, step=None, steps_per_epoch: int = 0) -> dict:
  """Weights of the loss terms; the hint weight ramps up linearly over ``hint.warmup_epochs``.

  ``step`` (an array inside the train step) and ``steps_per_epoch`` enable the ramp.
  """
  w = {f"ce_{n}": 1.0 for n in method.nets}
  if method.kd_from:
    w["ce_light"] = 1.0 - float(config.kd.alpha)
    w["kd"] = float(config.kd.alpha)
  if method.hint:
    w["hint"] = float(config.hint.weight)
    warm = float(config.hint.warmup_epochs) * steps_per_epoch
    if step is not None and warm > 0:
      w["hint"] = w["hint"] * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / warm)
  if method.at:
    w["at"] = float(config.at.beta) / 2.0
  return w
