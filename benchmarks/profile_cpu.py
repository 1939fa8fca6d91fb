"""What makes the JAX train step faster on a CPU, without touching rocket/.

Runs ``benchmarks/train_step.py --torch=off`` once per variant, each in a fresh
process (XLA flags are read when the backend starts), and tabulates images/s and the
speed-up over the baseline, which runs first and last (its spread is the noise floor).
Variants: XLA:CPU flags, the batch split over two host "devices" (the trainer's
``make_mesh`` takes every device), bfloat16 compute, no buffer donation, no
augmentation (to price it).  Then, in this process: a breakdown of the step
(augment+normalise, forward, forward+backward, whole step, each timed alone), and a
convolution micro-benchmark: forward + backward of the WRN's 3x3 convolutions in
NHWC/HWIO (what flax uses) vs NCHW/OIHW through ``lax.conv_general_dilated``, and in
NHWC as an explicit im2col (9 shifted slices concatenated, one matmul).

    python -m benchmarks.profile_cpu                        # all variants, light + rocket nets
    python -m benchmarks.profile_cpu --variants=baseline,onednn,two_devices --nets=rocket
    python -m benchmarks.profile_cpu --quick                # two variants, tiny nets
    python -m benchmarks.profile_cpu --list
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.profile_cpu ...")

from benchmarks import common  # noqa: E402

TWO = "--xla_force_host_platform_device_count=2"
NO_YNN_CONV = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "no_multi_thread_eigen": ["--xla_flags=--xla_cpu_multi_thread_eigen=false"],
    "thunk_runtime_off": ["--xla_flags=--xla_cpu_use_thunk_runtime=false"],  # deprecated in jax 0.10
    "onednn": ["--xla_flags=--xla_cpu_use_onednn=true"],
    "onednn_fusions": ["--xla_flags=--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce"],
    "no_xnnpack": ["--xla_flags=--xla_cpu_use_xnnpack=false"],
    "xnn_fusions": ["--xla_flags=--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce"],
    "xnn_graph_greedy": [
        "--xla_flags=--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY"],
    "no_fusion_emitters": ["--xla_flags=--xla_cpu_use_fusion_emitters=false"],
    "fast_math": ["--xla_flags=--xla_cpu_enable_fast_math=true"],
    "opt_fast_runtime": ["--xla_flags=--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_RUNTIME"],
    # jaxlib 0.10 sends convolutions with > 16 channels to YNNPACK (single-threaded here); this
    # hands them back to XLA's multi-threaded Eigen kernels (op_profile.py shows which runs where).
    "ynn_conv_off": [f"--xla_flags={NO_YNN_CONV}"],
    "ynn_conv_off_two_devices": [f"--xla_flags={NO_YNN_CONV} {TWO}"],
    "two_devices": [f"--xla_flags={TWO}"],
    "two_devices_1thread": [f"--xla_flags={TWO} --xla_cpu_multi_thread_eigen=false"],
    "bfloat16": ["--compute_dtype=bfloat16"],
    "bfloat16_onednn": ["--compute_dtype=bfloat16", "--xla_flags=--xla_cpu_use_onednn=true"],
    "im2col": ["--conv=im2col"],  # convolutions as im2col + matmul (monkeypatched, see train_step.py)
    "im2col_two_devices": ["--conv=im2col", f"--xla_flags={TWO}"],
    "no_donate": ["--no_donate"],
    "no_augment": ["--no_augment"],
}


def parse(argv):
  p = common.parser(__doc__, common_flags=False)
  p.add_argument("--quick", action="store_true", help="tiny nets; baseline + one variant; small layout")
  p.add_argument("--variants", default="all", help="comma list (see --list) or 'all'")
  p.add_argument("--list", action="store_true", help="print the variants and exit")
  p.add_argument("--nets", default="light,rocket")
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no_variants", action="store_true", help="skip the per-variant subprocess runs")
  p.add_argument("--no_breakdown", action="store_true", help="skip the per-part step breakdown")
  p.add_argument("--no_layout", action="store_true", help="skip the conv layout micro-benchmark")
  p.add_argument("--timeout_s", type=int, default=900, help="per variant")
  p.add_argument("--json_out", default="")
  args = p.parse_args(argv)
  if args.variants == "all":
    args.variants = ["two_devices"] if args.quick else [v for v in VARIANTS if v != "baseline"]
  else:
    args.variants = [v for v in args.variants.split(",") if v and v != "baseline"]
  bad = [v for v in args.variants if v not in VARIANTS]
  if bad:
    p.error(f"unknown variants {bad}; see --list")
  return args


def run_variant(name: str, args, tmp: pathlib.Path) -> dict[str, Any]:
  out = tmp / f"{name}_{time.monotonic_ns()}.json"
  cmd = [sys.executable, "-m", "benchmarks.train_step", "--torch=off",
         f"--nets={args.nets}", f"--json_out={out}", *VARIANTS[name]]
  if args.quick:
    cmd.append("--quick")
  for k in ("steps", "repeats"):
    if getattr(args, k):
      cmd.append(f"--{k}={getattr(args, k)}")
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True, timeout=args.timeout_s,
                        check=False)
  wall = time.perf_counter() - t0
  if proc.returncode != 0 or not out.exists():
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    print(f"# {name}: FAILED (rc {proc.returncode}): {' | '.join(tail)}", flush=True)
    return {"variant": name, "error": " | ".join(tail), "args": VARIANTS[name]}
  res = json.loads(out.read_text())
  row: dict[str, Any] = {"variant": name, "args": " ".join(VARIANTS[name]), "wall_s": wall}
  for r in res["rows"]:
    row[f"{r['name']}_img_s"] = r["images_per_s"]
    row[f"{r['name']}_compile_s"] = r.get("compile_s")
  row["matmul_gflop_s"] = res["matmul_peak_flop_s"] / 1e9
  print(f"# {name}: " + ", ".join(f"{r['name']} {r['images_per_s']:.1f} img/s" for r in res["rows"]),
        flush=True)
  return row


def im2col_conv3x3(x, w):
  """A stride-1 'SAME' 3x3 convolution as one matmul: NHWC x HWIO, 9 shifted slices concatenated."""
  import jax.numpy as jnp  # noqa: PLC0415

  _, h, wd, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, i:i + h, j:j + wd, :] for i in range(3) for j in range(3)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", cols, w.reshape(9 * c, w.shape[-1]))


def conv_layouts(quick: bool, repeats: int) -> list[dict[str, Any]]:
  """Forward + backward (input and kernel gradients) of one 3x3 conv: NHWC, NCHW, NHWC as im2col."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  batch = 16 if quick else 128
  nhwc, nchw = ("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NCHW")
  convs = {
      "NHWC": lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=nhwc),
      "NCHW": lambda x, w: jax.lax.conv_general_dilated(  # checked in NHWC, timed in NCHW below
          x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), (1, 1), "SAME",
          dimension_numbers=nchw).transpose(0, 2, 3, 1),
      "im2col": im2col_conv3x3,
  }
  rows = []
  for hw, c in ((32, 16), (16, 32), (8, 64)):
    flops = 3 * 2 * batch * hw * hw * c * c * 9
    x = jax.random.normal(jax.random.key(0), (batch, hw, hw, c))
    w = jax.random.normal(jax.random.key(1), (3, 3, c, c))
    ref = np.asarray(convs["NHWC"](x[:2], w))
    runners = {}
    for name, conv in convs.items():
      np.testing.assert_allclose(np.asarray(conv(x[:2], w)), ref, rtol=2e-3, atol=2e-3)
      if name == "NCHW":  # the layout held throughout, transposes outside the timed program
        xn, wn = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
        f = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",  # noqa: E731
                                                      dimension_numbers=nchw)
        args = (xn, wn)
      else:
        f, args = conv, (x, w)
      g = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(jnp.square(f(x, w))), argnums=(0, 1)))
      common.block(g(*args))

      def run(n, g=g, args=args):
        out = None
        for _ in range(n):
          out = g(*args)
        common.block(out)

      runners[name] = run
    times = common.time_rounds(runners, 3 if quick else 10, repeats)
    med = {k: common.summary(v)["median_s"] for k, v in times.items()}
    row = {"conv": f"{batch}x{hw}x{hw}x{c} 3x3 {c}->{c}"}
    for k, v in med.items():
      row[f"{k}_ms"] = 1e3 * v
      row[f"{k}_gflop_s"] = flops / v / 1e9
    rows.append(row)
  return rows


def _parts(net: str, quick: bool) -> dict[str, Any]:
  """Runners for the parts of one net's step: augment+normalise, forward, forward+backward, all."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  import optax  # noqa: PLC0415

  from rocket import image_task, input_pipeline  # noqa: PLC0415

  c = common.load_config("", method=net, batch_size=16 if quick else 128,
                         **({"light.depth": 10, "booster.depth": 10} if quick else {}))
  bench = common.build_step(net, c)
  model = image_task.build_model(c, 10)
  mean, std = np.asarray(common.CIFAR_MEAN, np.float32), np.asarray(common.CIFAR_STD, np.float32)
  key = jax.random.key(0)

  @jax.jit
  def aug(images):
    return input_pipeline.normalize(input_pipeline.augment(key, images), mean, std)

  def apply(params, batch_stats, x):
    return model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                       mutable=["batch_stats"])

  @jax.jit
  def grads(params, batch_stats, x, y):
    def loss(p):
      out, _ = apply(p, batch_stats, x)
      return sum(optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
                 for z in out["logits"].values())
    return jax.grad(loss)(params)

  forward = jax.jit(apply)
  params, bstats = jax.tree.map(jnp.copy, (bench.state.params, bench.state.batch_stats))
  x, y = aug(bench.images), bench.labels
  calls = {"augment+normalize": lambda: aug(bench.images), "forward": lambda: forward(params, bstats, x),
           "forward+backward": lambda: grads(params, bstats, x, y)}

  def runner(f):
    def run(n):
      out = None
      for _ in range(n):
        out = f()
      common.block(out)
    return run

  runners = {k: runner(f) for k, f in calls.items()}
  runners["whole step"] = bench.run
  for run in runners.values():
    run(1)
  return runners


def breakdown(nets: list[str], quick: bool, steps: int, repeats: int) -> list[dict[str, Any]]:
  """Where a step's time goes (each part timed alone; the parts overlap, they do not add up)."""
  rows = []
  for net in nets:
    times = common.time_rounds(_parts(net, quick), steps, repeats)
    whole = common.summary(times["whole step"])["median_s"]
    for k, v in times.items():
      med = common.summary(v)["median_s"]
      rows.append({"net": net, "part": k, "ms": 1e3 * med, "share_of_step": med / whole})
  return rows


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  if args.list:
    for k, v in VARIANTS.items():
      print(f"{k:24s} {' '.join(v)}")
    return {"variants": VARIANTS}
  info, warning = common.machine_header()
  rows = []
  with tempfile.TemporaryDirectory(prefix="rocket_profile_") as tmp:
    order = [] if args.no_variants else ["baseline", *args.variants, "baseline"]
    for name in order:
      rows.append(run_variant(name, args, pathlib.Path(tmp)))
  nets = args.nets.split(",")
  base = [r for r in rows if r["variant"] == "baseline" and "error" not in r]
  for net in nets:
    ref = [r[f"{net}_img_s"] for r in base if f"{net}_img_s" in r]
    if not ref:
      continue
    mean_ref = sum(ref) / len(ref)
    for r in rows:
      if f"{net}_img_s" in r:
        r[f"{net}_speedup"] = r[f"{net}_img_s"] / mean_ref
  cols = ["variant", "args"]
  for net in nets:
    cols += [f"{net}_img_s", f"{net}_speedup", f"{net}_compile_s"]
  if rows:
    print(common.table(rows, cols + ["matmul_gflop_s"]))
  spread = {}
  for net in nets:
    ref = [r[f"{net}_img_s"] for r in base if f"{net}_img_s" in r]
    if len(ref) == 2:
      spread[net] = abs(ref[0] - ref[1]) / max(ref)
      print(f"baseline spread (first vs last run), {net}: {100 * spread[net]:.1f}%")
  parts = []
  if not args.no_breakdown:
    parts = breakdown(nets, args.quick, args.steps or (2 if args.quick else 5),
                      args.repeats or (2 if args.quick else 5))
    print(common.table(parts, ["net", "part", "ms", "share_of_step"]))
  layout = []
  if not args.no_layout:
    layout = conv_layouts(args.quick, repeats=2 if args.quick else 5)
    print("(forward + both gradients of one conv; im2col = 9 shifted slices concatenated + one matmul)")
    print(common.table(layout, ["conv", "NHWC_ms", "NCHW_ms", "im2col_ms", "NHWC_gflop_s", "NCHW_gflop_s",
                                "im2col_gflop_s"]))
  return common.finish("profile_cpu", info, warning, args.json_out, args=vars(args), rows=rows,
                       baseline_spread=spread, breakdown=parts, conv_layout=layout)


if __name__ == "__main__":
  main()
