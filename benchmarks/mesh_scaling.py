"""Overhead of the sharded (data-parallel) train step: 1, 2, 4, 8 simulated CPU devices, same global batch.

On this 2-core machine more simulated devices do not add compute, so the point is the
*overhead* of the SPMD path (split batch, cross-device batch-norm statistics and gradient
all-reduce, row-sharded embedding tables): step time with N devices / step time with 1.
Each device count runs in a fresh process (``XLA_FLAGS=--xla_force_host_platform_device_count=N``)
with the trainer's own jitted step (``rocket.train.make_train_step`` with the shardings
``train_and_evaluate`` uses).  Cases: the rocket WRN step (light WRN-16-1 + booster WRN-40-1,
batch 128; ``--quick``: WRN-10-1 + WRN-10-1, batch 32) and the rocket CTR step on
Frappe-sized synthetic data (batch 1024, embedding tables row-sharded over ``model`` when N > 1
is split as data=N/2 x model=2).

    python -m benchmarks.mesh_scaling
    python -m benchmarks.mesh_scaling --quick
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.mesh_scaling ...")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true")
  p.add_argument("--devices", default="1,2,4,8")
  p.add_argument("--steps", type=int, default=None, help="steps per timed round (5; 2 quick)")
  p.add_argument("--repeats", type=int, default=None, help="timed rounds (5; 2 quick)")
  p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--json", default="")
  args = p.parse_args(argv)
  args.steps = args.steps or (2 if args.quick else 5)
  args.repeats = args.repeats or (2 if args.quick else 5)
  return args


def child(args) -> dict:
  """Runs inside a process with ``args.child`` devices; prints one JSON line."""
  import jax  # noqa: PLC0415
  import ml_collections  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415

  from benchmarks import common  # noqa: PLC0415
  from rocket import image_task, input_pipeline, tasks, train  # noqa: PLC0415
  from rocket.ctr import task as ctr_task  # noqa: PLC0415
  from rocket.ctr import config as ctr_config  # noqa: PLC0415

  n = jax.device_count()
  assert n == args.child, (n, args.child)
  out = {"devices": n}

  def timed(config, model, state_shape, dtype, inputs, labels, prepare):
    mesh = train.make_mesh(config)
    data_sh, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    tx, sched = train.create_optimizer(config, 1000, 100)
    rule = tasks.get_task(config).row_sharded  # CTR: the embedding tables split over `model`
    state = train.init_state(model, tx, state_shape, 0, mesh, dtype, rule)
    sh = train.state_shardings(state, mesh, rule)
    step = jax.jit(train.make_train_step(config, model, tx, sched, prepare, steps_per_epoch=100),
                   in_shardings=(sh, data_sh, data_sh, None), out_shardings=(sh, rep), donate_argnums=0)
    x, y = input_pipeline.global_batch(data_sh, inputs, labels)
    holder = {"state": state}

    def run(k):
      m = None
      for _ in range(k):
        holder["state"], m = step(holder["state"], x, y, None)
      jax.block_until_ready((holder["state"], m))

    run(2)  # compile + warm up
    t = common.time_rounds({"s": run}, args.steps, args.repeats, pause_s=0)["s"]
    return statistics.median(t)

  # WRN rocket step
  c = common.load_config("tiny" if args.quick else "")
  if not args.quick:
    c.batch_size = 128
  c.method = "rocket"
  with c.unlocked():
    c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  rng = np.random.default_rng(0)
  hw = 32
  images = rng.integers(0, 256, (c.batch_size, hw, hw, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, (c.batch_size,)).astype(np.int32)
  model = image_task.build_model(c, 10)
  prep = image_task.image_prepare(c, np.asarray(common.CIFAR_MEAN, np.float32), np.asarray(common.CIFAR_STD,
                                                                                        np.float32))
  out["wrn_step_s"] = timed(c, model, (hw, hw, 3), np.float32, images, labels, prep)
  out["wrn_batch"] = c.batch_size

  # CTR rocket step (Frappe-sized vocabularies)
  cc = ctr_config.base_config("synthetic_ctr")
  cc.batch_size = 256 if args.quick else 1024
  model_axis = 2 if n >= 2 else 1
  cc.mesh = ml_collections.ConfigDict(dict(data=n // model_axis, model=model_axis))

  class _DS:  # what build_ctr_model reads
    from rocket.ctr.features import FieldSpec  # noqa: PLC0415
    fields = [FieldSpec("user", 960, "user"), FieldSpec("item", 4096, "item"),
              FieldSpec("hour", 8, "context"), FieldSpec("device", 8, "context")]
    sequences = ()

  cc.features.crosses = "user*item"
  cc.features.cross_buckets = 10_240
  ctr_model = ctr_task.build_ctr_model(cc, _DS)
  sizes = [f.vocab_size for f in _DS.fields]
  ids = np.stack([rng.integers(0, v, cc.batch_size) for v in sizes], 1).astype(np.int32)
  y = rng.integers(0, 2, cc.batch_size).astype(np.float32)
  out["ctr_step_s"] = timed(cc, ctr_model, (len(sizes),), np.int32, ids, y, lambda k, v, t: v)
  out["ctr_batch"] = cc.batch_size
  out["ctr_mesh"] = f"data={n // model_axis} x model={model_axis}"
  print("RESULT " + json.dumps(out), flush=True)
  return out


def main(argv=None) -> dict:
  args = parse(sys.argv[1:] if argv is None else argv)
  if args.child:
    return child(args)
  from benchmarks import common  # noqa: PLC0415

  info, warning = common.machine_header()
  rows = []
  for n in [int(x) for x in args.devices.split(",")]:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "benchmarks.mesh_scaling", f"--child={n}",
           f"--steps={args.steps}", f"--repeats={args.repeats}"] + (["--quick"] if args.quick else [])
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode:
      raise SystemExit(f"child with {n} devices failed:\n{res.stderr[-3000:]}")
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")][-1]
    rows.append(json.loads(line[len("RESULT "):]) | {"wall_s": round(time.time() - t0, 1)})
  base = rows[0]
  for r in rows:
    r["wrn_vs_1"] = r["wrn_step_s"] / base["wrn_step_s"]
    r["ctr_vs_1"] = r["ctr_step_s"] / base["ctr_step_s"]
  print("\nStep time at a fixed global batch vs number of simulated CPU devices (same 2 cores):")
  print(common.table(rows, ["devices", "wrn_batch", "wrn_step_s", "wrn_vs_1", "ctr_batch", "ctr_mesh",
                            "ctr_step_s", "ctr_vs_1"]))
  return common.finish("mesh_scaling", info, warning, args.json, rows=rows, argv=sys.argv)


if __name__ == "__main__":
  main()
