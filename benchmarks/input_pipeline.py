"""Input pipeline delivery rate vs the train step's consumption rate.

Measures, in batches per second, in the same run and at the same batch size:

* ``host``         -- ``rocket.input_pipeline.train_batches``: host gather of a shuffled
  batch + placement on the device, with its prefetch thread (each batch is waited for);
* ``host+augment`` -- the same, plus the on-device pad-4 crop + flip + normalisation
  (``input_pipeline.augment`` / ``normalize``, jitted as in the train step);
* ``augment``      -- the on-device augment + normalise alone, on a batch already there;
* ``train_step``   -- the trainer's jitted step (default ``method=rocket``) on a fixed batch;
* ``train_loop``   -- that step fed by ``train_batches``, as ``train_and_evaluate`` runs it.

and prints ``host+augment / train_step`` (the headroom of the pipeline; the target is
>= 10) and ``train_loop / train_step`` (what feeding real batches costs the loop).
The data are the CIFAR-10 copy (``rocket.data.load_dataset``) when it can be found,
else the synthetic set.  On a CPU the pipeline and the step share the same cores:
the ratios are for each part run alone, except ``train_loop``.

    python -m benchmarks.input_pipeline
    python -m benchmarks.input_pipeline --quick
    python -m benchmarks.input_pipeline --dataset=synthetic --method=light
"""

from __future__ import annotations

import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.input_pipeline ...")

from benchmarks import common  # noqa: E402


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--dataset", default="auto", choices=("auto", "cifar10", "synthetic"),
                 help="auto: CIFAR-10 if found, else synthetic (synthetic with --quick)")
  p.add_argument("--method", default="rocket", help="the train step to compare with")
  p.add_argument("--batch_size", type=int, default=None, help="128 (16 with --quick)")
  p.add_argument("--light_depth", type=int, default=None, help="16 (10 with --quick)")
  p.add_argument("--booster_depth", type=int, default=None, help="40 (10 with --quick)")
  p.add_argument("--pipeline_steps", type=int, default=None, help="batches per pipeline round (200)")
  p.add_argument("--prefetch", type=int, default=2, help="train_batches(prefetch=...)")
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=5, repeats=5, warmup=2)
  for k, full, small in (("batch_size", 128, 16), ("light_depth", 16, 10), ("booster_depth", 40, 10),
                         ("pipeline_steps", 200, 4)):
    if getattr(args, k) is None:
      setattr(args, k, small if args.quick else full)
  if args.dataset == "auto" and args.quick:
    args.dataset = "synthetic"
  return args


def load_data(args):
  from rocket.data import DatasetError, load_dataset  # noqa: PLC0415

  if args.dataset in ("auto", "cifar10"):
    try:
      t0 = time.perf_counter()
      ds = load_dataset(common.load_config("", dataset="cifar10"))
      return ds, time.perf_counter() - t0
    except DatasetError as e:
      if args.dataset == "cifar10":
        raise
      print(f"# CIFAR-10 not available ({str(e)[:80]}...): using the synthetic set", flush=True)
  c = common.load_config("", dataset="synthetic")
  c.synthetic.num_train = max(4 * args.batch_size, 64) if args.quick else 10000
  c.synthetic.num_test = 64
  t0 = time.perf_counter()
  ds = load_dataset(c)
  return ds, time.perf_counter() - t0


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  import jax  # noqa: PLC0415
  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415

  from rocket import input_pipeline, train  # noqa: PLC0415

  info, warning = common.machine_header()
  ds, load_s = load_data(args)
  b = args.batch_size
  print(f"# data: {ds.description or ds.name}, {len(ds.train_labels)} train images "
        f"(loaded in {load_s:.1f}s); batch {b}; step: method={args.method} "
        f"WRN-{args.light_depth}-1 / WRN-{args.booster_depth}-1", flush=True)

  config = common.load_config("", method=args.method, batch_size=b,
                              **{"light.depth": args.light_depth, "booster.depth": args.booster_depth})
  bench = common.build_step("train_step", config, num_classes=ds.num_classes,
                            image_shape=ds.image_shape, mean=ds.mean, std=ds.std,
                            data=(ds.train_images, ds.train_labels))
  sharding = NamedSharding(train.make_mesh(), P("data"))
  dtype = train.DTYPES[config.compute_dtype]
  base_key = jax.random.key(config.seed + 1)

  @jax.jit
  def augment_normalize(step, images):  # the first lines of rocket.train.make_train_step
    x = input_pipeline.augment(jax.random.fold_in(base_key, step), images, pad=4,
                               pad_mode=config.pad_mode)
    return input_pipeline.normalize(x, ds.mean, ds.std, dtype)

  cursor = {"step": 0}

  def batches(n):
    start = cursor["step"]
    cursor["step"] += n
    return input_pipeline.train_batches(ds.train_images, ds.train_labels, seed=config.seed,
                                        batch_size=b, start_step=start, num_steps=start + n,
                                        sharding=sharding, prefetch=args.prefetch)

  def host(n):
    for _, x, y in batches(n):
      common.block((x, y))

  def host_augment(n):
    for step, x, y in batches(n):
      common.block((augment_normalize(step, x), y))

  def augment_only(n):
    for i in range(n):
      common.block(augment_normalize(i, bench.images))

  def train_loop(n):
    m = None
    for _, x, y in batches(n):
      bench.state, m = bench.jitted(bench.state, x, y, None)
    common.block((bench.state, m))

  fast = {"host": host, "host+augment": host_augment, "augment": augment_only}
  slow = {"train_step": bench.run, "train_loop": train_loop}
  for run in (*fast.values(), *slow.values()):
    run(max(args.warmup, 1))
  times = common.time_rounds(fast, args.pipeline_steps, args.repeats)
  times.update(common.time_rounds(slow, args.steps, args.repeats))

  rate = {k: 1.0 / common.summary(v)["median_s"] for k, v in times.items()}
  rows = [{"name": k, "batches_per_s": rate[k], "images_per_s": rate[k] * b,
           "ms_per_batch": 1e3 / rate[k]} for k in times]
  ratios = {f"{k}/train_step": rate[k] / rate["train_step"]
            for k in ("host", "host+augment", "augment", "train_loop")}
  print(common.table(rows, ["name", "batches_per_s", "images_per_s", "ms_per_batch"]))
  for k, v in ratios.items():
    print(f"ratio {k} = {v:.3f}")
  target = ratios["host+augment/train_step"] >= 10
  print(f"pipeline headroom target (host+augment >= 10x the step): {'met' if target else 'NOT met'}")
  return common.finish("input_pipeline", info, warning, args.json_out, args=vars(args),
                       data=ds.description or ds.name, rows=rows, ratios=ratios, target_met=target)


if __name__ == "__main__":
  main()
