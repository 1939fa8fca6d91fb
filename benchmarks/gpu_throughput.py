"""Stacked-run throughput: train images/s per run and in all, for R seeds as one program.

    python -m benchmarks.gpu_throughput [--quick] [--stacks=1,2,4,8] [--nets=light,booster,rocket]
        [--run_axes=vmap,unrolled] [--dtypes=float32,bfloat16] [--json_out=x.json]

For each net (the light WRN-16-1 alone, the booster WRN-40-1 alone, the rocket pair with interval
sharing), compute dtype, run axis and stack size R, a :class:`rocket.stacked.Stack` of R seeds on
CIFAR-shaped synthetic data compiles its one-step program ahead of time and times ``--steps`` steps
(median of ``--repeats`` rounds). The table gives:

* ms per stacked step, train images/s per run and summed over the R runs;
* ``vs separate``: R x the R=1 time of the same net, axis and dtype (measured in this process),
  divided by the stack's time; above 1 the stack beats R separate runs;
* TFLOP/s and GB/s from XLA's cost analysis of the one-step program, and their share of the
  device's peak where it is known (H100/H200);
* compile seconds, and the projected time of 200 epochs of 390 steps for the whole stack.

On a CPU the same script runs (``--quick`` for a smoke test). The campaign itself
(``paper_repro/gpu_campaign.py``) scans whole epochs; a one-step program adds a dispatch per step,
so these rates are a floor on the campaign's.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.gpu_throughput ...")

from benchmarks import common  # noqa: E402

# Dense peaks (FLOP/s by dtype, HBM bytes/s) of the devices this project is lent.
PEAKS = {
    "H100": {"float32": 67e12, "tf32": 494e12, "bfloat16": 989e12, "bytes": 3.35e12},
    "H200": {"float32": 67e12, "tf32": 494e12, "bfloat16": 989e12, "bytes": 4.8e12},
}
NETS = {"light": "light", "booster": "booster", "rocket": "rocket"}


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--stacks", default="1,2,4,8", help="stack sizes R")
  p.add_argument("--nets", default="light,booster,rocket", help="methods to time")
  p.add_argument("--run_axes", default="vmap,unrolled", help="how a stack holds its runs")
  p.add_argument("--dtypes", default="float32,bfloat16", help="config.compute_dtype values")
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=20, repeats=3, warmup=2, quick=(2, 2, 1))
  if args.quick:
    args.stacks, args.dtypes = "1,2", "float32"
  return args


def peak_for(device_kind: str):
  for name, peak in PEAKS.items():
    if name in device_kind:
      return peak
  return None


def measure(method: str, r: int, axis: str, dtype: str, args, tmp) -> dict:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  from rocket import stacked  # noqa: PLC0415

  bs = 32 if args.quick else 128
  overrides = {"method": method, "dataset": "synthetic", "data_seed": 0, "compute_dtype": dtype,
               "batch_size": bs, "synthetic.num_train": bs * (args.steps + args.warmup + 2),
               "synthetic.num_test": bs, "eval_batch_size": bs, "progress_bar": False}
  if args.quick:
    overrides.update({"light.depth": 10, "booster.depth": 10})
  config = common.load_config("cifar10", "paper_repro/configs/paper.py", **overrides)
  seeds = list(range(r))
  stack = stacked.Stack(config, seeds, [tmp / f"{method}_{r}_{axis}_{dtype}_{s}" for s in seeds],
                        run_axis=axis, scan_epochs=False, log=lambda *_: None)
  step_args = stack.step_args()
  idx = jnp.asarray(stack.indices(0))  # [R, steps, batch]
  t = time.perf_counter()
  compiled = stack.runs_step.lower(stack.states, idx[:, 0], *step_args).compile()
  compile_s = time.perf_counter() - t
  ca = compiled.cost_analysis()
  ca = (ca[0] if isinstance(ca, (list, tuple)) else ca) or {}
  states = jax.tree.map(jnp.copy, stack.states)
  for i in range(args.warmup):
    states, m = compiled(states, idx[:, i], *step_args)
  jax.block_until_ready(m)
  times = []
  for _ in range(args.repeats):
    t = time.perf_counter()
    for i in range(args.steps):
      states, m = compiled(states, idx[:, (args.warmup + i) % idx.shape[1]], *step_args)
    jax.block_until_ready(m)
    times.append((time.perf_counter() - t) / args.steps)
  stack.close()
  step_s = statistics.median(times)
  row = {"net": method, "dtype": dtype, "axis": axis, "R": r, "ms/step": 1e3 * step_s,
         "img/s per run": bs / step_s, "img/s all": r * bs / step_s, "compile s": compile_s,
         "200 ep. min": 200 * 390 * step_s / 60}
  flops, nbytes = ca.get("flops"), ca.get("bytes accessed")
  if flops:
    row["TFLOP/s"] = flops / step_s / 1e12
  if nbytes:
    row["GB/s"] = nbytes / step_s / 1e9
  peak = peak_for(jax.devices()[0].device_kind)
  if peak and flops:
    row["% peak FLOP"] = 100 * flops / step_s / peak["tf32" if dtype == "float32" else dtype]
  if peak and nbytes:
    row["% peak HBM"] = 100 * nbytes / step_s / peak["bytes"]
  return row


def main(argv=None):
  args = parse(sys.argv[1:] if argv is None else argv)
  common.set_xla_flags(args.xla_flags)
  import pathlib  # noqa: PLC0415

  info, warning = common.machine_header()
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for method in args.nets.split(","):
      for dtype in args.dtypes.split(","):
        for axis in args.run_axes.split(","):
          base = None
          for r in (int(x) for x in args.stacks.split(",")):
            row = measure(NETS[method], r, axis, dtype, args, pathlib.Path(tmp))
            base = row["ms/step"] if r == 1 else base
            if base is not None:
              row["vs separate"] = r * base / row["ms/step"]
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
                  flush=True)
  cols = ["net", "dtype", "axis", "R", "ms/step", "img/s per run", "img/s all", "vs separate",
          "TFLOP/s", "% peak FLOP", "GB/s", "% peak HBM", "compile s", "200 ep. min"]
  print(common.table(rows, cols))
  return common.finish("gpu_throughput", info, warning, args.json_out, rows=rows, argv=sys.argv)


if __name__ == "__main__":
  main()
