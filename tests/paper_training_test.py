"""Training details of the official code (../shared/PAPER_NOTES.md), as ``paper_repro/configs/paper.py``
sets them: the LR drops with a momentum reset, and the random crops of a symmetric-padded image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket import input_pipeline, train
from rocket.config_util import load_config


def sgd_updates(reset: bool, grads, total_steps=10):
  config = load_config("configs/cifar10.py:tiny", **{
      "optim.nesterov": False, "optim.weight_decay": 0.0, "optim.schedule": "step",
      "optim.lr_boundaries": (0.3, 0.6), "optim.reset_momentum": reset})
  tx, sched = train.create_optimizer(config, total_steps, 1)
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  out = []
  for g in grads:
    u, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
    out.append(np.asarray(u["w"]))
  return np.stack(out), [float(sched(i)) for i in range(len(grads))]


def test_momentum_reset_at_each_drop_matches_a_recreated_torch_sgd():
  """torch.optim.SGD(momentum=0.9): buf = g on its first step, then buf = 0.9 buf + g; p -= lr buf.
  Re-creating the optimiser at a drop starts a new buffer."""
  grads = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
  got, lrs = sgd_updates(True, grads)
  assert lrs[2] == pytest.approx(0.1) and lrs[3] == pytest.approx(0.02) and lrs[6] == pytest.approx(0.004)
  want, buf = [], None
  for i, g in enumerate(grads):
    buf = g if (buf is None or i in (3, 6)) else 0.9 * buf + g
    want.append(-lrs[i] * buf)
  np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-7)
  # without the reset the momentum carries over the drop
  plain, _ = sgd_updates(False, grads)
  np.testing.assert_allclose(plain[:3], got[:3], rtol=1e-6)
  assert not np.allclose(plain[3], got[3])


def test_reset_momentum_needs_the_step_schedule():
  config = load_config("configs/cifar10.py:tiny", **{"optim.reset_momentum": True,
                                                     "optim.schedule": "cosine"})
  with pytest.raises(ValueError, match="reset_momentum.*schedule='step'"):
    train.validate_config(config)


def test_symmetric_pad_is_opencv_border_reflect():
  """cv2.BORDER_REFLECT pads ``abcd`` by 2 as ``ba|abcd|dc`` (edge repeated): numpy "symmetric"."""
  row = np.array([1, 2, 3, 4])
  np.testing.assert_array_equal(np.pad(row, 2, mode="symmetric"), [2, 1, 1, 2, 3, 4, 4, 3])
  img = np.arange(2 * 5 * 5 * 1, dtype=np.uint8).reshape(2, 5, 5, 1)
  padded = np.pad(img, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
  windows = [padded[:, i:i + 5, j:j + 5] for i in range(5) for j in range(5)]
  for seed in range(4):
    out = np.asarray(input_pipeline.augment(jax.random.key(seed), jnp.asarray(img), pad=2,
                                            pad_mode="symmetric", flip=False))
    for b in range(2):
      assert any(np.array_equal(out[b], w[b]) for w in windows)


def test_paper_config_sets_the_official_details():
  c = load_config("paper_repro/configs/paper.py:cifar10")
  assert (c.share, c.hint.kind, c.hint.weight, c.gradient_block) == ("interval", "mse_logits", 0.03, "on")
  assert (c.init, c.pad_mode, c.loss_convention) == ("paper", "symmetric", "paper")
  assert not c.optim.nesterov and c.optim.reset_momentum and c.optim.momentum == 0.9
  assert c.optim.weight_decay == 5e-4 and c.optim.lr_decay == 0.2 and c.batch_size == 128
  steps_per_epoch, epochs = 390, 200
  tx, sched = train.create_optimizer(c, steps_per_epoch * epochs, steps_per_epoch)
  del tx
  # lr x0.2 "if epoch in [60, 120, 160]" at the start of that (1-indexed) epoch
  for finished, lr in ((58, 0.1), (59, 0.02), (118, 0.02), (119, 0.004), (159, 0.0008)):
    assert float(sched(finished * steps_per_epoch)) == pytest.approx(lr), finished
  train.validate_config(c)
