"""Where one train step spends its time, op by op, from a ``jax.profiler`` trace (XLA:CPU).

    python -m benchmarks.op_profile                         # light WRN-16-1, batch 128
    taskset -c 0 python -m benchmarks.op_profile --batch_size=64 --net=rocket
    python -m benchmarks.op_profile --xla_flags=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution

The step is the trainer's own (``common.build_step``). A few steps run under
``jax.profiler.trace(..., create_perfetto_trace=True)``; the script reads the Perfetto JSON,
sums the duration of every XLA op (thunk) per step, and joins each name with its line in the
optimised HLO, so a row says what the op is: a convolution (forward, input gradient ``dx`` or
weight gradient ``dW``; which library ran it: ``ynn`` = YNNPACK, ``xla`` = XLA's own
emitter/Eigen), a layout transpose, or an elementwise fusion.

``coverage`` = the summed op time / the wall time of a step. On several cores it can be well
below 1: ops that run on Eigen's own thread pool leave no event of their own. Pin the process
to one core (``taskset -c 0``) for a complete picture.

Written and checked for XLA:CPU, where the trace names each event after its HLO instruction. On
a GPU the events are CUDA kernels, whose names need not match the HLO, so the kind and library
columns can come out as ``other``. Use the XProf/TensorBoard profiler there.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.op_profile ...")

from benchmarks import common  # noqa: E402

# Trace events that are not XLA ops: Python frames, executor and dispatch wrappers.
_NOT_OPS = ("$", "ThunkExecutor", "PjitFunction", "CommonPjRt", "SlinkyThreadPool", "TfrtCpu")


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--net", default="light", choices=("light", "booster", "rocket"))
  p.add_argument("--batch_size", type=int, default=None, help="global batch (128; 16 with --quick)")
  p.add_argument("--top", type=int, default=25, help="ops listed one by one")
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=3, repeats=1, warmup=3)
  if args.batch_size is None:
    args.batch_size = 16 if args.quick else 128
  return args


def _instructions(hlo_text: str) -> tuple[dict[str, str], dict[str, str]]:
  """HLO instruction name -> its line; computation name -> its body."""
  lines = {}
  for m in re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$", hlo_text, re.M):
    lines.setdefault(m.group(1), m.group(2))
  bodies = {m.group(1): m.group(2)
            for m in re.finditer(r"\n%([\w.\-]+) \([^\n]*\) -> [^\n]*\{\n(.*?)\n\}", hlo_text, re.S)}
  return lines, bodies


def describe(name: str, lines: dict[str, str], bodies: dict[str, str]) -> dict[str, str]:
  """Kind, library, shape and source op of one XLA op of the optimised HLO."""
  line = lines.get(name, "")
  m = re.search(r"calls=%([\w.\-]+)", line)
  core = line
  if m and m.group(1) in bodies:  # a fusion: describe its convolution / dot, if any
    inner = [x for x in bodies[m.group(1)].split("\n") if " convolution(" in x or " dot(" in x]
    if inner:
      core = inner[0]
  shape = (re.search(r"^\s*(?:ROOT )?(?:%\S+ = )?(\w+\[[\d,]*\])", core) or
           re.search(r"(\w+\[[\d,]*\])", core))
  src = re.search(r'op_name="([^"]*)"', core) or re.search(r'op_name="([^"]*)"', line)
  library = "ynn" if name.startswith("ynn_") else ("xnn" if name.startswith("xnn_") else "xla")
  if " convolution(" in core or core.startswith("convolution("):
    window = re.search(r"window=\{size=(\d+)x(\d+)", core)
    big_window = window is not None and int(window.group(1)) > 7
    if big_window:
      kind = "conv dW"  # the weight gradient: a convolution whose window is the whole image
    elif "lhs_dilate" in core or (src and "transpose(" in src.group(1)):
      kind = "conv dx"
    else:
      kind = "conv fwd"
  elif " dot(" in core:
    kind = "dot"
  elif name.startswith("transpose") or "transpose_copy" in name or name.startswith("copy"):
    kind = "transpose/copy"
  elif "fusion" in name or name.startswith("wrapped_"):
    kind = "elementwise/reduce fusion"
  else:
    kind = "other"
  source = src.group(1) if src else ""
  source = re.sub(r"^jit\([^)]*\)/", "", source)
  return {"kind": kind, "library": library, "shape": shape.group(1) if shape else "",
          "source": source}


def op_times(trace_dir: str, steps: int) -> collections.Counter:
  """Milliseconds per step of every XLA op in the Perfetto trace under ``trace_dir``."""
  files = glob.glob(os.path.join(trace_dir, "**", "*perfetto_trace.json.gz"), recursive=True)
  if not files:
    raise FileNotFoundError(f"no perfetto_trace.json.gz under {trace_dir}: this jax did not write "
                            "a Perfetto trace (jax.profiler.trace(create_perfetto_trace=True))")
  with gzip.open(files[0]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  total: collections.Counter = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and not e["name"].startswith(_NOT_OPS):
      total[e["name"]] += e.get("dur", 0) / 1e3 / steps
  return total


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  import jax  # noqa: PLC0415

  info, warning = common.machine_header()
  config = common.load_config("tiny" if args.quick else "", method=args.net,
                              batch_size=args.batch_size)
  bench = common.build_step(args.net, config)
  lines, bodies = _instructions(bench.compiled.as_text())
  bench.run(args.warmup)
  t0 = time.perf_counter()
  bench.run(args.steps)
  wall_ms = (time.perf_counter() - t0) / args.steps * 1e3
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      bench.run(args.steps)
    times = op_times(tmp, args.steps)

  ops = []
  for name, ms in times.most_common():
    ops.append({"op": name, "ms_per_step": round(ms, 3), **describe(name, lines, bodies)})
  by_kind: collections.Counter = collections.Counter()
  for o in ops:
    key = o["kind"] + (f" [{o['library']}]" if o["kind"].startswith(("conv", "dot")) else "")
    by_kind[key] += o["ms_per_step"]
  covered = sum(times.values())
  print(f"# net {args.net}, batch {args.batch_size}, {jax.device_count()} device(s); "
        f"step {wall_ms:.1f} ms untraced; ops traced {covered:.1f} ms/step "
        f"(coverage {covered / wall_ms:.2f})")
  print("\n| kind | ms/step | share of traced |\n|---|---|---|")
  for k, v in by_kind.most_common():
    print(f"| {k} | {v:.2f} | {v / max(covered, 1e-9):.1%} |")
  print("\n| op | ms/step | kind | library | shape | source |\n|---|---|---|---|---|---|")
  for o in ops[:args.top]:
    print(f"| {o['op']} | {o['ms_per_step']:.2f} | {o['kind']} | {o['library']} | {o['shape']} | "
          f"{o['source'][:70]} |")
  return common.finish(
      "op_profile", info, warning, args.json_out, net=args.net, batch_size=args.batch_size,
      step_ms=round(wall_ms, 2), traced_ms=round(covered, 2), coverage=round(covered / wall_ms, 3),
      by_kind={k: round(v, 3) for k, v in by_kind.most_common()}, ops=ops)


if __name__ == "__main__":
  main()
