"""The light/booster model, checked against facts of the official code (../shared/PAPER_NOTES.md).

The parameter counts below are those that receive gradients in the official PyTorch code
(GitHub zhougr1993/Rocket-Launching, rocket_interval.py / rocket_bottom.py), counted there;
they are not read from our own outputs.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket import image_task, train
from rocket.models.rocket import RocketNet, light_spec
from rocket.objective import owner_tree, param_owner
from rocket.models.wrn import WideResNet, WRNSpec
from tests.conftest import load_config

X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16, 16, 3)), jnp.float32)
X32 = jnp.zeros((1, 32, 32, 3), jnp.float32)


def init(model, x=X):
  return model.init(jax.random.key(0), x, train=False)


def flat(tree):
  return flax.traverse_util.flatten_dict(tree, sep="/")


def count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def n_params(model):
  """Parameter count without running the init (shapes only)."""
  return count(jax.eval_shape(lambda: model.init(jax.random.key(0), X32, train=False))["params"])


@pytest.mark.parametrize("depth,width,official", [
    (16, 1, 175_066), (16, 2, 691_674), (40, 1, 563_930), (40, 2, 2_243_546)])
def test_single_wrn_parameter_counts(depth, width, official):
  assert n_params(WideResNet(depth, width)) == official
  assert n_params(RocketNet(WRNSpec(depth, width), None)) == official


@pytest.mark.parametrize("width,official", [(1, 565_508), (2, 2_246_660)])
def test_interval_pair_parameter_count(width, official):
  assert n_params(RocketNet(WRNSpec(16, width), WRNSpec(40, width), "interval")) == official


@pytest.mark.parametrize("width,official", [(1, 136_090), (2, 535_898)])
def test_bottom_light_net_alone_parameter_count(width, official):
  light = light_spec("bottom", WRNSpec(16, width), WRNSpec(40, width))
  assert light == WRNSpec(40, width, num_groups=2)
  assert n_params(RocketNet(light, None, "bottom")) == official
  # ... and that is what the trainer builds for the light-alone baseline under share=bottom
  config = load_config("tiny", method="light", share="bottom", **{
      "light.depth": 16, "light.width": width, "booster.depth": 40, "booster.width": width})
  assert n_params(image_task.build_model(config, 10)) == official


def test_interval_light_net_owns_no_conv_kernel():
  m = RocketNet(WRNSpec(16, 1), WRNSpec(40, 1), "interval")
  p = init(m, X32)["params"]
  owners = flat(owner_tree(p))
  kernels = {k for k, v in flat(p).items() if k.endswith("kernel") and v.ndim == 4}
  assert kernels and not any(owners[k] == "light" for k in kernels)
  # what the light net owns: a BN per block (bn1/bn2 of 2 blocks x 3 groups) and its head
  light_owned = {k for k, o in owners.items() if o == "light"}
  assert {k for k in light_owned if k.startswith("light/")} == {
      "light/head/bn/scale", "light/head/bn/bias", "light/head/fc/kernel", "light/head/fc/bias"}
  assert len({k.rsplit("/", 1)[0] for k in light_owned if k.startswith("shared/")}) == 2 * 2 * 3


def test_interval_light_uses_the_first_booster_blocks_of_each_group():
  m = RocketNet(WRNSpec(16, 1), WRNSpec(40, 1), "interval")
  p = init(m, X32)["params"]
  assert set(p["shared"]) == {"stem"} | {f"blocks_group{g}_block{b}" for g in range(3) for b in range(2)}
  assert set(p["booster"]) == {"head"} | {f"blocks_group{g}_block{b}" for g in range(3)
                                          for b in range(2, 6)}
  assert set(p["light"]) == {"head"}


def test_bottom_light_runs_the_booster_first_two_groups():
  b = WRNSpec(40, 1)
  m = RocketNet(light_spec("bottom", WRNSpec(16, 1), b), b, "bottom")
  v = init(m, X32)
  assert set(v["params"]["shared"]) == {"stem"} | {f"blocks_group{g}_block{i}" for g in (0, 1)
                                                   for i in range(6)}
  assert set(v["params"]["booster"]) == {"head"} | {f"blocks_group2_block{i}" for i in range(6)}
  assert v["params"]["light"]["head"]["fc"]["kernel"].shape == (32, 10)  # head on 32k channels
  out = m.apply(v, X32)
  assert [f.shape[1:] for f in out["features"]["light"]] == [(32, 32, 16), (16, 16, 32)]


def test_share_none_is_two_independent_wrns():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "none")
  p = init(m)["params"]
  assert set(p) == {"light", "booster"}
  assert count(p["light"]) == count(WideResNet(10, 1).init(jax.random.key(0), X)["params"])
  assert count(p["booster"]) == count(WideResNet(16, 1).init(jax.random.key(0), X)["params"])


@pytest.mark.parametrize("share", ["interval", "bottom"])
def test_both_outputs_depend_on_the_shared_convs(share):
  b = WRNSpec(16, 1)
  m = RocketNet(light_spec(share, WRNSpec(10, 1), b), b, share)
  v = init(m)
  for net in ("light", "booster"):
    def f(shared, net=net):
      params = dict(v["params"], shared=shared)
      out = m.apply({"params": params, "batch_stats": v["batch_stats"]}, X, train=False)
      return jnp.sum(out["logits"][net] ** 2)
    g = jax.grad(f)(v["params"]["shared"])
    assert float(jnp.abs(g["stem"]["conv"]["kernel"]).sum()) > 0
    assert float(jnp.abs(g["blocks_group0_block0"]["conv1"]["kernel"]).sum()) > 0


def test_interval_needs_equal_widths_and_a_shallower_light_net():
  with pytest.raises(ValueError, match="equal widths"):
    init(RocketNet(WRNSpec(10, 1), WRNSpec(16, 2), "interval"))
  with pytest.raises(ValueError, match="no deeper"):
    init(RocketNet(WRNSpec(16, 1), WRNSpec(10, 1), "interval"))
  assert set(init(RocketNet(WRNSpec(10, 1), WRNSpec(16, 2), "none"))["params"]) == {"light", "booster"}


def test_unknown_and_retired_share_schemes():
  with pytest.raises(ValueError, match="unknown share scheme 'top'"):
    init(RocketNet(WRNSpec(10, 1), WRNSpec(10, 1), "top"))
  with pytest.raises(ValueError, match="group_bottom.*removed.*interval"):
    init(RocketNet(WRNSpec(10, 1), WRNSpec(10, 1), "group_bottom"))
  with pytest.raises(ValueError, match="config.share: share='group_bottom' was removed"):
    train.validate_config(load_config("tiny", share="group_bottom"))


def test_param_owner_labels():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "interval")
  owners = flat(owner_tree(init(m)["params"]))
  assert owners["shared/stem/conv/kernel"] == "shared"
  assert owners["shared/blocks_group1_block0/conv1/kernel"] == "shared"
  assert owners["shared/blocks_group0_block0/bn1_booster/scale"] == "booster"
  assert owners["shared/blocks_group0_block0/bn1_light/scale"] == "light"
  assert all(v == "booster" for k, v in owners.items() if k.startswith("booster/"))
  assert param_owner(("light", "head", "fc", "kernel")) == "light"


def test_batchnorm_statistics_are_per_net_in_shared_blocks():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "interval")
  v = init(m)
  _, mut = m.apply(v, X, train=True, mutable=["batch_stats"])
  bs = mut["batch_stats"]["shared"]["blocks_group1_block0"]
  # The two nets feed different inputs from group 1 on: their running means differ.
  assert not np.allclose(bs["bn1_light"]["mean"], bs["bn1_booster"]["mean"])


def test_paper_init_matches_the_official_code():
  """He-normal fan_in convs and classifier (std sqrt(2/fan_in)), BN scale ~ U[0,1), biases 0."""
  v = WideResNet(40, 2, init_scheme="paper").init(jax.random.key(0), X32)["params"]
  k = np.asarray(v["group2_block3"]["conv2"]["kernel"])  # 3x3x128x128
  np.testing.assert_allclose(k.std(), np.sqrt(2 / (9 * 128)), rtol=0.02)
  assert abs(k.mean()) < 1e-3
  fc = np.asarray(v["head"]["fc"]["kernel"])  # 128 x 10
  np.testing.assert_allclose(fc.std(), np.sqrt(2 / 128), rtol=0.1)
  scales = np.concatenate([np.asarray(x) for p, x in flat(v).items() if p.endswith("scale")])
  assert 0 <= scales.min() and scales.max() < 1 and abs(scales.mean() - 0.5) < 0.03
  assert all(not np.any(np.asarray(x)) for p, x in flat(v).items() if p.endswith("bias"))
  # the default is He fan_out with BN scale 1
  d = WideResNet(40, 2).init(jax.random.key(0), X32)["params"]
  assert np.all(np.asarray(d["head"]["bn"]["scale"]) == 1.0)
