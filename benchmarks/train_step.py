"""Train-step throughput of the trainer's jitted step, against an equivalent PyTorch WRN.

Times, at the same batch size and in the same process:

* ``light``   -- ``method=light``: WRN-16-1 alone (with ``--share=bottom``: the light net that
  scheme trains, the booster's first two groups, ``rocket.image_task.wrn_specs``);
* ``booster`` -- ``method=booster``: WRN-40-1 alone;
* ``rocket``  -- ``method=rocket``: WRN-16-1 + WRN-40-1 co-trained, ``--share=interval`` (the
  config default and the paper's scheme: every convolution of the light net is the booster's);
* ``torch_nchw`` / ``torch_channels_last`` -- a PyTorch pre-activation WRN of the JAX light
  net's architecture, written below (same depth, widths, BN, He fan-out init), SGD with
  Nesterov momentum 0.9 and weight decay 5e-4, cross-entropy, with the same random pad-4
  crop + flip and normalisation done in torch on the uint8 batch; in NCHW and in
  channels_last.

The JAX steps are built exactly as ``rocket.train.train_and_evaluate`` builds them
(see ``benchmarks/common.py``).  Also reported: the FLOPs XLA's cost analysis counts
for one step, the FLOP/s that achieves, and a measured float32 matmul FLOP/s of this
machine for scale.

    python -m benchmarks.train_step                 # full measurement (a few minutes on 2 cores)
    python -m benchmarks.train_step --quick         # seconds; smoke test
    python -m benchmarks.train_step --nets=rocket --compute_dtype=bfloat16 --torch=off
    python -m benchmarks.train_step --xla_flags=--xla_cpu_use_onednn=true --torch=off
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
import types
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.train_step ...")

from benchmarks import common  # noqa: E402

NETS = ("light", "booster", "rocket")
TORCH_FORMATS = ("nchw", "channels_last")


# --------------------------------------------------------------------------- analytic FLOPs


def wrn_forward_flops(depth: int, width: int, hw: int = 32, num_classes: int = 10,
                      num_groups: int = 3) -> float:
  """Multiply-add FLOPs (2 per MAC) of one image through the convolutions and the classifier.

  ``num_groups < 3`` keeps only the first groups (``WRNSpec.num_groups``; the light net of
  ``share=bottom``)."""
  n = (depth - 4) // 6
  widths, strides = (16 * width, 32 * width, 64 * width), (1, 2, 2)
  macs, c, s = hw * hw * 3 * 16 * 9, 16, hw
  for g in range(num_groups):
    for b in range(n):
      stride = strides[g] if b == 0 else 1
      s //= stride
      macs += s * s * 9 * (c * widths[g] + widths[g] * widths[g])
      if c != widths[g] or stride != 1:
        macs += s * s * c * widths[g]
      c = widths[g]
  return 2.0 * (macs + c * num_classes)


# --------------------------------------------------------------------------- im2col convolution


def make_im2col_conv():
  """A drop-in for ``flax.linen.Conv`` (as rocket/models/wrn.py calls it) computed as im2col + matmul.

  Same parameter (``kernel``, HWIO, float32) and the same output as ``nn.Conv`` with integer
  padding; the k*k shifted (strided) slices of the padded input are concatenated on the
  channel axis and multiplied by the reshaped kernel in one dot.
  """
  import flax.linen as nn  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  class Im2colConv(nn.Module):
    features: int
    kernel_size: tuple
    strides: Any = 1
    padding: Any = 0
    use_bias: bool = False
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = None

    @nn.compact
    def __call__(self, x):
      assert not self.use_bias and isinstance(self.padding, int)
      kh, kw = self.kernel_size
      s = self.strides if isinstance(self.strides, int) else self.strides[0]
      c, p = x.shape[-1], self.padding
      kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features), jnp.float32)
      dtype = self.dtype or x.dtype
      x, kernel = x.astype(dtype), kernel.astype(dtype)
      ho, wo = (x.shape[1] + 2 * p - kh) // s + 1, (x.shape[2] + 2 * p - kw) // s + 1
      xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
      cols = [xp[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :]
              for i in range(kh) for j in range(kw)]
      cols = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
      return jnp.einsum("bhwk,ko->bhwo", cols, kernel.reshape(kh * kw * c, self.features))

  return Im2colConv


@contextlib.contextmanager
def conv_impl(name: str):
  """``im2col``: rocket/models/wrn.py builds its convolutions with :func:`make_im2col_conv`."""
  if name == "xla":
    yield
    return
  import flax.linen  # noqa: PLC0415

  from rocket.models import wrn  # noqa: PLC0415

  proxy = types.ModuleType("flax_linen_with_im2col_conv")
  proxy.__dict__.update(vars(flax.linen))
  proxy.Conv = make_im2col_conv()
  old, wrn.nn = wrn.nn, proxy
  try:
    yield
  finally:
    wrn.nn = old


# --------------------------------------------------------------------------- PyTorch reference


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


def make_torch_wrn(depth: int, width: int, num_classes: int = 10, num_groups: int = 3):
  """A pre-activation WRN-d-k in PyTorch, the same architecture as rocket/models/wrn.py
  (``num_groups < 3``: only the first groups, as ``WRNSpec.num_groups``)."""
  import torch  # noqa: PLC0415
  from torch import nn  # noqa: PLC0415
  from torch.nn import functional as F  # noqa: PLC0415

  class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
      super().__init__()
      self.bn1 = nn.BatchNorm2d(cin)  # momentum 0.1, eps 1e-5: as the flax model
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.shortcut = (nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
                       if cin != cout or stride != 1 else None)

    def forward(self, x):
      o = F.relu(self.bn1(x))
      y = self.conv2(F.relu(self.bn2(self.conv1(o))))
      return (x if self.shortcut is None else self.shortcut(o)) + y

  class WRN(nn.Module):
    def __init__(self):
      super().__init__()
      n = (depth - 4) // 6
      self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
      blocks, c = [], 16
      for w, s in list(zip((16 * width, 32 * width, 64 * width), (1, 2, 2)))[:num_groups]:
        for b in range(n):
          blocks.append(Block(c, w, s if b == 0 else 1))
          c = w
      self.blocks = nn.Sequential(*blocks)
      self.bn = nn.BatchNorm2d(c)
      self.fc = nn.Linear(c, num_classes)
      for m in self.modules():
        if isinstance(m, nn.Conv2d):
          nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
      x = F.relu(self.bn(self.blocks(self.stem(x))))
      return self.fc(torch.mean(x, dim=(2, 3)))

  return WRN()


class TorchStep(common.TorchTrainStep):
  """One PyTorch training step on a fixed uint8 NHWC batch (augmentation included)."""

  def __init__(self, depth: int, width: int, images_u8, labels, memory_format: str, *,
               lr=0.1, momentum=0.9, weight_decay=5e-4, mean=common.CIFAR_MEAN, std=common.CIFAR_STD,
               augment: bool = True, seed: int = 0, num_groups: int = 3):
    import torch  # noqa: PLC0415

    self.torch = torch
    torch.manual_seed(seed)
    self.channels_last = memory_format == "channels_last"
    self.model = make_torch_wrn(depth, width, num_groups=num_groups).train()
    if self.channels_last:
      self.model = self.model.to(memory_format=torch.channels_last)
    self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                               weight_decay=weight_decay)
    self.images = torch.from_numpy(images_u8)
    self.labels = torch.from_numpy(labels.astype("int64"))
    self.mean = torch.tensor(mean, dtype=torch.float32)
    self.std = torch.tensor(std, dtype=torch.float32)
    self.augment = augment
    self.gen = torch.Generator().manual_seed(seed + 1)
    self.loss = None

  def batch(self):
    """uint8 [B,H,W,C] -> normalised float [B,C,H,W]: pad 4, random crop, random flip."""
    torch = self.torch
    x = self.images.to(torch.float32).div_(255.0)
    if self.augment:
      b, h, w, _ = x.shape
      x = torch.nn.functional.pad(x, (0, 0, 4, 4, 4, 4))  # zero pad H and W (uint8 0 = black)
      off = torch.randint(0, 9, (b, 2), generator=self.gen)
      flip = torch.rand(b, generator=self.gen) < 0.5
      ar_h, ar_w = torch.arange(h), torch.arange(w)
      rows = off[:, :1] + ar_h
      cols = off[:, 1:] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)
      x = x[torch.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
    x = ((x - self.mean) / self.std).permute(0, 3, 1, 2)  # an NCHW view of NHWC memory
    return x.contiguous(memory_format=torch.channels_last if self.channels_last
                        else torch.contiguous_format)

  def inputs(self):
    return self.batch(), self.labels

  def loss_fn(self, logits, labels):
    return self.torch.nn.functional.cross_entropy(logits, labels)

  def matmul_flops_per_s(self, n: int = 2048, steps: int = 5, repeats: int = 3) -> float:
    torch = self.torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = common.time_rounds({"mm": lambda k: [torch.mm(a, b) for _ in range(k)]}, steps, repeats, 0)
    return 2.0 * n**3 / sorted(times["mm"])[len(times["mm"]) // 2]


# --------------------------------------------------------------------------- main


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--nets", default=",".join(NETS), help=f"comma list of {NETS}")
  p.add_argument("--batch_size", type=int, default=None, help="global batch (128; 16 with --quick)")
  p.add_argument("--light_depth", type=int, default=None, help="16 (10 with --quick)")
  p.add_argument("--booster_depth", type=int, default=None, help="40 (10 with --quick)")
  p.add_argument("--width", type=int, default=1)
  p.add_argument("--share", default="interval",
                 help="sharing scheme: interval (default, the paper's) | bottom | none; under "
                      "bottom the light net is the booster's first two groups (--light_depth unused)")
  p.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--conv", default="xla", choices=("xla", "im2col"),
                 help="im2col: the WRN convolutions as im2col + matmul (patched in; not rocket's code)")
  p.add_argument("--no_donate", action="store_true", help="jit without donating the state")
  p.add_argument("--no_augment", action="store_true", help="config.augment=False (and in torch)")
  p.add_argument("--torch", default="auto", choices=("auto", "on", "off"),
                 help="time the PyTorch WRN too (auto: when torch is installed)")
  p.add_argument("--torch_formats", default=",".join(TORCH_FORMATS))
  p.add_argument("--torch_threads", type=int, default=0, help=">0: torch.set_num_threads")
  p.add_argument("--peak_n", type=int, default=None, help="matmul size for the peak (2048)")
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=5, repeats=5, warmup=2)
  q = args.quick
  for k, full, small in (("batch_size", 128, 16), ("light_depth", 16, 10), ("booster_depth", 40, 10),
                         ("peak_n", 2048, 256)):
    if getattr(args, k) is None:
      setattr(args, k, small if q else full)
  args.nets = [n for n in args.nets.split(",") if n]
  bad = set(args.nets) - set(NETS)
  if bad:
    p.error(f"unknown --nets {sorted(bad)}; choose from {NETS}")
  args.torch_formats = [f for f in args.torch_formats.split(",") if f]
  if set(args.torch_formats) - set(TORCH_FORMATS):
    p.error(f"--torch_formats must be from {TORCH_FORMATS}")
  from rocket.models.rocket import check_share_name  # noqa: PLC0415

  try:
    check_share_name(args.share)
  except ValueError as e:
    p.error(str(e))
  if args.torch == "on" and not torch_available():
    p.error("--torch=on but torch is not installed (pip install torch)")
  return args


def net_config(args, method: str):
  """The config of one timed step; ``rocket.image_task.wrn_specs`` of it gives the WRN of each net."""
  return common.load_config(
      "", method=method, batch_size=args.batch_size, share=args.share,
      compute_dtype=args.compute_dtype, augment=not args.no_augment,
      **{"light.depth": args.light_depth, "light.width": args.width,
         "booster.depth": args.booster_depth, "booster.width": args.width})


def main(argv=None) -> dict[str, Any]:
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  with conv_impl(args.conv):  # held while anything is traced (a retrace must see the same convs)
    return _main(args)


def _main(args) -> dict[str, Any]:
  import numpy as np  # noqa: PLC0415

  from rocket import image_task  # noqa: PLC0415

  info, warning = common.machine_header()
  b = args.batch_size
  specs = image_task.wrn_specs(net_config(args, "rocket"))  # the WRN each net is under --share
  print(f"# batch {b}, light {specs['light'].name}, booster {specs['booster'].name}, "
        f"share {args.share}, {args.compute_dtype}, "
        f"donate={not args.no_donate}, conv={args.conv}, {args.steps} steps x {args.repeats} rounds",
        flush=True)

  runners, meta = {}, {}
  for net in args.nets:
    t0 = time.perf_counter()
    bench = common.build_step(net, net_config(args, net), donate=not args.no_donate)
    print(f"# compiled {net} in {bench.compile_s:.1f}s (built in {time.perf_counter() - t0:.1f}s)",
          flush=True)
    runners[net], meta[net] = bench.run, bench

  use_torch = args.torch == "on" or (args.torch == "auto" and torch_available())
  torch_steps = {}
  if use_torch:
    import torch  # noqa: PLC0415

    if args.torch_threads > 0:
      torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(b, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(b,)).astype(np.int32)
    for fmt in args.torch_formats:
      light = specs["light"]  # the JAX light step's WRN, so that the ratio compares like with like
      ts = TorchStep(light.depth, light.width, images, labels, fmt, augment=not args.no_augment,
                     num_groups=light.num_groups)
      torch_steps[fmt] = ts
      runners[f"torch_{fmt}"] = ts.run

  for run in runners.values():  # compile caches, allocator pools, thread pools
    run(args.warmup)

  peak = common.matmul_flops_per_s(args.peak_n, steps=3 if args.quick else 5,
                                   repeats=args.repeats)
  torch_peak = None
  if torch_steps:
    torch_peak = next(iter(torch_steps.values())).matmul_flops_per_s(
        args.peak_n, steps=3 if args.quick else 5, repeats=args.repeats)

  times = common.time_rounds(runners, args.steps, args.repeats)

  rows = []
  for name, per_call in times.items():
    s = common.summary(per_call)
    row = {"name": name, "step_ms": 1e3 * s["median_s"], "min_ms": 1e3 * s["min_s"],
           "max_ms": 1e3 * s["max_s"], "images_per_s": b / s["median_s"]}
    if name in meta:
      bench = meta[name]
      row["compile_s"] = bench.compile_s
      if bench.flops:
        row["xla_gflop_per_step"] = bench.flops / 1e9
        row["achieved_gflop_s"] = bench.flops / s["median_s"] / 1e9
        row["frac_of_matmul_peak"] = bench.flops / s["median_s"] / peak
    if name in ("light", "booster") or name.startswith("torch"):
      spec = specs["booster" if name == "booster" else "light"]
      row["analytic_gflop_per_step"] = 3 * b * wrn_forward_flops(
          spec.depth, spec.width, num_groups=spec.num_groups) / 1e9
      row["analytic_gflop_s"] = row["analytic_gflop_per_step"] / s["median_s"]
    rows.append(row)

  ratios = {}
  by = {r["name"]: r for r in rows}
  for fmt in torch_steps:
    if "light" in by:
      ratios[f"jax_light/torch_{fmt}"] = by["light"]["images_per_s"] / by[f"torch_{fmt}"]["images_per_s"]
  cols = ["name", "step_ms", "min_ms", "max_ms", "images_per_s", "compile_s", "xla_gflop_per_step",
          "analytic_gflop_per_step", "achieved_gflop_s", "analytic_gflop_s", "frac_of_matmul_peak"]
  print(common.table(rows, cols))
  print("(xla_gflop_per_step: XLA cost analysis of the compiled step; analytic: 3 x the forward "
        "multiply-adds of the convolutions and classifier, 2 FLOPs each; achieved = xla / step time)")
  print(f"matmul peak (float32, {args.peak_n}^2, JAX): {peak / 1e9:.1f} GFLOP/s"
        + (f"; torch.mm: {torch_peak / 1e9:.1f} GFLOP/s" if torch_peak else ""))
  for k, v in ratios.items():
    print(f"images/s ratio {k} = {v:.3f}")
  if not torch_steps:
    print("(PyTorch comparison skipped: " + ("--torch=off" if args.torch == "off" else
                                             "torch is not installed") + ")")
  return common.finish("train_step", info, warning, args.json_out, args=vars(args), rows=rows,
                       matmul_peak_flop_s=peak, torch_matmul_peak_flop_s=torch_peak, ratios=ratios)


if __name__ == "__main__":
  main()
