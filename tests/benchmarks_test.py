"""The benchmarks' --quick modes run end to end (no timing assertions), so they cannot rot."""

import importlib.util
import json
import subprocess
import sys

import pytest

from benchmarks import common, conv_kernels, cotrain_vs_separate, input_pipeline, kd_vs_rocket_time
from benchmarks import op_profile
from benchmarks import profile_cpu
from benchmarks import train_step
from tests.conftest import ROOT

HAS_TORCH = importlib.util.find_spec("torch") is not None
FAST = ["--steps=1", "--repeats=1", "--warmup=1"]


def test_train_step_quick(tmp_path):
  out = train_step.main(["--quick", "--torch=off", *FAST, f"--json_out={tmp_path / 'r.json'}"])
  assert out["args"]["share"] == "interval"
  rows = {r["name"]: r for r in out["rows"]}
  assert set(rows) == {"light", "booster", "rocket"}
  for r in rows.values():
    assert r["images_per_s"] > 0 and r["xla_gflop_per_step"] > 0
  assert out["matmul_peak_flop_s"] > 0 and out["ratios"] == {}
  assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "train_step"


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional benchmark dependency)")
def test_train_step_quick_with_torch():
  out = train_step.main(["--quick", "--nets=light", "--torch=on", *FAST])
  names = {r["name"] for r in out["rows"]}
  assert names == {"light", "torch_nchw", "torch_channels_last"}
  assert set(out["ratios"]) == {"jax_light/torch_nchw", "jax_light/torch_channels_last"}


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional benchmark dependency)")
@pytest.mark.parametrize("depth,num_groups", [(10, 3), (16, 3), (16, 2)])
def test_torch_wrn_is_the_same_architecture(depth, num_groups):
  """Same parameter count as the flax WRN (BN running stats excluded); num_groups=2 is the light
  net of share=bottom."""
  import jax
  import jax.numpy as jnp
  import torch

  from rocket.models.wrn import WideResNet

  model = WideResNet(depth, 1, num_groups=num_groups)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  n_jax = sum(x.size for x in jax.tree.leaves(shapes["params"]))
  net = train_step.make_torch_wrn(depth, 1, num_groups=num_groups)
  assert sum(p.numel() for p in net.parameters()) == n_jax
  assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_analytic_flops_of_a_two_group_wrn():
  """The light net of share=bottom (WRNSpec(d, k, num_groups=2)): the first two groups only."""
  full, two = train_step.wrn_forward_flops(16, 1), train_step.wrn_forward_flops(16, 1, num_groups=2)
  assert 0 < two < full
  n = 2  # blocks per group of WRN-16
  group2_macs = 8 * 8 * 9 * (32 * 64 + 64 * 64) + 8 * 8 * 32 * 64 + (n - 1) * 8 * 8 * 9 * 2 * 64 * 64
  assert full - two == 2.0 * (group2_macs + 64 * 10 - 32 * 10)


def test_torch_skipped_cleanly_when_absent(monkeypatch, capsys):
  monkeypatch.setattr(train_step, "torch_available", lambda: False)
  out = train_step.main(["--quick", "--nets=light", *FAST])
  assert [r["name"] for r in out["rows"]] == ["light"]
  assert "PyTorch comparison skipped" in capsys.readouterr().out


def test_cotrain_vs_separate_quick():
  out = cotrain_vs_separate.main(["--quick", "--booster_depth=10", *FAST])  # programs shared with train_step
  assert out["args"]["shares"] == ["interval"]  # the default scheme (--quick keeps the first)
  assert {"time rocket_interval/(light+booster)",
          "flops rocket_interval/(light+booster)"} <= set(out["ratios"])
  # interval: every light conv is the booster's, but the light net keeps its own batch norms, so
  # only the stem sees the same input in both nets and is computed once
  assert 0 < out["ratios"]["flops rocket_interval/(light+booster)"] < 1
  rows = {r["name"]: r for r in out["rows"]}
  assert rows["light"]["nets"] == "WRN-10-1" and rows["rocket_interval"]["nets"] == "WRN-10-1 + WRN-10-1"


def test_cotrain_vs_separate_bottom_has_its_own_light_baseline():
  """share=bottom trains the booster's first two groups as the light net: that is its baseline."""
  out = cotrain_vs_separate.main(["--quick", "--shares=bottom", *FAST])
  rows = {r["name"]: r for r in out["rows"]}
  assert set(rows) == {"light_bottom", "booster", "rocket_bottom", "light_bottom + booster"}
  assert rows["light_bottom"]["nets"] == "WRN-16-1 groups 0-1"
  assert 0 < out["ratios"]["flops rocket_bottom/(light_bottom+booster)"] < 1  # groups 0-1 run once


@pytest.mark.parametrize("script", [cotrain_vs_separate, train_step])
def test_removed_share_scheme_is_refused(script, capsys):
  flag = "--shares=group_bottom" if script is cotrain_vs_separate else "--share=group_bottom"
  with pytest.raises(SystemExit):
    script.parse([flag])
  assert "share='group_bottom' was removed" in capsys.readouterr().err


def test_input_pipeline_quick():
  out = input_pipeline.main(["--quick", *FAST])
  assert {r["name"] for r in out["rows"]} == {"host", "host+augment", "augment", "train_step",
                                                "train_loop"}
  assert all(v > 0 for v in out["ratios"].values())


def test_kd_vs_rocket_time_quick():
  out = kd_vs_rocket_time.main(["--quick", "--steps=2"])
  assert set(out["results"]) == {"rocket", "kd"}
  assert out["ratios"]["kd/rocket"] > 0
  assert out["results"]["kd"]["teacher_loop_s"] is not None


def test_op_profile_quick(tmp_path):
  out = op_profile.main(["--quick", "--steps=1", "--warmup=1", f"--json_out={tmp_path / 'p.json'}"])
  assert out["traced_ms"] > 0 and 0 < out["coverage"]
  kinds = {o["kind"] for o in out["ops"]}
  assert {"conv fwd", "conv dx", "conv dW"} <= kinds, kinds  # the step's convolutions, classified
  assert any(o["source"].startswith("jvp(RocketNet)") for o in out["ops"])
  assert json.loads((tmp_path / "p.json").read_text())["benchmark"] == "op_profile"


def test_conv_kernels_quick():
  out = conv_kernels.main(["--quick"])
  assert len(out["rows"]) == 2
  for r in out["rows"]:
    for part in ("fwd", "dx", "dW"):
      assert r[f"{part}_ms"] > 0 and r[f"{part}_library"] in ("ynn", "xla")


def test_conv_kernel_parts_are_the_convolution_and_its_gradients():
  import jax
  import numpy as np

  fns = conv_kernels.conv_parts(stride=2)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  y = fns["fwd"](x, w)
  assert y.shape == (2, 4, 4, 4)
  g = jax.random.normal(jax.random.key(2), y.shape)
  gx, gw = jax.grad(lambda x, w: (fns["fwd"](x, w) * g).sum(), argnums=(0, 1))(x, w)
  np.testing.assert_allclose(fns["dx"](x, w, g), gx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(fns["dW"](x, w, g), gw, rtol=1e-5, atol=1e-5)


def test_op_profile_describes_hlo_lines():
  lines = {
      "ynn_fusion.3": "f32[16,3,3,16]{3,2,1,0} fusion(%a, %b), kind=kCustom, calls=%comp.3",
      "convolution.9": ('f32[64,32,32,16]{3,2,1,0} convolution(%x, %w), window={size=3x3 pad=1_1x1_1}, '
                        'dim_labels=b01f_01io->b01f, metadata={op_name="jit(train_step)/transpose('
                        'jvp(RocketNet))/blocks_group0_block0/conv1/conv_general_dilated"}'),
      "transpose_copy_fusion.4": "f32[16,32,32,64]{3,2,1,0} fusion(%c), kind=kLoop, calls=%comp.4",
  }
  bodies = {"comp.3": "  ROOT %c = f32[16,3,3,16]{3,2,1,0} convolution(%p0, %p1), "
                      "window={size=32x32 pad=1_1x1_1}, dim_labels=b01f_01io->b01f",
            "comp.4": "  ROOT %t = f32[16,32,32,64]{3,2,1,0} transpose(%p0)"}
  dw = op_profile.describe("ynn_fusion.3", lines, bodies)
  assert (dw["kind"], dw["library"], dw["shape"]) == ("conv dW", "ynn", "f32[16,3,3,16]")
  dx = op_profile.describe("convolution.9", lines, bodies)
  assert (dx["kind"], dx["library"]) == ("conv dx", "xla")
  assert dx["source"].endswith("conv1/conv_general_dilated")
  assert op_profile.describe("transpose_copy_fusion.4", lines, bodies)["kind"] == "transpose/copy"


def test_profile_cpu_lists_variants(capsys):
  profile_cpu.main(["--list"])
  assert "two_devices" in capsys.readouterr().out


def test_flops_of_accepts_dict_and_list():
  class C:
    def __init__(self, ca):
      self.ca = ca

    def cost_analysis(self):
      return self.ca

  assert common.flops_of(C({"flops": 3.0})) == 3.0
  assert common.flops_of(C([{"flops": 1.0}, {"flops": 2.0}])) == 3.0
  assert common.flops_of(C(None)) is None


def test_xla_flags_refused_after_jax_started():
  import jax

  jax.devices()
  with pytest.raises(RuntimeError, match="fresh process"):
    common.set_xla_flags("--xla_cpu_use_onednn=true")


@pytest.mark.parametrize("script", ["train_step", "cotrain_vs_separate", "input_pipeline",
                                    "kd_vs_rocket_time", "profile_cpu", "op_profile",
                                    "conv_kernels", "gpu_throughput"])
def test_scripts_run_from_the_command_line(script):
  proc = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "--quick" in proc.stdout


def test_im2col_conv_matches_flax_conv():
  """The --conv=im2col variant computes the same WRN (same parameters, same outputs)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from rocket.models.wrn import WideResNet

  model = WideResNet(10, 1)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  variables = model.init(jax.random.key(1), x, train=False)
  ref, _ = model.apply(variables, x, train=False)
  with train_step.conv_impl("im2col"):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(1), x, train=False))
    out, _ = model.apply(variables, x, train=False)
  assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(jnp.shape, variables)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-4, atol=1e-4)
