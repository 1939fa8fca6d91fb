"""Training methods: which nets a run holds and which loss terms it sums.

A method is a small declarative record; its loss terms, their weights and the
gradient block are built from it in :mod:`rocket.objective`.

=========  =================  ==========================================================
method     nets trained       loss
=========  =================  ==========================================================
light      light              CE(light)
booster    booster            CE(booster)
rocket     light + booster    CE(light) + CE(booster) + lambda * hint(light, booster)
rocket_kd  light + booster    c CE(light) + CE(booster) + lambda * hint + KD(teacher -> light)
           (+teacher)
kd         light (+teacher)   (1-a) CE(light) + KD(teacher -> light)
at         light (+teacher)   CE(light) + b * AT(teacher -> light)
at_kd      light (+teacher)   (1-a) CE(light) + KD(teacher -> light) + b * AT(...)
=========  =================  ==========================================================

The teacher is a booster-sized net trained alone first (a finished ``booster``
run, see ``rocket.train.train_with_teacher``); ``rocket_kd`` is the paper's
"Rocket+KD": rocket co-training plus KD from such a pre-trained teacher.

``config.loss_convention`` sets the scales of the baselines' terms (the hint
is the paper's in both):

==============  ==================================  ===============================
term            ``paper`` (the official code)        ``modern`` (default)
==============  ==================================  ===============================
KD              2 a T^2 / C * KL  (``F.kl_div``'s   a T^2 * KL  (Hinton et al.)
                mean over batch x classes)
c (rocket_kd)   1                                   1 - a
AT weight b     beta                                beta / 2  (AT paper, eq. 2)
==============  ==================================  ===============================

KL is ``KL(softmax(z_t/T) || softmax(z_s/T))`` summed over classes and averaged
over the batch; ``a = kd.alpha``, ``T = kd.temperature``, ``beta = at.beta``,
``C`` the number of classes.
"""

from __future__ import annotations

import dataclasses
from typing import Optional




@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  nets: tuple[str, ...]  # nets the model holds, each trained by cross-entropy
  hint: bool = False  # adds lambda * hint(light, booster)
  kd_from: Optional[str] = None  # "teacher": KD term on the light net
  at: bool = False  # attention transfer from the teacher
  description: str = ""

  @property
  def needs_teacher(self) -> bool:
    return self.kd_from == "teacher" or self.at


  def config_fields(self) -> frozenset[str]:
    """The method-dependent top-level config fields a run of this method reads (a field of
    :data:`METHOD_FIELDS` outside this set does not change what it computes)."""
    fields = set()
    if "light" in self.nets:
      fields.add("light")
    if len(self.nets) == 2:
      fields.add("share")
    if self.hint:
      fields |= {"hint", "gradient_block"}
    if self.kd_from:
      fields |= {"kd", "loss_convention"}
    if self.at:
      fields |= {"at", "loss_convention"}
    if self.needs_teacher:
      fields.add("teacher_workdir")
    return frozenset(fields)


METHODS = {
    m.name: m for m in (
        Method("light", ("light",), description="the light net trained alone (baseline)"),
        Method("booster", ("booster",), description="the booster net trained alone (baseline)"),
        Method("rocket", ("light", "booster"), hint=True,
               description="Rocket Launching: co-training with shared layers and a hint"),
        Method("rocket_kd", ("light", "booster"), hint=True, kd_from="teacher",
               description="Rocket Launching plus KD from a booster-sized teacher trained first"),
        Method("kd", ("light",), kd_from="teacher",
               description="Hinton KD from a booster-sized teacher trained first"),
        Method("at", ("light",), at=True,
               description="attention transfer from a booster-sized teacher trained first"),
        Method("at_kd", ("light",), kd_from="teacher", at=True, description="AT plus KD"),
    )
}

# Top-level config fields that only some methods read (see Method.config_fields); the others
# (data, optimiser, schedule, booster, seed...) matter to every method.
METHOD_FIELDS = frozenset().union(*(m.config_fields() for m in METHODS.values()))

# gradient_block values: "on" stops the light<-booster terms' gradient at the
# booster's logits (the standard implementation); "off" lets it flow into the
# booster; "strict" blocks only the booster's own parameters: the shared
# layers receive the gradient through the light path *and* the booster path.
GRADIENT_BLOCK_MODES = ("on", "off", "strict")
LOSS_CONVENTIONS = ("modern", "paper")


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


def loss_convention(config) -> str:
  name = config.get("loss_convention", "modern")
  if name not in LOSS_CONVENTIONS:
    raise ValueError(f"config.loss_convention must be one of {LOSS_CONVENTIONS}, got {name!r}")
  return name
