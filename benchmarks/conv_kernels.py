"""The WRN's 3x3 convolutions one by one: forward, input gradient (dx), weight gradient (dW).

    python -m benchmarks.conv_kernels                   # all cores
    taskset -c 0 python -m benchmarks.conv_kernels      # one core: is a kernel multi-threaded?
    python -m benchmarks.conv_kernels \
        --xla_flags=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution

Each part is its own jitted function of the same shapes the WRN-16-1 step uses (NHWC, HWIO,
padding 1), timed as the median of ``--repeats`` calls. The ``library`` column reads the
optimised HLO: ``ynn`` when XLA:CPU handed the convolution to YNNPACK, ``xla`` when its own
(Eigen) kernel runs it. Comparing a full-machine run with a ``taskset -c 0`` run shows which
kernels use more than one core.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.conv_kernels ...")

from benchmarks import common  # noqa: E402

# (spatial size, input channels, output channels, stride): the WRN-16-1 / 40-1 3x3 convolutions.
SHAPES = [(32, 3, 16, 1), (32, 16, 16, 1), (32, 16, 32, 2), (16, 32, 32, 1), (16, 32, 64, 2),
          (8, 64, 64, 1)]
QUICK_SHAPES = [(8, 16, 16, 1), (8, 16, 32, 2)]


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--batch_size", type=int, default=None, help="per call (128; 8 with --quick)")
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=1, repeats=15, warmup=2, quick=(1, 2, 1))
  if args.batch_size is None:
    args.batch_size = 8 if args.quick else 128
  return args


def conv_parts(stride: int):
  """forward, dx and dW of one 3x3 convolution (padding 1) as three functions."""
  from jax import lax, vjp  # noqa: PLC0415

  def fwd(x, w):
    return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def dx(x, w, g):
    return vjp(lambda x: fwd(x, w), x)[1](g)[0]

  def dw(x, w, g):
    return vjp(lambda w: fwd(x, w), w)[1](g)[0]

  return {"fwd": fwd, "dx": dx, "dW": dw}


def library(compiled_text: str) -> str:
  return "ynn" if "ynn_fusion" in compiled_text else "xla"


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  info, warning = common.machine_header()
  rows = []
  for hw, cin, cout, stride in (QUICK_SHAPES if args.quick else SHAPES):
    fns = conv_parts(stride)
    x = jax.random.normal(jax.random.key(0), (args.batch_size, hw, hw, cin))
    w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout)) * 0.1
    g = jnp.ones(jax.eval_shape(fns["fwd"], x, w).shape)
    parts = {"fwd": (fns["fwd"], (x, w)), "dx": (fns["dx"], (x, w, g)), "dW": (fns["dW"], (x, w, g))}
    out_hw = hw // stride
    gflop = 2 * args.batch_size * out_hw * out_hw * cout * 9 * cin / 1e9
    row: dict[str, Any] = {"hw": hw, "cin": cin, "cout": cout, "stride": stride, "gflop": gflop}
    for name, (fn, operands) in parts.items():
      compiled = jax.jit(fn).lower(*operands).compile()
      for _ in range(args.warmup):
        jax.block_until_ready(compiled(*operands))
      times = []
      for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
          out = compiled(*operands)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / args.steps)
      ms = statistics.median(times) * 1e3
      row[f"{name}_ms"] = round(ms, 3)
      row[f"{name}_gflop_s"] = round(gflop / ms * 1e3, 1)
      row[f"{name}_library"] = library(compiled.as_text())
    rows.append(row)

  print(f"\nbatch {args.batch_size}, float32, median of {args.repeats} calls\n")
  print("| conv | GFLOP | fwd ms (GFLOP/s, lib) | dx ms (GFLOP/s, lib) | dW ms (GFLOP/s, lib) |")
  print("|---|---|---|---|---|")
  for r in rows:
    cells = [f"{r[f'{n}_ms']:.2f} ({r[f'{n}_gflop_s']:.0f}, {r[f'{n}_library']})"
             for n in ("fwd", "dx", "dW")]
    print(f"| {r['hw']}x{r['hw']}, {r['cin']}->{r['cout']}, stride {r['stride']} | {r['gflop']:.3f} | "
          + " | ".join(cells) + " |")
  return common.finish("conv_kernels", info, warning, args.json_out, batch_size=args.batch_size,
                       rows=rows)


if __name__ == "__main__":
  main()
