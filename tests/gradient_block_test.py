"""The gradient block, checked numerically on the objective the train step uses.

We isolate the hint's gradient by calling :func:`rocket.objective.loss_and_grads` (the train
step's gradient code) with the hint's weight alone (1; the cross-entropy terms weighted 0), for
the three ``gradient_block`` modes, on the trainer's own model and batch preparation.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket import image_task, methods, objective
from rocket.objective import owner_tree
from tests.conftest import load_config


def hint_grads(mode, share="interval", hint_kind="mse_logits"):
  config = load_config("tiny", gradient_block=mode, share=share)
  config.hint.kind, config.hint.temperature, config.augment = hint_kind, 2.0, False
  model = image_task.build_model(config, 10)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)
  x = image_task.image_prepare(config, np.zeros(3), np.ones(3))(
      None, np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3)).astype(np.uint8), False)
  y = np.arange(8) % 10
  obj = objective.Objective.from_config(config)
  weights = {k: (1.0 if k == "hint" else 0.0) for k in obj.term_weights()}

  def forward(params):
    out, mut = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                           train=True, mutable=["batch_stats"])
    return out, mut["batch_stats"]

  _, terms, grads, _, _ = jax.jit(
      lambda p: obj.loss_and_grads(forward, p, y, weights))(variables["params"])
  assert float(terms["hint"]) > 0
  owners = owner_tree(grads)
  norms = {"light": 0.0, "booster": 0.0, "shared": 0.0}
  for g, o in zip(jax.tree.leaves(grads), jax.tree.leaves(owners)):
    norms[o] += float(jnp.sum(jnp.abs(g)))
  return norms, grads


@pytest.mark.parametrize("kind", ["mse_logits", "kd_kl", "l2_softmax"])
def test_on_blocks_booster_and_keeps_light(kind):
  norms, _ = hint_grads("on", hint_kind=kind)
  assert norms["booster"] == 0.0
  assert norms["light"] > 0 and norms["shared"] > 0


def test_off_moves_both():
  norms, _ = hint_grads("off")
  assert norms["booster"] > 0 and norms["light"] > 0 and norms["shared"] > 0


def test_bool_values_are_accepted():
  assert methods.normalize_gradient_block(True) == "on"
  assert methods.normalize_gradient_block("False") == "off"
  with pytest.raises(ValueError, match="gradient_block"):
    methods.normalize_gradient_block("maybe")


@pytest.mark.parametrize("share", ["interval", "bottom"])
def test_strict_blocks_only_booster_own_params(share):
  on, g_on = hint_grads("on", share)
  strict, g_strict = hint_grads("strict", share)
  off, g_off = hint_grads("off", share)
  assert strict["booster"] == 0.0 and strict["light"] > 0
  f_on, f_strict, f_off = (flax.traverse_util.flatten_dict(g, sep="/") for g in (g_on, g_strict, g_off))
  for k in f_on:
    if k.startswith("light/"):  # the light side is identical in all modes
      np.testing.assert_allclose(f_strict[k], f_on[k], rtol=1e-5, atol=1e-7)
  # Shared layers: strict = light path (as "on") + booster path (as "off")
  shared = [k for k in f_on if k.startswith("shared/") and "_light/" not in k
            and "_booster/" not in k]
  assert shared
  for k in shared:
    np.testing.assert_allclose(f_strict[k], f_off[k], rtol=2e-4, atol=1e-6)
  diff = sum(float(np.abs(f_strict[k] - f_on[k]).sum()) for k in shared)
  assert diff > 0  # the booster path adds to the shared gradient
