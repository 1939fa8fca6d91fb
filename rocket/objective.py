"""The training objective: a method's loss terms, their weights over time, and the gradient block.

Everything the train step needs to turn the nets' outputs into a loss and gradients lives here,
written once for every task (images, CTR):

* :class:`Objective` -- the method's terms and their settings, read from the config once
  (:meth:`Objective.from_config`, where they are checked): a small frozen pytree whose numbers
  may differ per run in a stack;
* :meth:`Objective.loss_terms` -- the unweighted terms (``ce_<net>``, ``hint``, ``kd``, ``at``),
  built from the pure functions of :mod:`rocket.losses`;
* :meth:`Objective.term_weights` -- their weights (``config.loss_convention``; the hint's warm-up
  ramp);
* :meth:`Objective.loss_and_grads` -- the weighted sum and its gradient with respect to the
  parameters, with the **gradient block**:

  - ``on`` (the paper's, the default): the booster's logits enter the hint through
    ``jax.lax.stop_gradient``, so the hint moves the light net (and the shared layers through
    the light net) and never the booster;
  - ``off``: no stop -- the hint pulls the booster toward the light net too;
  - ``strict``: a second reading of the paper's wording ("W_B is not updated by the hint"): the
    hint also reaches the *shared* layers through the booster's path, while the booster's own
    parameters get none of it.  It costs a second pull-back through the nets.

Which net owns a parameter (:func:`param_owner`) follows one naming rule shared by every model:
top-level ``light`` / ``booster`` / ``shared``, and inside ``shared`` a batch norm named
``bn*_<net>`` belongs to that net.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp

from rocket import losses, methods
from rocket.config_util import ConfigError
from rocket.methods import Method

NETS = ("light", "booster")


def param_owner(path: tuple[str, ...]) -> str:
  """Which net a parameter belongs to: ``light``, ``booster`` or ``shared``.

  ``path`` is the key path of the leaf in ``variables["params"]``.  The per-net batch-norm
  layers inside shared blocks (``bn1_light``, ``bn2_booster``, ...) belong to their net: only
  that net uses them.
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
  return jax.tree_util.tree_map_with_path(
      lambda kp, _: param_owner(tuple(k.key for k in kp)), params)


# Fields of the config an :class:`Objective` reads whose values may differ between the runs of one
# stack (:mod:`rocket.stacked`): they enter the program as numbers, not as its structure.
# ``gradient_block`` may differ between "on" and "off" only.
PER_RUN_FIELDS = ("hint.weight", "hint.temperature", "kd.alpha", "kd.temperature", "at.beta",
                  "gradient_block")


def _static(**kw):
  return flax.struct.field(pytree_node=False, **kw)


@flax.struct.dataclass
class Objective:
  """A method's objective, read from the config once and checked there (:meth:`from_config`).

  The structure (which terms, the hint's kind, the convention, the gradient block's mode) is
  static; the weights and temperatures are the leaves of this pytree, so that a stack of runs
  can carry one value per run (:meth:`stack`; ``gradient_block="per_run"`` then holds a 0/1
  ``hint_to_booster`` per run: 0 is "on", 1 is "off").
  """
  method: Method = _static()
  hint_kind: str = _static(default="mse_logits")
  gradient_block: str = _static(default="on")  # on | off | strict | per_run
  convention: str = _static(default="modern")
  hint_warmup_epochs: float = _static(default=0.0)
  hint_weight: Any = 0.0
  hint_temperature: Any = 1.0
  kd_alpha: Any = 0.0
  kd_temperature: Any = 1.0
  at_beta: Any = 0.0
  hint_to_booster: Any = 0.0  # gradient_block="per_run" only

  @classmethod
  def from_config(cls, config, method: str | None = None) -> "Objective":
    """The objective of ``config`` (of ``method`` instead of ``config.method`` when given);
    a bad value is a :class:`rocket.config_util.ConfigError` naming the field."""
    try:
      m = methods.get_method(method or config.method)
      block = methods.normalize_gradient_block(config.gradient_block)
      convention = methods.loss_convention(config)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    hint, kd, at = config.hint, config.kd, config.get("at")
    if hint.kind not in losses.HINT_KINDS:
      raise ConfigError(f"config.hint.kind must be one of {losses.HINT_KINDS}, got {hint.kind!r}")
    if hint.temperature <= 0:
      raise ConfigError(f"config.hint.temperature must be > 0, got {hint.temperature}")
    if hint.weight < 0:
      raise ConfigError(f"config.hint.weight must be >= 0, got {hint.weight}")
    if hint.warmup_epochs < 0:
      raise ConfigError("config.hint.warmup_epochs must be >= 0")
    if not 0.0 <= kd.alpha <= 1.0 or kd.temperature <= 0:
      raise ConfigError(f"config.kd.alpha must be in [0, 1] and config.kd.temperature > 0, got "
                        f"{kd.alpha}, {kd.temperature}")
    if at is not None and at.beta < 0:
      raise ConfigError("config.at.beta must be >= 0")
    return cls(m, hint.kind, block, convention, float(hint.warmup_epochs), float(hint.weight),
               float(hint.temperature), float(kd.alpha), float(kd.temperature),
               float(at.beta) if at is not None else 0.0, 0.0 if block != "off" else 1.0)

  @classmethod
  def stack(cls, objectives: "list[Objective]") -> "Objective":
    """One objective whose leaves carry a leading run axis (the runs of a stack). The runs must
    agree on the structure; ``gradient_block`` may mix "on" and "off" (then "per_run")."""
    first = objectives[0]
    block = {o.gradient_block for o in objectives}
    if len(block) > 1 and not block <= {"on", "off"}:
      raise ConfigError(f"the runs of a stack may mix gradient_block 'on' and 'off' only, got "
                        f"{sorted(block)}")
    for o in objectives[1:]:
      for f in ("method", "hint_kind", "convention", "hint_warmup_epochs"):
        if getattr(o, f) != getattr(first, f):
          raise ConfigError(f"the runs of a stack must agree on the objective's {f}: "
                            f"{getattr(first, f)!r} vs {getattr(o, f)!r}")
    leaves = {f: jnp.asarray([getattr(o, f) for o in objectives], jnp.float32)
              for f in ("hint_weight", "hint_temperature", "kd_alpha", "kd_temperature", "at_beta",
                        "hint_to_booster")}
    return first.replace(gradient_block=block.pop() if len(block) == 1 else "per_run", **leaves)

  # ------------------------------------------------------------------ terms

  def transfer_terms(self, light_logits, booster_logits) -> dict:
    """The terms through which the booster teaches the light net (the hint), unblocked."""
    if not self.method.hint:
      return {}
    return {"hint": losses.hint_loss(light_logits, booster_logits, self.hint_kind,
                                     self.hint_temperature)}

  def loss_terms(self, outputs, labels, blocked: bool = True, teacher=None) -> dict:
    """Unweighted loss terms as a dict of scalars (``ce_<net>``, ``hint``, ``kd``, ``at``).

    ``blocked``: the booster's logits enter the transfer terms through ``stop_gradient``
    (with ``gradient_block="per_run"``, through a 0/1 mix of the stopped and the live logits,
    which has their value and the chosen gradient).  ``teacher`` holds the frozen teacher's
    outputs (``logits``/``features``) for the methods that need one.
    """
    method, logits = self.method, outputs["logits"]
    terms = {f"ce_{n}": losses.cross_entropy(logits[n], labels) for n in method.nets}
    if "booster" in logits and "light" in logits:
      z_b = logits["booster"]
      if self.gradient_block == "per_run":
        z_b = losses.scale_gradient(z_b, self.hint_to_booster)
      elif blocked:
        z_b = jax.lax.stop_gradient(z_b)
      terms.update(self.transfer_terms(logits["light"], z_b))
    if method.kd_from == "teacher":
      terms["kd"] = losses.kd_kl(logits["light"], teacher["logits"], self.kd_temperature,
                                 class_mean=self.convention == "paper")
    if method.at:
      terms["at"] = losses.attention_transfer(outputs["features"]["light"], teacher["features"])
    # a model's own penalties (e.g. an L2 on the embedding rows it looked up), weighted already
    terms.update({f"penalty_{k}": v for k, v in outputs.get("penalties", {}).items()})
    return terms

  def term_weights(self, step=None, steps_per_epoch: int = 0) -> dict:
    """Weights of the loss terms (see :mod:`rocket.methods` for the two conventions); the hint
    weight ramps up linearly over ``hint.warmup_epochs``.

    ``step`` (an array inside the train step) and ``steps_per_epoch`` enable the ramp.
    """
    method, paper = self.method, self.convention == "paper"
    w = {f"ce_{n}": 1.0 for n in method.nets}
    if method.kd_from:
      alpha = self.kd_alpha
      if not (paper and method.hint):  # the official rocket+KD keeps the full CE(light)
        w["ce_light"] = 1.0 - alpha
      w["kd"] = 2.0 * alpha if paper else alpha
    if method.hint:
      w["hint"] = self.hint_weight
      warm = self.hint_warmup_epochs * steps_per_epoch
      if step is not None and warm > 0:
        w["hint"] = w["hint"] * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / warm)
    if method.at:
      w["at"] = self.at_beta if paper else self.at_beta / 2.0
    return w

  def loss_and_grads(self, forward: Callable, params, labels, weights: dict, teacher=None):
    """``(loss, terms, grads, outputs, aux)`` of the weighted objective, with the gradient block.

    ``forward(params) -> (outputs, aux)`` runs the nets (``aux``: e.g. the new batch statistics).
    The forward pass is linearised once (``jax.vjp``); the loss terms are differentiated with
    respect to the nets' outputs and pulled back through them.  ``weights`` are the terms'
    weights (:meth:`term_weights`).
    """
    mode = self.gradient_block
    out, pullback, aux = jax.vjp(forward, params, has_aux=True)

    def total(out):
      terms = self.loss_terms(out, labels, mode != "off", teacher)
      return sum((1.0 if k.startswith("penalty_") else weights[k]) * v
                 for k, v in terms.items()), terms

    (loss, terms), d_out = jax.value_and_grad(total, has_aux=True)(out)
    (grads,) = pullback(d_out)
    if mode == "strict" and len(self.method.nets) == 2:
      light = jax.lax.stop_gradient(out["logits"]["light"])

      def transfer(z_b):
        return sum(weights[k] * v for k, v in self.transfer_terms(light, z_b).items())

      cot = jax.tree.map(jnp.zeros_like, out)
      cot["logits"]["booster"] = jax.grad(transfer)(out["logits"]["booster"])
      (extra,) = pullback(cot)
      extra = jax.tree.map(lambda g, o: jnp.zeros_like(g) if o == "booster" else g,
                           extra, owner_tree(extra))
      grads = jax.tree.map(jnp.add, grads, extra)
    return loss, terms, grads, out, aux
