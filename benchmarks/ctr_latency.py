"""CTR serving latency: score N candidate ads for one request, light net vs booster, fp32 vs int8.

Every contender is the *exported* scorer (``rocket.ctr.export`` -> ``jax.export`` StableHLO,
reloaded with ``rocket.ctr.serving.Scorer``), i.e. exactly what a server would call:
host ids in, host probabilities out.  By default the process is pinned to one CPU core
and XLA runs single-threaded (``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``), as one serving thread would.  Latency does not depend
on the trained values, so the nets come from a run of a few steps on the real data
(``--workdir`` takes a finished run instead).  Prints p50/p99 per call and the ratio
booster / light.

    python -m benchmarks.ctr_latency                  # Frappe, N = 100 and 1000
    python -m benchmarks.ctr_latency --quick          # a few calls (used by the tests)
    python -m benchmarks.ctr_latency --workdir=/tmp/frappe_run --calls=5000
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.ctr_latency ...")


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="a few calls on synthetic data")
  p.add_argument("--config", default="configs/ctr_frappe.py", help="CTR config file (with :preset)")
  p.add_argument("--workdir", default="", help="a finished CTR run to export (default: train a few steps)")
  p.add_argument("--candidates", default="100,1000", help="comma list of N")
  p.add_argument("--calls", type=int, default=2000, help="timed calls per contender and N")
  p.add_argument("--all_cores", action="store_true", help="do not pin to one core / one XLA thread")
  p.add_argument("--json", default="", help="write the results here")
  args = p.parse_args(argv)
  if args.quick:
    args.config = "configs/ctr_frappe.py:tiny"
    args.candidates, args.calls = "10,100", 20
  return args


def setup_single_core(all_cores: bool) -> str:
  if all_cores:
    return f"all {os.cpu_count()} cores"
  if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
  from benchmarks import common  # noqa: PLC0415

  common.set_xla_flags("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
  return "1 core (pinned), single-threaded XLA"


def prepare_run(args, tmp: pathlib.Path):
  """A loaded Run with both nets: ``--workdir`` or a short rocket run."""
  from absl import logging  # noqa: PLC0415

  logging.set_verbosity(logging.WARNING)
  from rocket import train  # noqa: PLC0415
  from benchmarks import common  # noqa: PLC0415

  if args.workdir:
    return train.load_run(args.workdir)
  path, _, preset = args.config.partition(":")
  config = common.load_config(preset, path, method="rocket", num_train_steps=2, progress_bar=False,
                              eval_every_steps=2)
  train.train_and_evaluate(config, tmp / "run")
  return train.load_run(tmp / "run")


def main(argv=None) -> dict:
  args = parse(sys.argv[1:] if argv is None else argv)
  where = setup_single_core(args.all_cores)
  import numpy as np  # noqa: PLC0415

  from benchmarks import common  # noqa: PLC0415
  from rocket.ctr import export  # noqa: PLC0415
  from rocket.ctr.serving import Scorer  # noqa: PLC0415

  info, warning = common.machine_header()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    run = prepare_run(args, tmp)
    ds = run.data
    req, cand = export.field_layout(ds.fields)
    scorers = {}
    for net in ("light", "booster"):
      for int8 in (False, True):
        name = f"{net} {'int8' if int8 else 'fp32'}"
        out = tmp / name.replace(" ", "_")
        export.export(run, out, net=net, int8=int8)
        scorers[name] = Scorer.load(out)
    rng = np.random.default_rng(0)
    rows = np.asarray(ds.test.ids)
    results = []
    for n in [int(x) for x in args.candidates.split(",")]:
      request = rows[0, req]
      cands = rows[rng.integers(0, len(rows), n)][:, cand]
      times = {k: [] for k in scorers}
      for s in scorers.values():  # compile for this n, and warm up
        for _ in range(5):
          s.score(request, cands)
      for _ in range(args.calls):  # interleaved, so drifts of the machine hit all alike
        for k, s in scorers.items():
          t0 = time.perf_counter()
          s.score(request, cands)
          times[k].append(time.perf_counter() - t0)
      for k, t in times.items():
        ms = np.asarray(t) * 1e3
        results.append({"n": n, "scorer": k, "bytes": scorers[k].num_bytes,
                        "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                        "mean_ms": float(ms.mean())})
  print(f"\nCTR scoring latency ({ds.name}; {where}; {args.calls} calls each; exported scorers)")
  print(common.table(results, ["n", "scorer", "bytes", "p50_ms", "p99_ms", "mean_ms"]))
  for n in sorted({r["n"] for r in results}):
    by = {r["scorer"]: r for r in results if r["n"] == n}
    ratio = lambda a, b, by=by: by[a]["p50_ms"] / by[b]["p50_ms"]  # noqa: E731
    print(f"N={n}: p50 booster/light (fp32) {ratio('booster fp32', 'light fp32'):.2f}, "
          f"light int8/fp32 {ratio('light int8', 'light fp32'):.2f}")
  return common.finish("ctr_latency", info, warning, args.json, where=where, dataset=ds.name,
                       calls=args.calls, results=results)


if __name__ == "__main__":
  main()
