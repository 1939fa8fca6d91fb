"""CTR training throughput: the trainer's DeepFM and DCN-v2 steps against the same models in PyTorch.

Times, on the same batches of the Criteo-like generator (``rocket.ctr.criteo_synth``: 13 numeric
fields through ``bucketize_log2``, 26 categorical fields hashed into ``min(Criteo cardinality,
--max_vocab)`` rows, 0 = missing), in one process, interleaved rounds:

* ``jax_deepfm`` -- ``method=light`` with ``light.kind=deepfm`` (``--deepfm_hidden``): FM + MLP over
  the 39 field embeddings, per-feature linear weights (``rocket.ctr.models.CTRRocketNet``; all 39
  fields' rows in one table, ``rocket.ctr.embeddings``);
* ``jax_dcnv2``  -- ``method=booster`` with ``booster.kind=mlp``, ``cross_layers`` (``--dcn_hidden``,
  ``--cross_layers``): the DCN-v2 booster of the CTR configs;
* ``torch_<model>`` -- the same model in PyTorch, written below (one ``nn.Embedding`` per field of
  the same rows and width, the same MLP widths and cross layers, Flax's initialisers), logistic
  loss, ``torch.optim.Adam`` (dense, as optax's: every table row is updated every step); with
  ``--torch_adam=fused``, or ``both``, also ``Adam(fused=True)``.

The JAX step is the one ``rocket.train.train_and_evaluate`` runs (``run_setup`` -> ``init_state`` on
``make_mesh()`` -> ``jax.jit(setup.train_step(...), donate_argnums=0)`` with the trainer's
shardings), config ``configs/ctr_frappe.py`` with ``dataset=criteo``, Adam lr 1e-3, no crosses.
Both frameworks cycle through ``--batches`` distinct batches (a single repeated batch would keep
its embedding rows in cache).

Also reported: XLA's FLOPs and bytes accessed per step, the analytic forward+backward FLOPs of the
dense layers, the bytes a dense Adam step streams over the parameters (7 passes of 4 bytes:
read p, g, m, v, write p, m, v; plus writing the dense embedding gradient) against a measured
memcpy bandwidth, and the peak RSS of each contender built and run alone in a fresh process
(``VmHWM``: what XLA's and PyTorch's allocators take from the OS, imports included, and the
RSS right before building the model, so the difference is the model, its optimiser state and
the step's buffers).

    python -m benchmarks.ctr_throughput                 # full measurement (~7 min on 2 cores)
    python -m benchmarks.ctr_throughput --quick         # seconds; smoke test
    python -m benchmarks.ctr_throughput --models=dcnv2 --max_vocab=1000000 --torch_adam=both
    # one core, one thread each, tcmalloc (what benchmarks/RESULTS.md section 11 compares):
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 taskset -c 1 \
        python -m benchmarks.ctr_throughput --torch_threads=1 --torch_adam=both --memory=off

Under glibc malloc every XLA step page-faults its fresh dense embedding gradients (a table's
zero-filled gradient buffer is mmap-ed and unmapped each step); tcmalloc keeps the pages, which
takes 20-25% off the JAX step and nothing off PyTorch's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.ctr_throughput ...")

from benchmarks import common  # noqa: E402

MODELS = ("deepfm", "dcnv2")
PROBE_PREFIX = "PROBE "


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


# --------------------------------------------------------------------------- data


def vocab_sizes(max_vocab: int) -> list[int]:
  """Rows of each field's table: 13 numeric bucket tables, then min(Criteo cardinality + 1, max_vocab)."""
  from rocket.ctr.criteo_synth import CAT_FIELDS, INT_FIELDS  # noqa: PLC0415
  from rocket.ctr.features import NUMERIC_VOCAB_SIZE  # noqa: PLC0415

  return [NUMERIC_VOCAB_SIZE] * len(INT_FIELDS) + [min(f.vocab + 1, max_vocab) for f in CAT_FIELDS]


def make_batches(num: int, batch_size: int, max_vocab: int, seed: int = 0):
  """``num`` batches of (int32 ids [B, 39], float32 labels [B]) from the generator's first rows."""
  import numpy as np  # noqa: PLC0415

  from rocket.ctr import hashing  # noqa: PLC0415
  from rocket.ctr.criteo_synth import CriteoSynth  # noqa: PLC0415
  from rocket.ctr.features import bucketize_log2  # noqa: PLC0415

  sizes = vocab_sizes(max_vocab)
  rows = CriteoSynth(seed).rows(0, num * batch_size)
  ni = rows.ints.shape[1]
  ids = np.empty((len(rows), len(sizes)), np.int32)
  ids[:, :ni] = bucketize_log2(rows.int_floats())
  for j in range(rows.ranks.shape[1]):  # 0 = missing; the hashing trick into the other rows
    r, v = rows.ranks[:, j], sizes[ni + j]
    ids[:, ni + j] = np.where(r > 0, 1 + hashing.hash_ids(r, v - 1, salt=j), 0)
  labels = rows.labels.astype(np.float32)
  return [(ids[i * batch_size:(i + 1) * batch_size], labels[i * batch_size:(i + 1) * batch_size])
          for i in range(num)], sizes


# --------------------------------------------------------------------------- JAX


def model_config(args, model: str):
  """The trainer's config of one timed net (``configs/ctr_frappe.py``, dataset criteo)."""
  if model == "deepfm":
    net = {"method": "light", "light.kind": "deepfm", "light.hidden": args.deepfm_hidden,
           "light.cross_layers": 0}
  else:
    net = {"method": "booster", "booster.kind": "mlp", "booster.hidden": args.dcn_hidden,
           "booster.cross_layers": args.cross_layers}
  return common.load_config("", path="configs/ctr_frappe.py", dataset="criteo", batch_size=args.batch_size,
                            **{"features.crosses": "", "embedding.dim": args.dim, "optim.name": "adam",
                               "optim.lr": 1e-3, **net})


def jax_setup(args, model: str, batches, sizes):
  """``(config, dataset, rocket.train.RunSetup)`` of one timed net, its training set the batches."""
  import numpy as np  # noqa: PLC0415

  from rocket import train  # noqa: PLC0415
  from rocket.ctr.data import CTRDataset, CTRSplit  # noqa: PLC0415
  from rocket.ctr.features import FieldSpec  # noqa: PLC0415

  config = model_config(args, model)
  train.validate_config(config)
  names = [f"I{i + 1}" for i in range(13)] + [f"C{i + 1}" for i in range(26)]
  fields = [FieldSpec(n, v, "item") for n, v in zip(names, sizes)]
  ids = np.concatenate([b[0] for b in batches])
  labels = np.concatenate([b[1] for b in batches])
  split = CTRSplit(ids, labels, np.zeros(len(labels), np.int64))
  ds = CTRDataset(name="criteo_synth", fields=fields, train=split, valid=None, test=split)
  return config, ds, train.run_setup(config, ds, steps_per_epoch=len(batches))


class JaxStep:
  """The trainer's jitted CTR step on device batches (cycled)."""

  def __init__(self, args, model: str, batches, sizes):
    import jax  # noqa: PLC0415
    from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415

    from rocket import input_pipeline, train  # noqa: PLC0415

    config, ds, setup = jax_setup(args, model, batches, sizes)
    mesh = train.make_mesh(config)
    data_sh, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    self.state = train.init_state(setup.model, setup.tx, setup.input_shape, config.seed, mesh,
                                  setup.input_dtype, setup.task.row_sharded)
    state_sh = train.state_shardings(self.state, mesh, setup.task.row_sharded)
    self.jitted = jax.jit(setup.train_step(config, ds), in_shardings=(state_sh, data_sh, data_sh, None),
                          out_shardings=(state_sh, replicated), donate_argnums=0)
    self.batches = [input_pipeline.global_batch(data_sh, i, y) for i, y in batches]
    t0 = time.perf_counter()
    self.compiled = self.jitted.lower(self.state, *self.batches[0], None).compile()
    self.compile_s = time.perf_counter() - t0
    self.cost = _cost(self.compiled)
    self.params = int(sum(x.size for x in jax.tree.leaves(self.state.params)))
    self.name, self.i, self.metrics = setup.model.nets[0], 0, None

  def run(self, n: int) -> None:
    for _ in range(n):
      ids, labels = self.batches[self.i % len(self.batches)]
      self.state, self.metrics = self.compiled(self.state, ids, labels, None)  # no retracing
      self.i += 1
    common.block((self.state, self.metrics))


def _cost(compiled) -> dict[str, float]:
  try:
    ca = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 -- not every backend implements it
    return {}
  ca = ca[0] if isinstance(ca, list) else ca
  return {k: float(ca[v]) for k, v in (("flops", "flops"), ("bytes", "bytes accessed")) if ca and v in ca}


# --------------------------------------------------------------------------- PyTorch


def make_torch_model(model: str, sizes, dim: int, hidden, cross_layers: int = 0):
  """DeepFM or DCN-v2 (MLP + cross layers in parallel) as rocket/ctr/models.py computes them."""
  import torch  # noqa: PLC0415
  from torch import nn  # noqa: PLC0415

  def dense(i, o):  # flax.linen.Dense: lecun_normal kernel, zero bias
    layer = nn.Linear(i, o)
    nn.init.trunc_normal_(layer.weight, std=math.sqrt(1.0 / i) / 0.87962566, a=-2 * math.sqrt(1.0 / i)
                          / 0.87962566, b=2 * math.sqrt(1.0 / i) / 0.87962566)
    nn.init.zeros_(layer.bias)
    return layer

  def tables(width):
    out = nn.ModuleList(nn.Embedding(v, width) for v in sizes)
    for t in out:
      nn.init.normal_(t.weight, std=0.01)
    return out

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      n_in = len(sizes) * dim
      self.emb = tables(dim)
      widths = [n_in, *hidden]
      self.mlp = nn.ModuleList(dense(a, b) for a, b in zip(widths[:-1], widths[1:]))
      self.cross = nn.ModuleList(dense(n_in, n_in) for _ in range(cross_layers))
      if model == "deepfm":
        self.linear = tables(1)
        self.bias = nn.Parameter(torch.zeros(()))
        self.out = dense(widths[-1], 1)
      else:
        self.out = dense(widths[-1] + (n_in if cross_layers else 0), 1)

    def forward(self, ids):
      emb = torch.stack([t(ids[:, f]) for f, t in enumerate(self.emb)], dim=1)  # [B, F, D]
      x0 = emb.flatten(1)
      h = x0
      for layer in self.mlp:
        h = torch.relu(layer(h))
      parts = [h]
      if self.cross:
        x = x0
        for layer in self.cross:
          x = x0 * layer(x) + x
        parts.append(x)
      z = self.out(torch.cat(parts, 1) if len(parts) > 1 else h)[:, 0]
      if model == "deepfm":
        w = torch.cat([t(ids[:, f]) for f, t in enumerate(self.linear)], dim=1)  # [B, F]
        fm = 0.5 * (emb.sum(1).square() - emb.square().sum(1)).sum(1)
        z = z + w.sum(1) + self.bias + fm
      return z

  return Net()


class TorchStep(common.TorchTrainStep):
  """One PyTorch training step (logistic loss, Adam) on cycled batches."""

  def __init__(self, model: str, batches, sizes, dim: int, hidden, cross_layers: int, adam: str = "default",
               lr: float = 1e-3, seed: int = 0):
    import torch  # noqa: PLC0415

    self.torch = torch
    torch.manual_seed(seed)
    self.model = make_torch_model(model, sizes, dim, hidden, cross_layers).train()
    kw = {"fused": True} if adam == "fused" else {}
    self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, **kw)
    self.batches = [(torch.from_numpy(i.astype("int64")), torch.from_numpy(y)) for i, y in batches]
    self.params = sum(p.numel() for p in self.model.parameters())
    self.i, self.loss = 0, None

  def inputs(self):
    self.i += 1
    return self.batches[(self.i - 1) % len(self.batches)]

  def loss_fn(self, logits, labels):
    return self.torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


# --------------------------------------------------------------------------- analytic costs


def hidden_of(args, model: str) -> tuple[int, ...]:
  spec = args.deepfm_hidden if model == "deepfm" else args.dcn_hidden
  return tuple(int(h) for h in spec.split(",") if h)


def dense_flops(args, model: str, num_fields: int) -> float:
  """Forward + backward (3x forward) FLOPs of the dense layers and the FM term, per batch."""
  n_in = num_fields * args.dim
  widths = (n_in, *hidden_of(args, model))
  macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
  if model == "deepfm":
    macs += widths[-1] + 2 * n_in
  else:
    macs += args.cross_layers * n_in * n_in + widths[-1] + (n_in if args.cross_layers else 0)
  return 3 * 2.0 * macs * args.batch_size


def adam_bytes(params: int) -> float:
  """Bytes a dense Adam step streams: read p, g, m, v and write p, m, v (float32), plus writing
  the dense gradient of every table."""
  return 8 * 4.0 * params


def memcpy_bytes_per_s(mb: int = 256, repeats: int = 5) -> float:
  """Measured copy bandwidth (bytes read + written per second) of numpy on this machine."""
  import numpy as np  # noqa: PLC0415

  a = np.ones(mb * 2**20 // 8)
  b = np.empty_like(a)
  np.copyto(b, a)
  best = math.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    np.copyto(b, a)
    best = min(best, time.perf_counter() - t0)
  return 2 * a.nbytes / best


# --------------------------------------------------------------------------- peak memory probes


def rss_mb(key: str = "VmRSS") -> float:
  """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MiB, from /proc/self/status.

  Not ``getrusage``'s ``ru_maxrss``: Linux carries it over ``fork`` + ``exec``, so a fresh
  subprocess would report its parent's peak when that was higher."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(key + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return float("nan")


def probe(args, contender: str) -> dict[str, Any]:
  """In this (fresh) process: build one contender, run warmup + steps, report its memory."""
  framework, model = contender.split("_", 1)
  batches, sizes = make_batches(args.batches, args.batch_size, args.max_vocab)
  if framework == "jax":
    import jax  # noqa: PLC0415

    jax.devices()
  else:
    import torch  # noqa: PLC0415

    torch.ones(1)
  before = rss_mb()
  if framework == "jax":
    step = JaxStep(args, model, batches, sizes)
  else:
    adam = "fused" if model.endswith("_fused") else "default"
    model = model.removesuffix("_fused")
    step = TorchStep(model, batches, sizes, args.dim, hidden_of(args, model), args.cross_layers
                     if model == "dcnv2" else 0, adam)
  step.run(args.warmup + args.steps)
  out = {"rss_before_build_mb": before, "peak_rss_mb": rss_mb("VmHWM"), "rss_end_mb": rss_mb()}
  if framework == "jax":
    stats = jax.devices()[0].memory_stats()
    if stats:
      out["jax_peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
  return out


def run_probe(argv: list[str], contender: str) -> dict[str, Any]:
  cmd = [sys.executable, "-m", "benchmarks.ctr_throughput", *argv, f"--probe={contender}"]
  res = subprocess.run(cmd, capture_output=True, text=True, cwd=common.ROOT, timeout=1800)
  lines = [ln for ln in res.stdout.splitlines() if ln.startswith(PROBE_PREFIX)]
  if res.returncode or not lines:
    return {"error": (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"rc {res.returncode}"]}
  return json.loads(lines[-1][len(PROBE_PREFIX):])


# --------------------------------------------------------------------------- main


def parse(argv):
  p = common.parser(__doc__)
  p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {MODELS}")
  p.add_argument("--batch_size", type=int, default=None, help="4096 (64 with --quick)")
  p.add_argument("--batches", type=int, default=None, help="distinct batches cycled (8; 2 with --quick)")
  p.add_argument("--max_vocab", type=int, default=None,
                 help="rows of a categorical field's table at most (100000; 1000 with --quick)")
  p.add_argument("--dim", type=int, default=None, help="embedding width (16; 4 with --quick)")
  p.add_argument("--deepfm_hidden", default=None, help="400,400,400 (16 with --quick)")
  p.add_argument("--dcn_hidden", default=None, help="512,256,128, the CTR booster (16 with --quick)")
  p.add_argument("--cross_layers", type=int, default=2)
  p.add_argument("--torch", default="auto", choices=("auto", "on", "off"),
                 help="time the PyTorch models too (auto: when torch is installed)")
  p.add_argument("--torch_adam", default="default", choices=("default", "fused", "both"),
                 help="torch.optim.Adam as is, with fused=True, or both")
  p.add_argument("--torch_threads", type=int, default=0, help=">0: torch.set_num_threads")
  p.add_argument("--memory", default="on", choices=("on", "off"),
                 help="peak RSS of each contender in a fresh process")
  p.add_argument("--probe", default="", help=argparse.SUPPRESS)  # internal: one memory probe
  args = p.parse_args(argv)
  common.fill_defaults(args, steps=5, repeats=7, warmup=3)
  q = args.quick
  for k, full, small in (("batch_size", 4096, 64), ("batches", 8, 2), ("max_vocab", 100_000, 1000),
                         ("dim", 16, 4), ("deepfm_hidden", "400,400,400", "16"),
                         ("dcn_hidden", "512,256,128", "16")):
    if getattr(args, k) is None:
      setattr(args, k, small if q else full)
  args.models = [m for m in args.models.split(",") if m]
  if set(args.models) - set(MODELS):
    p.error(f"unknown --models {sorted(set(args.models) - set(MODELS))}; choose from {MODELS}")
  if args.torch == "on" and not torch_available():
    p.error("--torch=on but torch is not installed (pip install torch)")
  return args


def main(argv=None) -> dict[str, Any]:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse(argv)
  common.set_xla_flags(args.xla_flags)
  if args.probe:
    print(PROBE_PREFIX + json.dumps(probe(args, args.probe)), flush=True)
    return {}
  return _main(args, [a for a in argv if not a.startswith("--json_out")])


def _main(args, argv) -> dict[str, Any]:
  info, warning = common.machine_header()
  batches, sizes = make_batches(args.batches, args.batch_size, args.max_vocab)
  use_torch = args.torch == "on" or (args.torch == "auto" and torch_available())
  adams = {"default": ["default"], "fused": ["fused"], "both": ["default", "fused"]}[args.torch_adam]
  print(f"# batch {args.batch_size} x {args.batches} distinct batches from rocket.ctr.criteo_synth, "
        f"{len(sizes)} fields, {sum(sizes):,} table rows (max_vocab {args.max_vocab:,}), dim {args.dim}, "
        f"deepfm {args.deepfm_hidden}, dcnv2 {args.dcn_hidden} + {args.cross_layers} cross, Adam; "
        f"{args.steps} steps x {args.repeats} rounds", flush=True)

  runners, steps = {}, {}
  for model in args.models:
    s = JaxStep(args, model, batches, sizes)
    print(f"# compiled jax_{model} in {s.compile_s:.1f}s ({s.params:,} params)", flush=True)
    runners[f"jax_{model}"], steps[f"jax_{model}"] = s.run, s
  if use_torch:
    import torch  # noqa: PLC0415

    if args.torch_threads > 0:
      torch.set_num_threads(args.torch_threads)
    for model in args.models:
      for adam in adams:
        name = f"torch_{model}" + ("_fused" if adam == "fused" else "")
        s = TorchStep(model, batches, sizes, args.dim, hidden_of(args, model),
                      args.cross_layers if model == "dcnv2" else 0, adam)
        runners[name], steps[name] = s.run, s

  for run in runners.values():  # compile caches, allocator pools, thread pools
    run(args.warmup)
  bandwidth = memcpy_bytes_per_s(32 if args.quick else 256)
  times = common.time_rounds(runners, args.steps, args.repeats)

  memory = {}
  if args.memory == "on":
    for name in runners:
      memory[name] = run_probe(argv, name)

  rows, by = [], {}
  for name, per_call in times.items():
    s, st = common.summary(per_call), steps[name]
    model = name.split("_")[1]
    row = {"name": name, "step_ms": 1e3 * s["median_s"], "min_ms": 1e3 * s["min_s"],
           "max_ms": 1e3 * s["max_s"],
           "examples_per_s": args.batch_size / s["median_s"], "params_M": st.params / 1e6,
           "dense_gflop_s": dense_flops(args, model, len(sizes)) / s["median_s"] / 1e9,
           "adam_gb_per_step": adam_bytes(st.params) / 1e9,
           "adam_at_memcpy_ms": 1e3 * adam_bytes(st.params) / bandwidth}
    if isinstance(st, JaxStep):
      row["compile_s"] = st.compile_s
      if "flops" in st.cost:
        row["xla_gflop"] = st.cost["flops"] / 1e9
      if "bytes" in st.cost:
        row["xla_gb"] = st.cost["bytes"] / 1e9
        row["xla_gb_s"] = st.cost["bytes"] / s["median_s"] / 1e9
    mem = memory.get(name, {})
    if "peak_rss_mb" in mem:
      row["peak_rss_mb"] = mem["peak_rss_mb"]
      row["model_rss_mb"] = mem["peak_rss_mb"] - mem["rss_before_build_mb"]
    rows.append(row)
    by[name] = row

  ratios = {}
  for model in args.models:
    for suffix in ("", "_fused"):
      if f"torch_{model}{suffix}" in by:
        ratios[f"jax_{model}/torch_{model}{suffix}"] = (
            by[f"jax_{model}"]["examples_per_s"] / by[f"torch_{model}{suffix}"]["examples_per_s"])
  cols = ["name", "step_ms", "min_ms", "max_ms", "examples_per_s", "params_M", "dense_gflop_s", "xla_gflop",
          "xla_gb", "xla_gb_s", "adam_gb_per_step", "adam_at_memcpy_ms", "compile_s", "peak_rss_mb",
          "model_rss_mb"]
  print(common.table(rows, cols))
  print(f"(dense_gflop_s: analytic forward+backward FLOPs of the MLP/cross/FM layers per step time; "
        f"xla_*: XLA cost analysis of the compiled step; adam_gb_per_step: 8 float32 passes over the "
        f"parameters (dense Adam), adam_at_memcpy_ms: that at the measured memcpy bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s; peak_rss_mb: VmHWM of the contender alone in a fresh process, "
        f"model_rss_mb: minus its RSS before building the model)")
  for k, v in ratios.items():
    print(f"examples/s ratio {k} = {v:.3f}")
  for name, mem in memory.items():
    if "error" in mem:
      print(f"(memory probe of {name} failed: {mem['error']})")
  if not use_torch:
    print("(PyTorch comparison skipped: " + ("--torch=off" if args.torch == "off" else
                                             "torch is not installed") + ")")
  return common.finish("ctr_throughput", info, warning, args.json_out, args=vars(args), rows=rows,
                       ratios=ratios, memory=memory, memcpy_bytes_per_s=bandwidth, table_rows=sum(sizes))


if __name__ == "__main__":
  main()
