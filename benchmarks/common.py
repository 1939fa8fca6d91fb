"""Helpers shared by the benchmarks: configs, the trainer's own jitted step, timing, machine facts.

Every benchmark builds its JAX train step exactly as ``rocket.train.train_and_evaluate``
does (``build_model`` -> ``create_optimizer`` -> ``init_state`` on ``make_mesh()`` ->
``jax.jit(make_train_step(...), donate_argnums=0)``), so what is timed is the code a
training run executes, on-device augmentation and normalisation included.

Times are medians over interleaved rounds: every round runs each contender once
(``steps`` calls, then ``block_until_ready``), so slow drifts of the machine hit all
contenders alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]

# CIFAR-10 per-channel statistics (in [0, 1]); only their shape matters for timing.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# --------------------------------------------------------------------------- flags / setup


def jax_started() -> bool:
  """True once a JAX backend exists (XLA_FLAGS are read when the first one starts)."""
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # noqa: PLC0415
  except ImportError:  # pragma: no cover -- layout of a future jax
    return True
  return bool(getattr(xla_bridge, "_backends", {}))


def set_xla_flags(flags: str) -> None:
  """Appends ``flags`` to ``XLA_FLAGS``; must run before JAX starts its backend."""
  if not flags:
    return
  if jax_started():
    raise RuntimeError(f"--xla_flags={flags!r} must be set before JAX starts; run the benchmark in a "
                       "fresh process (python benchmarks/<name>.py --xla_flags=...)")
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


def parser(doc: str, *, common_flags: bool = True) -> argparse.ArgumentParser:
  """A benchmark's argument parser: its docstring's first paragraph as the description and, unless
  ``common_flags=False``, the flags every timing benchmark shares (``add_common_flags``)."""
  p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  if common_flags:
    add_common_flags(p)
  return p


def add_common_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--quick", action="store_true", help="tiny nets, batch and step counts (smoke test)")
  p.add_argument("--steps", type=int, default=None, help="train steps per timed round")
  p.add_argument("--repeats", type=int, default=None, help="timed rounds; the median is reported")
  p.add_argument("--warmup", type=int, default=None, help="untimed steps after compiling")
  p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS (fresh process only)")
  p.add_argument("--json_out", default="", help="also write the results as JSON here")


def fill_defaults(args, *, steps: int, repeats: int, warmup: int, quick=(2, 2, 1)) -> None:
  """Sets unset step/repeat/warmup counts: the ``quick`` triple under --quick."""
  d = dict(zip(("steps", "repeats", "warmup"), quick if args.quick else (steps, repeats, warmup)))
  for k, v in d.items():
    if getattr(args, k) is None:
      setattr(args, k, v)


def load_config(preset: str = "", path: str = "configs/cifar10.py", **overrides):
  """A config file (default ``configs/cifar10.py``, relative to the repo) with a preset and
  dotted-key overrides (``optim.lr=0.1``): ``rocket.config_util.load_config``."""
  from rocket.config_util import load_config as load  # noqa: PLC0415

  return load(f"{path}:{preset}", **overrides)


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return None


def cpu_busy_fraction(seconds: float = 1.0) -> float | None:
  """Fraction of all cores busy (any process) over ``seconds``, from /proc/stat; None elsewhere."""
  def read():
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait

  try:
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
  except (OSError, ValueError, IndexError):
    return None
  return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def machine_info() -> dict[str, Any]:
  """Facts to print beside every figure (and to paste into RESULTS.md)."""
  import jax  # noqa: PLC0415

  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # pragma: no cover -- not Linux
    cores = os.cpu_count()
  return {
      "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
      "cpu": cpu_model(),
      "cores": cores,
      "load_avg_1m": round(os.getloadavg()[0], 2),
      "cpu_busy_before_start": _round(cpu_busy_fraction()),
      "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jaxlib": _version("jaxlib"),
      "flax": _version("flax"),
      "optax": _version("optax"),
      "torch": _version("torch"),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
  }


def _round(x, n=2):
  return None if x is None else round(x, n)


def print_machine(info: dict[str, Any]) -> None:
  print("# " + "  ".join(f"{k}={v}" for k, v in info.items() if v not in (None, "")), flush=True)


def machine_header() -> tuple[dict[str, Any], str | None]:
  """Machine facts, printed as the first line of a benchmark's output, and the busy warning
  (None when the CPU was idle) that the benchmark prints again at the end and keeps in its JSON."""
  info = machine_info()
  print_machine(info)
  return info, busy_warning(info)


def busy_warning(info: dict[str, Any]) -> str | None:
  """A note when other work kept the cores busy just before the benchmark started."""
  busy = info.get("cpu_busy_before_start")
  if busy is not None and busy > 0.2:
    return (f"{100 * busy:.0f}% of the CPU was busy in the second before the start (1-minute load "
            f"average {info['load_avg_1m']} on {info['cores']} cores): other work was running, "
            "timings are not representative")
  return None


# --------------------------------------------------------------------------- timing


def block(tree) -> None:
  import jax  # noqa: PLC0415

  jax.block_until_ready(tree)


def time_rounds(runners: dict[str, Callable[[int], None]], steps: int, repeats: int,
                pause_s: float = 0.1) -> dict[str, list[float]]:
  """Seconds per call of each runner: ``repeats`` interleaved rounds of ``steps`` calls.

  ``runner(n)`` must do ``n`` calls and return only once their results exist.
  """
  out: dict[str, list[float]] = {k: [] for k in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      if pause_s:
        time.sleep(pause_s)
      t0 = time.perf_counter()
      run(steps)
      out[name].append((time.perf_counter() - t0) / steps)
  return out


def summary(per_call: list[float]) -> dict[str, float]:
  return {"median_s": statistics.median(per_call), "min_s": min(per_call), "max_s": max(per_call),
          "rounds": len(per_call)}


def write_json(path: str, payload: dict[str, Any]) -> None:
  if path:
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text(json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")


def finish(benchmark: str, info: dict[str, Any], warning: str | None, json_out: str,
           **fields: Any) -> dict[str, Any]:
  """Prints the busy warning again (last, where it is seen), writes the JSON, returns the result."""
  if warning:
    print("WARNING: " + warning)
  result = {"benchmark": benchmark, "machine": info, "warning": warning, **fields}
  write_json(json_out, result)
  return result


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
  """A GitHub-flavoured markdown table of ``rows`` (floats get 4 significant digits)."""
  def fmt(v):
    if isinstance(v, float):
      return f"{v:.4g}"
    return "" if v is None else str(v)

  lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
  lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
  return "\n".join(lines)


# --------------------------------------------------------------------------- the JAX step


def flops_of(compiled) -> float | None:
  """FLOPs of one call from XLA's cost analysis (a dict, or a list of per-module dicts)."""
  try:
    ca = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 -- not every backend implements it
    return None
  if ca is None:
    return None
  if isinstance(ca, dict):
    ca = [ca]
  total = [float(d["flops"]) for d in ca if d and "flops" in d]
  return sum(total) if total else None


@dataclasses.dataclass
class StepBench:
  """One compiled train step with its state and a fixed device batch."""

  name: str
  config: Any
  jitted: Callable
  state: Any
  images: Any
  labels: Any
  flops: float | None
  compile_s: float
  batch_size: int
  compiled: Any = None  # the executable jitted() runs (``.as_text()`` is its optimised HLO)

  def run(self, n: int) -> None:
    m = None
    for _ in range(n):
      self.state, m = self.jitted(self.state, self.images, self.labels, None)
    block((self.state, m))


def build_step(name: str, config, *, num_classes: int = 10, image_shape=(32, 32, 3),
               donate: bool = True, mean=CIFAR_MEAN, std=CIFAR_STD, data=None,
               steps_per_epoch: int | None = None) -> StepBench:
  """Compiles the trainer's train step for ``config`` on a random uint8 batch.

  ``data``: optional ``(images_u8, labels)`` host arrays to take the batch from.
  """
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415

  from rocket import input_pipeline, train  # noqa: PLC0415
  from rocket.data import Dataset  # noqa: PLC0415

  train.validate_config(config)
  b = config.batch_size
  if data is None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(b, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=(b,)).astype(np.int32)
  else:
    images, labels = data[0][:b], data[1][:b]
  # the trainer's own assembly (train.run_setup), on a dataset holding this one batch
  ds = Dataset("benchmark", images, labels, images, labels, num_classes,
               np.asarray(mean, np.float32), np.asarray(std, np.float32))
  setup = train.run_setup(config, ds, steps_per_epoch=steps_per_epoch or max(1, 50000 // b))
  mesh = train.make_mesh()
  data_sharding = NamedSharding(mesh, P("data"))
  state = train.init_state(setup.model, setup.tx, setup.input_shape, config.seed, mesh)
  fn = setup.train_step(config, ds)
  jitted = jax.jit(fn, donate_argnums=0) if donate else jax.jit(fn)
  images, labels = input_pipeline.global_batch(data_sharding, images, labels)
  t0 = time.perf_counter()
  compiled = jitted.lower(state, images, labels, None).compile()  # jitted() reuses this executable
  compile_s = time.perf_counter() - t0
  return StepBench(name, config, jitted, state, images, labels, flops_of(compiled), compile_s, b,
                   compiled)


def warm(benches, n: int) -> None:
  for bench in benches:
    bench.run(max(n, 1))


class TorchTrainStep:
  """A PyTorch contender: ``step()`` = forward on ``inputs()``, ``loss_fn``, backward, optimiser
  step (``self.model``, ``self.opt``); ``run(n)``: n steps; ``loss``: the last one, detached."""

  loss = None

  def inputs(self):
    """``(x, y)`` of the next step."""
    raise NotImplementedError

  def loss_fn(self, outputs, y):
    raise NotImplementedError

  def step(self):
    x, y = self.inputs()
    loss = self.loss_fn(self.model(x), y)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    self.loss = loss.detach()

  def run(self, n: int) -> None:
    for _ in range(n):
      self.step()


def matmul_flops_per_s(n: int = 2048, steps: int = 5, repeats: int = 3) -> float:
  """Measured float32 matmul FLOP/s of JAX on this machine (a proxy for the peak)."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  mm = jax.jit(jnp.matmul)
  block(mm(a, b))

  def run(k):
    out = None
    for _ in range(k):
      out = mm(a, b)
    block(out)

  t = statistics.median(time_rounds({"mm": run}, steps, repeats, pause_s=0)["mm"])
  return 2.0 * n**3 / t
