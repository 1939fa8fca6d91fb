import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket.models.rocket import RocketNet, owner_tree, param_owner
from rocket.models.wrn import WideResNet, WRNSpec

X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16, 16, 3)), jnp.float32)


def init(model):
  return model.init(jax.random.key(0), X, train=False)


def flat(tree):
  return flax.traverse_util.flatten_dict(tree, sep="/")


def count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_share_none_is_two_independent_wrns():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "none")
  p = init(m)["params"]
  assert set(p) == {"light", "booster"}
  ref_l = count(WideResNet(10, 1).init(jax.random.key(0), X)["params"])
  ref_b = count(WideResNet(16, 1).init(jax.random.key(0), X)["params"])
  assert count(p["light"]) == ref_l and count(p["booster"]) == ref_b


@pytest.mark.parametrize("share,shared_blocks", [
    ("bottom", {"blocks_group0_block0"}),
    ("group_bottom", {"blocks_group0_block0", "blocks_group1_block0", "blocks_group2_block0"}),
])
def test_shared_subtree_appears_once(share, shared_blocks):
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), share)
  p = init(m)["params"]
  assert set(p) == {"shared", "light", "booster"}
  assert set(p["shared"]) == {"stem"} | shared_blocks
  for net in ("light", "booster"):  # the nets hold no copy of the shared layers
    names = set(p[net]["blocks"]) if "blocks" in p[net] else {
        k.split("/")[0] for k in flat(p[net])}
    assert "stem" not in names and not (names & shared_blocks)
  # total = both plain WRNs minus one copy of what is shared (+ per-stream BNs)
  ref = (count(WideResNet(10, 1).init(jax.random.key(0), X)["params"])
         + count(WideResNet(16, 1).init(jax.random.key(0), X)["params"]))
  assert count(p) < ref


@pytest.mark.parametrize("share", ["bottom", "group_bottom"])
def test_both_outputs_depend_on_shared_params(share):
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), share)
  v = init(m)
  for net in ("light", "booster"):
    def f(shared, net=net):
      params = dict(v["params"], shared=shared)
      out = m.apply({"params": params, "batch_stats": v["batch_stats"]}, X, train=False)
      return jnp.sum(out["logits"][net] ** 2)
    g = jax.grad(f)(v["params"]["shared"])
    assert float(jnp.abs(g["stem"]["conv"]["kernel"]).sum()) > 0


def test_sharing_needs_equal_widths():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 2), "bottom")
  with pytest.raises(ValueError, match="same width|equal widths"):
    init(m)
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 2), "none")  # no sharing: fine
  assert set(init(m)["params"]) == {"light", "booster"}


def test_unknown_share_scheme():
  with pytest.raises(ValueError, match="share"):
    init(RocketNet(WRNSpec(10, 1), WRNSpec(10, 1), "top"))


def test_single_net_model_is_a_plain_wrn():
  m = RocketNet(WRNSpec(10, 1), None, "group_bottom")
  v = init(m)
  assert set(v["params"]) == {"light"}
  assert count(v["params"]) == count(WideResNet(10, 1).init(jax.random.key(0), X)["params"])
  out = m.apply(v, X)
  assert set(out["logits"]) == {"light"} and out["logits"]["light"].shape == (4, 10)


def test_param_owner_labels():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "group_bottom")
  owners = flat(owner_tree(init(m)["params"]))
  assert owners["shared/stem/conv/kernel"] == "shared"
  assert owners["shared/blocks_group1_block0/conv1/kernel"] == "shared"
  assert owners["shared/blocks_group1_block0/bn1_booster/scale"] == "booster"
  assert owners["shared/blocks_group1_block0/bn1_light/scale"] == "light"
  assert all(v == "booster" for k, v in owners.items() if k.startswith("booster/"))
  assert param_owner(("light", "head", "fc", "kernel")) == "light"


def test_group_bottom_batchnorm_statistics_are_per_stream():
  m = RocketNet(WRNSpec(10, 1), WRNSpec(16, 1), "group_bottom")
  v = init(m)
  _, mut = m.apply(v, X, train=True, mutable=["batch_stats"])
  bs = mut["batch_stats"]["shared"]["blocks_group1_block0"]
  # The two streams feed different inputs: their running means differ.
  assert not np.allclose(bs["bn1_light"]["mean"], bs["bn1_booster"]["mean"])
