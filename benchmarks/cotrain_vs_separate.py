"""Rocket co-training step time vs a light step plus a booster step, in the same run.

Times the trainer's jitted step for ``method=light`` (WRN-16-1), ``method=booster``
(WRN-40-1) and ``method=rocket`` (both, co-trained) under each sharing scheme asked
for (default: ``interval``, the config default and the paper's scheme, and ``none``), at
batch 128, and prints ``rocket / (light + booster)`` for the step times and for the FLOPs
XLA counts.  A time ratio below 1 means one co-training step is cheaper than training the
two nets separately (layers fed the same input are computed once, and one program keeps
both cores busier); the FLOP ratio says how much of that the sharing alone explains.
Under ``interval`` the light net runs through the booster's convolutions with its own
batch norms, so only the stem sees the same input in both nets and is computed once.

Under ``bottom`` the light net is the booster's stem and first two groups
(``rocket.image_task.wrn_specs``), so that scheme is compared with its own light-alone step,
``light_bottom``: ``rocket_bottom / (light_bottom + booster)``.

    python -m benchmarks.cotrain_vs_separate
    python -m benchmarks.cotrain_vs_separate --quick
    python -m benchmarks.cotrain_vs_separate --shares=interval,bottom,none
"""

from __future__ import annotations

import sys
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.cotrain_vs_separate ...")

from benchmarks import common  # noqa: E402


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--shares", default="interval,none",
                 help="comma list of sharing schemes of the rocket steps: interval, bottom, none")
  p.add_argument("--batch_size", type=int, default=None, help="128 (16 with --quick)")
  p.add_argument("--light_depth", type=int, default=None, help="16 (10 with --quick)")
  p.add_argument("--booster_depth", type=int, default=None, help="40 (16 with --quick)")
  p.add_argument("--width", type=int, default=1)
  p.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=5, repeats=5, warmup=2)
  for k, full, small in (("batch_size", 128, 16), ("light_depth", 16, 10), ("booster_depth", 40, 16)):
    if getattr(args, k) is None:
      setattr(args, k, small if args.quick else full)
  args.shares = [s for s in args.shares.split(",") if s]
  from rocket.models.rocket import check_share_name  # noqa: PLC0415

  for share in args.shares:
    try:
      check_share_name(share)
    except ValueError as e:
      p.error(str(e))
  if not args.shares:
    p.error("--shares is empty")
  if args.quick:
    args.shares = args.shares[:1]
  return args


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  from rocket import image_task  # noqa: PLC0415

  info, warning = common.machine_header()

  def config(method, share="interval"):
    return common.load_config(
        "", method=method, share=share, batch_size=args.batch_size, compute_dtype=args.compute_dtype,
        **{"light.depth": args.light_depth, "light.width": args.width,
           "booster.depth": args.booster_depth, "booster.width": args.width})

  # The light-alone step each scheme is compared with: the light net it trains.
  default_light = image_task.wrn_specs(config("light"))["light"]
  light_of = {}
  for share in args.shares:
    spec = image_task.wrn_specs(config("light", share))["light"]
    light_of[share] = "light" if spec == default_light else f"light_{share}"
  specs = {light_of[share]: config("light", share) for share in args.shares}
  specs["booster"] = config("booster")
  for share in args.shares:
    specs[f"rocket_{share}"] = config("rocket", share)
  benches = {}
  for name, c in specs.items():
    benches[name] = common.build_step(name, c)
    print(f"# compiled {name} in {benches[name].compile_s:.1f}s", flush=True)
  common.warm(benches.values(), args.warmup)
  times = common.time_rounds({k: v.run for k, v in benches.items()}, args.steps, args.repeats)
  med = {k: common.summary(v)["median_s"] for k, v in times.items()}
  flops = {k: v.flops for k, v in benches.items()}

  rows = [{"name": k, "nets": " + ".join(w.name for w in image_task.wrn_specs(specs[k]).values()),
           "step_ms": 1e3 * med[k], "min_ms": 1e3 * min(times[k]), "max_ms": 1e3 * max(times[k]),
           "images_per_s": args.batch_size / med[k],
           "xla_gflop_per_step": flops[k] / 1e9 if flops[k] else None} for k in benches]
  separate, sep_flops = {}, {}
  for light in dict.fromkeys(light_of.values()):  # each light baseline once
    separate[light] = med[light] + med["booster"]
    sep_flops[light] = flops[light] + flops["booster"] if flops[light] and flops["booster"] else None
    rows.append({"name": f"{light} + booster", "step_ms": 1e3 * separate[light],
                 "xla_gflop_per_step": sep_flops[light] / 1e9 if sep_flops[light] else None})
  ratios = {}
  for share in args.shares:
    k, light = f"rocket_{share}", light_of[share]
    ratios[f"time {k}/({light}+booster)"] = med[k] / separate[light]
    if flops[k] and sep_flops[light]:
      ratios[f"flops {k}/({light}+booster)"] = flops[k] / sep_flops[light]
  print(f"# batch {args.batch_size}, WRN-{args.light_depth}-{args.width} + WRN-{args.booster_depth}-"
        f"{args.width}, {args.compute_dtype}, {args.steps} steps x {args.repeats} rounds")
  print(common.table(rows, ["name", "nets", "step_ms", "min_ms", "max_ms", "images_per_s",
                            "xla_gflop_per_step"]))
  for k, v in ratios.items():
    print(f"ratio {k} = {v:.3f}")
  return common.finish("cotrain_vs_separate", info, warning, args.json_out, args=vars(args),
                       rows=rows, ratios=ratios)


if __name__ == "__main__":
  main()
