import jax
import jax.numpy as jnp
import pytest

from rocket.models.wrn import WideResNet, WRNSpec


def n_params(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


# Literature: Zagoruyko & Komodakis (2016), Table 1 / the AT paper's Table 1 (CIFAR-10).
@pytest.mark.parametrize("depth,width,expected_m", [(16, 1, 0.175), (16, 2, 0.69),
                                                    (40, 1, 0.56), (40, 2, 2.2)])
def test_parameter_counts_match_literature(depth, width, expected_m):
  model = WideResNet(depth, width)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  count = n_params(shapes["params"]) / 1e6
  assert abs(count - expected_m) / expected_m < 0.02, count


def test_forward_shapes_and_group_features():
  model = WideResNet(10, 2, num_classes=7)
  x = jnp.ones((3, 32, 32, 3))
  variables = model.init(jax.random.key(0), x)
  logits, feats = model.apply(variables, x)
  assert logits.shape == (3, 7)
  assert [f.shape for f in feats] == [(3, 32, 32, 32), (3, 16, 16, 64), (3, 8, 8, 128)]


@pytest.mark.parametrize("depth", [11, 15, 4, 0, 17])
def test_bad_depth_is_a_clear_error(depth):
  with pytest.raises(ValueError, match="6n\\+4"):
    WRNSpec(depth, 1)


def test_bad_width():
  with pytest.raises(ValueError, match="width"):
    WRNSpec(16, 0)
