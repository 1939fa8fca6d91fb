r"""Runs a grid of configs x seeds, one workdir per run; resumable.

    python -m rocket.sweep --config=configs/cifar10.py:cpu \
        --sweep=paper_repro/sweeps/ablation_cifar10.py --workdir=/tmp/sweep_ablation

A sweep file defines ``get_sweep()`` returning a dict::

    dict(seeds=(0, 1),
         runs=[dict(name="light", overrides={"method": "light"}),
               dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
               ...])

``overrides`` are dotted config fields applied on top of ``--config`` (which
itself takes ``--config.<field>`` overrides for the whole sweep).  ``teacher``
names another run of the sweep whose finished workdir (same seed) is used as
the teacher of a kd/at/at_kd run, so one teacher serves them all; that run is
done first.  Each run lands in ``<workdir>/<name>/seed<k>``; a run whose
``final.json`` exists is skipped, an unfinished one resumes from its
checkpoint, so rerunning the same command continues the sweep.  Runs are done
one after another in this process; each uses all local devices.
``<workdir>/sweep.json`` records the plan for :mod:`rocket.report`.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
import time
import traceback
import types

from absl import app, flags, logging
from ml_collections import config_flags

from rocket.config_util import apply_overrides

FLAGS = flags.FLAGS
_F = types.SimpleNamespace()  # the flag holders, once define_flags() has run


def define_flags() -> types.SimpleNamespace:
  """Defines the command-line flags. Only the program does this (``python -m rocket.sweep``), so
  importing ``rocket.sweep`` (``load_sweep``, ``apply_overrides``, ``plan``) defines no flags."""
  if vars(_F):
    return _F
  _F.config = config_flags.DEFINE_config_file("config", None, "Base config file for every run.")
  _F.sweep = flags.DEFINE_string("sweep", None, "Python file with get_sweep().")
  _F.workdir = flags.DEFINE_string("workdir", None, "Root folder; one sub-folder per run.")
  _F.seeds = flags.DEFINE_list("seeds", None, "Override the sweep's seeds, e.g. 0,1,2.")
  _F.only = flags.DEFINE_list("only", None, "Run only these run names (and their teachers).")
  _F.dry_run = flags.DEFINE_bool("dry_run", False, "Print the plan and exit.")
  flags.mark_flags_as_required(["config", "sweep", "workdir"])
  return _F


def load_sweep(path: str) -> dict:
  p = pathlib.Path(path)
  if not p.is_file():
    raise ValueError(f"sweep file {path!r} not found")
  spec = importlib.util.spec_from_file_location("rocket_sweep_file", p)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  sweep = mod.get_sweep()
  names = [r["name"] for r in sweep["runs"]]
  if len(set(names)) != len(names):
    raise ValueError(f"run names must be unique, got {names}")
  for r in sweep["runs"]:
    if r.get("teacher") and r["teacher"] not in names:
      raise ValueError(f"run {r['name']!r} names teacher {r['teacher']!r}, which is not a run")
  return sweep


def plan(sweep: dict, seeds, only) -> list[dict]:
  """Runs in execution order (teachers first), expanded over seeds."""
  runs = {r["name"]: r for r in sweep["runs"]}
  wanted = [r["name"] for r in sweep["runs"] if not only or r["name"] in only]
  order: list[str] = []
  for name in wanted:
    t = runs[name].get("teacher")
    if t and t not in order:
      order.append(t)
    if name not in order:
      order.append(name)
  return [dict(runs[n], seed=int(s)) for s in seeds for n in order]


def run_dir(root: pathlib.Path, name: str, seed: int) -> pathlib.Path:
  return root / name / f"seed{seed}"


def main(argv):
  del argv
  from rocket import train  # JAX starts here

  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  root = pathlib.Path(_F.workdir.value)
  try:
    sweep = load_sweep(_F.sweep.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  seeds = _F.seeds.value or sweep.get("seeds", (0,))
  todo = plan(sweep, seeds, _F.only.value)
  root.mkdir(parents=True, exist_ok=True)
  (root / "sweep.json").write_text(json.dumps(
      {"sweep_file": _F.sweep.value, "seeds": [int(s) for s in seeds], "runs": sweep["runs"],
       "base_config": _F.config.value.to_dict(), "argv": sys.argv}, indent=1, default=str))
  failed = []
  for i, run in enumerate(todo, 1):
    wd = run_dir(root, run["name"], run["seed"])
    overrides = dict(run.get("overrides", {}), seed=run["seed"])
    if run.get("teacher"):
      overrides["teacher_workdir"] = str(run_dir(root, run["teacher"], run["seed"]))
    label = f"[{i}/{len(todo)}] {run['name']} seed {run['seed']}"
    if (wd / "final.json").is_file():
      print(f"{label}: done, skipped", flush=True)
      continue
    if _F.dry_run.value:
      print(f"{label}: would run {overrides} in {wd}", flush=True)
      continue
    print(f"{label}: {overrides} -> {wd}", flush=True)
    t0 = time.time()
    try:
      config = apply_overrides(_F.config.value, overrides)
      result = train.train_and_evaluate(config, wd)
      acc = {k: round(v, 4) for k, v in result.items()
             if k.startswith("test/") and k.endswith(("accuracy", "auc"))}
      print(f"{label}: finished in {time.time() - t0:.0f}s {acc}", flush=True)
    except train.Interrupted as e:  # Ctrl-C / SIGTERM stops the sweep, not just this run
      print(f"{label}: {e}", file=sys.stderr, flush=True)
      sys.exit(130)
    except Exception as e:  # noqa: BLE001 -- one broken run must not stop the sweep
      failed.append(run["name"])
      wd.mkdir(parents=True, exist_ok=True)
      (wd / "error.txt").write_text(traceback.format_exc())
      print(f"{label}: FAILED ({type(e).__name__}: {e}); see {wd / 'error.txt'}", flush=True)
  if failed:
    print(f"{len(failed)} run(s) failed: {failed}", file=sys.stderr)
    sys.exit(1)


def run() -> None:
  """The console script ``rocket-sweep`` (the same as ``python -m rocket.sweep``)."""
  from rocket.cli import parse_flags  # noqa: PLC0415

  define_flags()
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
