r"""Command-line entry point.

    python -m rocket.main --config=configs/cifar10.py --workdir=/tmp/rocket_run \
        [--config.method=light] [--config.num_epochs=30] ...

Rerunning the same command resumes from the workdir's latest checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
import types

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
_F = types.SimpleNamespace()  # the flag holders, once define_flags() has run


def define_flags() -> types.SimpleNamespace:
  """Defines the command-line flags. Only the program does this (``python -m rocket.main``), so
  importing ``rocket.main`` (for ``set_cpu_devices`` or ``init_distributed``) defines no flags and
  cannot clash with another module's ``--config``."""
  if vars(_F):
    return _F
  _F.config = config_flags.DEFINE_config_file(
      "config", None, "Path to a config file (e.g. configs/cifar10.py[:preset]).",
      lock_config=True)
  _F.workdir = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")
  _F.coordinator_address = flags.DEFINE_string(
      "coordinator_address", os.environ.get("ROCKET_COORDINATOR_ADDRESS", ""),
      "Multi-host: host:port of process 0 (env ROCKET_COORDINATOR_ADDRESS). Empty: one process, "
      "unless --distributed=auto.")
  _F.num_processes = flags.DEFINE_integer(
      "num_processes", int(os.environ.get("ROCKET_NUM_PROCESSES", "1")),
      "Multi-host: number of processes (env ROCKET_NUM_PROCESSES).")
  _F.process_id = flags.DEFINE_integer(
      "process_id", int(os.environ.get("ROCKET_PROCESS_ID", "0")),
      "Multi-host: this process's index (env ROCKET_PROCESS_ID).")
  _F.distributed = flags.DEFINE_enum(
      "distributed", "flags", ["flags", "auto"],
      "auto: let jax.distributed.initialize() detect the cluster (TPU pods, SLURM, Kubernetes); "
      "flags: use the three flags above.")
  _F.cpu_devices = flags.DEFINE_integer(
      "cpu_devices", -1,
      "Split the CPU into this many XLA host devices (data parallel over cores: ~1.4x faster train "
      "steps on 2 cores, see benchmarks/RESULTS.md). -1 = auto (image configs): the largest count <= "
      "the usable cores that divides config.batch_size; 1 = off. Ignored when XLA_FLAGS already sets "
      "the device count; it does not change which devices a GPU/TPU machine trains on.")
  flags.mark_flags_as_required(["config", "workdir"])
  return _F


def set_cpu_devices(requested: int, batch_size: int) -> int:
  """Adds ``--xla_force_host_platform_device_count`` to ``XLA_FLAGS`` before JAX starts.

  XLA:CPU runs one convolution on all cores poorly; one host device per core, with the
  global batch split over them (the normal data-parallel path), uses the cores better.
  Returns the count set (0 if XLA_FLAGS already had one or nothing was changed).
  """
  xla = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in xla or requested == 1:
    return 0
  if requested <= 0:
    try:
      cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
      cores = os.cpu_count() or 1
    requested = max(n for n in range(1, cores + 1) if batch_size % n == 0)
  if requested > 1:
    os.environ["XLA_FLAGS"] = f"{xla} --xla_force_host_platform_device_count={requested}".strip()
    return requested
  return 0


def init_distributed(coordinator_address: str, num_processes: int, process_id: int,
                     mode: str = "flags") -> None:
  """Starts ``jax.distributed`` before anything else touches JAX (no-op for one process).

  On CPU the cross-process collectives use Gloo (``jax_cpu_collectives_implementation``),
  which JAX needs set explicitly; GPUs and TPUs use their own (NCCL / ICI).
  """
  import jax  # noqa: PLC0415

  if mode == "auto":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
    return
  if num_processes <= 1 and not coordinator_address:
    return
  if not coordinator_address or not 0 <= process_id < num_processes:
    raise app.UsageError(
        f"multi-host needs --coordinator_address=host:port, --num_processes>1 and 0 <= --process_id < "
        f"num_processes (got {coordinator_address!r}, {num_processes}, {process_id})")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cpu_devices = _F.cpu_devices.value
  if cpu_devices == -1 and _F.config.value.get("task", "image") != "image":
    cpu_devices = 1  # auto is for the conv nets; the small CTR steps were not measured to gain
  set_cpu_devices(cpu_devices, int(_F.config.value.batch_size))
  init_distributed(_F.coordinator_address.value, _F.num_processes.value, _F.process_id.value,
                   _F.distributed.value)
  from rocket import checkpoint, train  # after flag parsing: JAX starts here
  from rocket.config_util import ConfigError
  from rocket.data import DatasetError

  if not FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    result = train.train_with_teacher(_F.config.value, _F.workdir.value)
  except ConfigError as e:  # bad config values (any other exception is a bug: traceback)
    print(f"rocket: invalid config: {e}", file=sys.stderr)
    sys.exit(2)
  except (DatasetError, checkpoint.CheckpointError, train.NonFiniteLossError, train.RunInUse) as e:
    print(f"rocket: {e}", file=sys.stderr)
    sys.exit(1)
  except train.Interrupted as e:
    print(f"rocket: {e}", file=sys.stderr)
    sys.exit(130)
  import jax  # noqa: PLC0415

  if jax.process_index() == 0:
    print(json.dumps(result, indent=1, sort_keys=True))


def run() -> None:
  """The console script ``rocket-train`` (the same as ``python -m rocket.main``)."""
  from rocket.cli import parse_flags  # noqa: PLC0415

  define_flags()
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
