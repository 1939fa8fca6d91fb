"""Wall time to a trained light net: one Rocket co-training run vs KD (teacher run + student run).

Runs ``rocket.train.train_and_evaluate`` end to end (data loading, compilation,
training, evaluation, checkpoints) with the same budget for every run:

* ``rocket`` -- ``method=rocket``: light + booster co-trained in one run;
* ``kd``     -- ``method=kd``: a booster-sized teacher trained first (``<workdir>/teacher``),
  then the light student with the frozen teacher, each for the same number of steps;
* ``light``  -- ``method=light`` alone, for scale (skipped with ``--quick``).

and prints ``kd / rocket`` wall time.  Compilation is part of every run's time; when
a persistent JAX compilation cache is configured (``JAX_COMPILATION_CACHE_DIR``),
compilations may be served from it, and the script says so.

    python -m benchmarks.kd_vs_rocket_time                  # WRN-16-1 / WRN-40-1, 100 steps each
    python -m benchmarks.kd_vs_rocket_time --steps=300 --preset=cpu
    python -m benchmarks.kd_vs_rocket_time --quick          # tiny synthetic runs
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.kd_vs_rocket_time ...")

from benchmarks import common  # noqa: E402


def parse(argv):
  p = common.parser(__doc__, common_flags=False)
  p.add_argument("--quick", action="store_true", help="tiny synthetic runs (smoke test)")
  p.add_argument("--preset", default=None, help="configs/cifar10.py preset: '' (default) or cpu; "
                 "tiny with --quick")
  p.add_argument("--steps", type=int, default=None, help="train steps of every run (100; 4 with --quick)")
  p.add_argument("--dataset", default="auto", choices=("auto", "cifar10", "synthetic"))
  p.add_argument("--train_subset", type=int, default=5000)
  p.add_argument("--test_subset", type=int, default=1000)
  p.add_argument("--no_light", action="store_true", help="skip the light-alone run")
  p.add_argument("--workdir", default="", help="keep the runs here (default: a temporary folder)")
  p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS (fresh process only)")
  p.add_argument("--json_out", default="")
  args = p.parse_args(argv)
  if args.preset is None:
    args.preset = "tiny" if args.quick else ""
  if args.steps is None:
    args.steps = 4 if args.quick else 100
  if args.quick:
    args.no_light = True
  return args


def run_config(args, method: str, dataset: str):
  c = common.load_config(args.preset, method=method, num_train_steps=args.steps,
                         eval_every_steps=args.steps, log_every_steps=max(1, args.steps // 4),
                         progress_bar=False, checkpoint_every_steps=0, dataset=dataset)
  if dataset == "synthetic":
    if args.quick:
      c.synthetic.num_train, c.synthetic.num_test, c.synthetic.image_size = 128, 32, 16
  else:
    c.train_subset, c.test_subset = args.train_subset, args.test_subset
  return c


def pick_dataset(args) -> str:
  if args.dataset != "auto":
    return args.dataset
  if args.quick or common.load_config(args.preset).dataset == "synthetic":
    return "synthetic"
  from rocket.data import cifar10  # noqa: PLC0415
  from rocket.data.base import DatasetError  # noqa: PLC0415

  try:
    cifar10.find_dir("")
    return "cifar10"
  except DatasetError:
    return "synthetic"


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  import jax  # noqa: PLC0415

  from rocket import train  # noqa: PLC0415

  info, warning = common.machine_header()
  dataset = pick_dataset(args)
  cache = jax.config.jax_compilation_cache_dir
  c0 = run_config(args, "rocket", dataset)
  print(f"# {dataset}, preset {args.preset!r}: light WRN-{c0.light.depth}-{c0.light.width}, booster "
        f"WRN-{c0.booster.depth}-{c0.booster.width}, batch {c0.batch_size}, {args.steps} steps per run; "
        f"compilation cache: {cache or 'off'}", flush=True)

  tmp = None
  if args.workdir:
    root = pathlib.Path(args.workdir)
  else:
    tmp = tempfile.TemporaryDirectory(prefix="rocket_kd_vs_rocket_")
    root = pathlib.Path(tmp.name)
  methods = ["rocket", "kd"] + ([] if args.no_light else ["light"])
  results: dict[str, dict[str, Any]] = {}
  try:
    for method in methods:
      workdir = root / method
      if (workdir / "final.json").exists():
        raise SystemExit(f"{workdir} holds a finished run; pass an empty --workdir")
      t0 = time.perf_counter()
      final = train.train_with_teacher(run_config(args, method, dataset), workdir)
      wall = time.perf_counter() - t0
      r = {"wall_s": wall, "light_accuracy": final.get("test/light_accuracy"),
           "loop_s": final.get("wall_time_s")}
      if method == "kd":
        teacher = json.loads((workdir / "teacher" / "final.json").read_text())
        r["teacher_loop_s"] = teacher.get("wall_time_s")
        r["teacher_accuracy"] = teacher.get("test/booster_accuracy")
      if method == "rocket":
        r["booster_accuracy"] = final.get("test/booster_accuracy")
      results[method] = r
      print(f"# {method}: {wall:.1f}s", flush=True)
  finally:
    if tmp is not None:
      tmp.cleanup()

  ratios = {"kd/rocket": results["kd"]["wall_s"] / results["rocket"]["wall_s"]}
  if "light" in results:
    ratios["rocket/light"] = results["rocket"]["wall_s"] / results["light"]["wall_s"]
    ratios["kd/light"] = results["kd"]["wall_s"] / results["light"]["wall_s"]
  rows = [{"run": k, **v} for k, v in results.items()]
  print(common.table(rows, ["run", "wall_s", "loop_s", "teacher_loop_s", "light_accuracy",
                            "booster_accuracy", "teacher_accuracy"]))
  print("(wall_s: the whole train_and_evaluate call, teacher included for kd; loop_s: the "
        "training loop's own clock from final.json, student only for kd; accuracies after "
        f"{args.steps} steps are not meaningful)")
  for k, v in ratios.items():
    print(f"wall-time ratio {k} = {v:.3f}")
  return common.finish("kd_vs_rocket_time", info, warning, args.json_out, args=vars(args),
                       dataset=dataset, compilation_cache=cache or None, results=results,
                       ratios=ratios)


if __name__ == "__main__":
  main()
