"""The training objective: a method's loss terms, their weights over time, and the gradient block.

Everything the train step needs to turn the nets' outputs into a loss and gradients lives here,
written once for every task (images, CTR):

* :func:`loss_terms` -- the unweighted terms (``ce_<net>``, ``hint``, ``kd``, ``at``), built from
  the pure functions of :mod:`rocket.losses`;
* :func:`term_weights` -- their weights (``config.loss_convention``; the hint's warm-up ramp);
* :func:`loss_and_grads` -- the weighted sum and its gradient with respect to the parameters,
  with the **gradient block**:

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

import jax
import jax.numpy as jnp

from rocket import losses, methods
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


def transfer_terms(method: Method, light_logits, booster_logits, config) -> dict:
  """The terms through which the booster teaches the light net (the hint), unblocked."""
  if not method.hint:
    return {}
  return {"hint": losses.hint_loss(light_logits, booster_logits, config.hint.kind,
                                   config.hint.temperature)}


def loss_terms(method: Method, outputs, labels, config, blocked: bool = True, teacher=None) -> dict:
  """Unweighted loss terms as a dict of scalars (``ce_<net>``, ``hint``, ``kd``, ``at``).

  ``blocked``: the booster's logits enter the transfer terms through ``stop_gradient``.
  ``teacher`` holds the frozen teacher's outputs (``logits``/``features``) for the methods that
  need one.
  """
  logits = outputs["logits"]
  terms = {f"ce_{n}": losses.cross_entropy(logits[n], labels) for n in method.nets}
  if "booster" in logits and "light" in logits:
    z_b = jax.lax.stop_gradient(logits["booster"]) if blocked else logits["booster"]
    terms.update(transfer_terms(method, logits["light"], z_b, config))
  if method.kd_from == "teacher":
    terms["kd"] = losses.kd_kl(logits["light"], teacher["logits"], config.kd.temperature,
                               class_mean=methods.loss_convention(config) == "paper")
  if method.at:
    terms["at"] = losses.attention_transfer(outputs["features"]["light"], teacher["features"])
  return terms


def term_weights(method: Method, config, step=None, steps_per_epoch: int = 0) -> dict:
  """Weights of the loss terms (see :mod:`rocket.methods` for the two conventions); the hint
  weight ramps up linearly over ``hint.warmup_epochs``.

  ``step`` (an array inside the train step) and ``steps_per_epoch`` enable the ramp.
  """
  paper = methods.loss_convention(config) == "paper"
  w = {f"ce_{n}": 1.0 for n in method.nets}
  if method.kd_from:
    alpha = float(config.kd.alpha)
    if not (paper and method.hint):  # the official rocket+KD keeps the full CE(light)
      w["ce_light"] = 1.0 - alpha
    w["kd"] = 2.0 * alpha if paper else alpha
  if method.hint:
    w["hint"] = float(config.hint.weight)
    warm = float(config.hint.warmup_epochs) * steps_per_epoch
    if step is not None and warm > 0:
      w["hint"] = w["hint"] * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / warm)
  if method.at:
    w["at"] = float(config.at.beta) if paper else float(config.at.beta) / 2.0
  return w


def loss_and_grads(method: Method, config, forward: Callable, params, labels, weights: dict,
                   teacher=None):
  """``(loss, terms, grads, outputs, aux)`` of the weighted objective, with the gradient block.

  ``forward(params) -> (outputs, aux)`` runs the nets (``aux``: e.g. the new batch statistics).
  The forward pass is linearised once (``jax.vjp``); the loss terms are differentiated with
  respect to the nets' outputs and pulled back through them.  ``weights`` are the terms'
  weights (:func:`term_weights`).
  """
  mode = methods.normalize_gradient_block(config.gradient_block)
  out, pullback, aux = jax.vjp(forward, params, has_aux=True)

  def total(out):
    terms = loss_terms(method, out, labels, config, mode != "off", teacher)
    return sum(weights[k] * v for k, v in terms.items()), terms

  (loss, terms), d_out = jax.value_and_grad(total, has_aux=True)(out)
  (grads,) = pullback(d_out)
  if mode == "strict" and len(method.nets) == 2:
    light = jax.lax.stop_gradient(out["logits"]["light"])

    def transfer(z_b):
      return sum(weights[k] * v for k, v in transfer_terms(method, light, z_b, config).items())

    cot = jax.tree.map(jnp.zeros_like, out)
    cot["logits"]["booster"] = jax.grad(transfer)(out["logits"]["booster"])
    (extra,) = pullback(cot)
    extra = jax.tree.map(lambda g, o: jnp.zeros_like(g) if o == "booster" else g,
                         extra, owner_tree(extra))
    grads = jax.tree.map(jnp.add, grads, extra)
  return loss, terms, grads, out, aux
