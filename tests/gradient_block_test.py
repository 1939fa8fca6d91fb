"""The gradient block, checked numerically on the train step's own gradient code.

We isolate the hint's gradient by running the train step's gradient computation
with a loss made of the hint term alone (hint weight 1, cross-entropy terms
removed), for the three ``gradient_block`` modes.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket import methods, train
from rocket.models.rocket import owner_tree
from tests.conftest import load_config


def hint_grads(mode, share="interval", hint_kind="mse_logits"):
  config = load_config("tiny", gradient_block=mode, share=share)
  config.hint.kind, config.hint.weight, config.hint.temperature = hint_kind, 1.0, 2.0
  config.optim.weight_decay, config.optim.momentum, config.augment = 0.0, 0.0, False
  model = train.build_model(config, 10)
  tx, _ = train.create_optimizer(config, 10, 10)
  state = train.init_state(model, tx, (16, 16, 3), 0, train.make_mesh())
  # Keep only the hint term: with lr 1 and no momentum/decay, -update == gradient.
  orig = methods.term_weights
  methods.term_weights = lambda *a, **kw: {
      k: (v if k == "hint" else 0.0) for k, v in orig(*a, **kw).items()}
  try:
    step = train.make_train_step(config, model, tx, lambda s: 1.0, np.zeros(3), np.ones(3))
    x = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3)).astype(np.uint8)
    y = np.arange(8) % 10
    params0 = jax.tree.map(np.asarray, state.params)
    new, _ = jax.jit(step)(state, x, y)
  finally:
    methods.term_weights = orig
  lr = float(config.optim.lr)  # schedule(0) inside optimizer: the config's lr
  grads = jax.tree.map(lambda a, b: (a - np.asarray(b)) / lr, params0, new.params)
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
