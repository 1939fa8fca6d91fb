"""Loss terms of Rocket Launching and its baselines.

All losses average over the batch.  Optional ``weights`` (shape ``[batch]``,
1 for real examples and 0 for padding) make the average run over the real
examples only, which the evaluation of a last, padded batch needs.

Hint losses (``hint_loss``) compare the light net's logits ``z_l`` with the
booster's ``z_b``:

* ``mse_logits`` (the paper's eq. 1, ``||z_l - z_b||^2``): ``(z_l - z_b)^2``
  **summed over classes**, averaged over the batch.  This is the official
  code's ``gamma * ((z_b - z_l)**2).sum() / batchSize``, which its
  ``gamma = 0.03`` multiplies.
* ``kd_kl`` (Hinton et al.): ``T^2 * KL(softmax(z_b / T) || softmax(z_l / T))``,
  summed over classes and averaged over the batch.
* ``l2_softmax``: ``(softmax(z_l) - softmax(z_b))^2`` summed over classes,
  averaged over the batch (eq. 1 after a softmax).

These are pure functions of their inputs; the gradient block (``stop_gradient`` on
the booster's logits, and its ``strict`` variant) is applied by
:mod:`rocket.objective`, which combines the terms.

Binary tasks (CTR): logits of shape ``[batch]`` (one logit per example) and
labels in {0, 1} are read as the two-class logits ``[0, z]``, so every loss
here works unchanged: cross-entropy becomes the logistic loss, KD and
``l2_softmax`` compare sigmoid probabilities, ``mse_logits`` compares ``z``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

HINT_KINDS = ("mse_logits", "kd_kl", "l2_softmax")


def _mean(per_example, weights):
  if weights is None:
    return jnp.mean(per_example)
  weights = weights.astype(per_example.dtype)
  return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def two_class(logits):
  """``[B]`` binary logits -> ``[B, 2]`` logits ``[0, z]`` (same softmax as the sigmoid); others as is."""
  if logits.ndim != 1:
    return logits
  z = logits.astype(jnp.float32)[:, None]
  return jnp.concatenate([jnp.zeros_like(z), z], axis=-1)


def cross_entropy(logits, labels, weights=None):
  """Mean softmax cross-entropy with integer labels; logistic loss for ``[B]`` binary logits."""
  if logits.ndim == 1:
    per = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), labels.astype(jnp.float32))
  else:
    per = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  return _mean(per, weights)


def kd_kl(student_logits, teacher_logits, temperature=4.0, weights=None, class_mean=False):
  """Hinton's distillation term: T^2 KL(p_teacher^T || p_student^T), batch mean.

  ``class_mean=True`` also divides by the number of classes, as the official code's
  ``F.kl_div`` (PyTorch's old default reduction: the mean over batch x classes) does.
  """
  t = temperature
  student_logits, teacher_logits = two_class(student_logits), two_class(teacher_logits)
  log_p_s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / t)
  log_p_t = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / t)
  per = jnp.sum(jnp.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
  if class_mean:
    per = per / per.dtype.type(student_logits.shape[-1])
  return _mean(per, weights) * t * t


def hint_loss(light_logits, booster_logits, kind="mse_logits", temperature=1.0, weights=None):
  """The hint term between light and booster logits (see module docstring)."""
  z_l = light_logits.astype(jnp.float32)
  z_b = booster_logits.astype(jnp.float32)
  if kind == "mse_logits":
    sq = jnp.square(z_l - z_b)
    per = sq if sq.ndim == 1 else jnp.sum(sq, axis=-1)  # binary: one logit per example
  elif kind == "kd_kl":
    return kd_kl(z_l, z_b, temperature, weights)
  elif kind == "l2_softmax":
    p_l, p_b = jax.nn.softmax(two_class(z_l)), jax.nn.softmax(two_class(z_b))
    per = jnp.sum(jnp.square(p_l - p_b), axis=-1)
  else:
    raise ValueError(f"unknown hint kind {kind!r}; choose one of {HINT_KINDS}")
  return _mean(per, weights)


def accuracy_count(logits, labels, weights=None):
  """Number of correct top-1 predictions (weighted); ``z > 0`` vs label for binary logits."""
  if logits.ndim == 1:
    correct = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  else:
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  if weights is not None:
    correct = correct * weights
  return jnp.sum(correct)


def attention_map(features):
  """Spatial attention of Zagoruyko & Komodakis: mean over channels of the squared
  activations, flattened and L2-normalised per example: ``[B, H, W, C] -> [B, H*W]``."""
  a = jnp.mean(jnp.square(features.astype(jnp.float32)), axis=-1).reshape(features.shape[0], -1)
  return a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def attention_transfer(student_features, teacher_features, weights=None):
  """Sum over feature-map pairs of mean_{spatial}((a_s - a_t)^2), averaged over the batch.

  This is the AT paper's per-group term (their code: ``(at(x) - at(y)).pow(2).mean()``); the
  trainer multiplies the sum by ``beta`` (the official codes' weight, ``loss_convention=paper``)
  or ``beta / 2`` (the AT paper's eq. 2, ``modern``).  The teacher side is treated as a constant.
  """
  total = 0.0
  for fs, ft in zip(student_features, teacher_features, strict=True):
    if fs.shape[1:3] != ft.shape[1:3]:
      raise ValueError(f"attention transfer needs equal spatial sizes, got {fs.shape} vs {ft.shape}")
    diff = attention_map(fs) - jax.lax.stop_gradient(attention_map(ft))
    total = total + _mean(jnp.mean(jnp.square(diff), axis=-1), weights)
  return total


def scale_gradient(x, scale):
  """``x`` in the forward pass, exactly; its gradient multiplied by ``scale`` (traced) in the
  backward pass (0: the gradient block, ``stop_gradient``; 1: the identity)."""
  frozen = jax.lax.stop_gradient(x)
  return frozen + jnp.asarray(scale, x.dtype) * (x - frozen)
