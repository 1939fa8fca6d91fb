import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket import losses

RNG = np.random.default_rng(0)
ZL = RNG.normal(size=(5, 4)).astype(np.float32)
ZB = RNG.normal(size=(5, 4)).astype(np.float32) * 2
Y = np.array([0, 3, 1, 1, 2])
W = np.array([1, 1, 0, 1, 0], np.float32)


def np_softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_cross_entropy_matches_numpy():
  ref = -np.log(np_softmax(ZL)[np.arange(5), Y])
  np.testing.assert_allclose(losses.cross_entropy(ZL, Y), ref.mean(), rtol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy(ZL, Y, W), (ref * W).sum() / W.sum(), rtol=1e-6)


def test_mse_logits_is_the_official_hint():
  """The official hint ``((z_b - z_l)**2).sum() / batchSize``, on a hand-made example."""
  z_l = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
  z_b = np.array([[0.0, 4.0, 1.0], [3.0, 0.0, 1.0]], np.float32)
  # squared differences: [1, 4, 1] and [9, 0, 0] -> summed over classes 6 and 9 -> / batch 2
  assert float(losses.hint_loss(z_l, z_b, "mse_logits")) == pytest.approx(7.5)
  ref = ((ZL - ZB) ** 2).sum() / len(ZL)
  np.testing.assert_allclose(losses.hint_loss(ZL, ZB, "mse_logits"), ref, rtol=1e-6)
  ref_w = (((ZL - ZB) ** 2).sum(-1) * W).sum() / W.sum()
  np.testing.assert_allclose(losses.hint_loss(ZL, ZB, "mse_logits", weights=W), ref_w, rtol=1e-6)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_kd_kl_matches_numpy(t):
  p_b, p_l = np_softmax(ZB / t), np_softmax(ZL / t)
  ref = (p_b * (np.log(p_b) - np.log(p_l))).sum(-1).mean() * t * t
  np.testing.assert_allclose(losses.hint_loss(ZL, ZB, "kd_kl", temperature=t), ref, rtol=1e-5)
  np.testing.assert_allclose(losses.kd_kl(ZL, ZB, t), ref, rtol=1e-5)


def test_l2_softmax_matches_numpy():
  ref = ((np_softmax(ZL) - np_softmax(ZB)) ** 2).sum(-1).mean()
  np.testing.assert_allclose(losses.hint_loss(ZL, ZB, "l2_softmax"), ref, rtol=1e-5)


def test_hint_is_zero_for_equal_logits():
  for kind in losses.HINT_KINDS:
    assert abs(float(losses.hint_loss(ZL, ZL, kind, temperature=3.0))) < 1e-6


@pytest.mark.parametrize("kind", losses.HINT_KINDS)
def test_hint_moves_both_sides_unless_blocked(kind):
  """The loss is pure: it pulls on both logits; the objective applies the gradient block."""
  g_l, g_b = jax.grad(lambda a, b: losses.hint_loss(a, b, kind, 2.0), (0, 1))(ZL, ZB)
  assert float(jnp.abs(g_l).sum()) > 0 and float(jnp.abs(g_b).sum()) > 0


def test_unknown_hint_kind():
  with pytest.raises(ValueError, match="hint kind"):
    losses.hint_loss(ZL, ZB, "cosine")


def test_accuracy_count():
  assert float(losses.accuracy_count(ZL, ZL.argmax(-1))) == 5
  assert float(losses.accuracy_count(ZL, ZL.argmax(-1), W)) == 3


def test_binary_logits_read_as_two_class():
  z, b = jnp.array([0.3, -1.2, 2.0]), jnp.array([1.3, -1.7, 2.2])
  two = losses.two_class
  # every hint kind of [B] logits equals the same hint of the two-class logits [0, z]
  for kind in losses.HINT_KINDS:
    np.testing.assert_allclose(losses.hint_loss(z, b, kind, 2.0), losses.hint_loss(two(z), two(b), kind, 2.0),
                               rtol=1e-6)
  assert float(losses.hint_loss(z, b, "kd_kl", 2.0)) > 0
  np.testing.assert_allclose(losses.hint_loss(z, b), np.mean(np.square(np.asarray(z - b))), rtol=1e-6)
  y = jnp.array([1.0, 0.0, 0.0])
  np.testing.assert_allclose(losses.cross_entropy(z, y),
                             losses.cross_entropy(two(z), y.astype(jnp.int32)), rtol=1e-6)
