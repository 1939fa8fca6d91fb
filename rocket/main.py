r"""Command-line entry point.

    python -m rocket.main --config=configs/cifar10.py --workdir=/tmp/rocket_run \
        [--config.method=light] [--config.num_epochs=30] ...

Rerunning the same command resumes from the workdir's latest checkpoint.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (e.g. configs/cifar10.py[:preset]).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from rocket import checkpoint, train  # after flag parsing: JAX starts here
  from rocket.data import DatasetError

  if not FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ValueError as e:  # bad config values
    print(f"rocket: invalid config: {e}", file=sys.stderr)
    sys.exit(2)
  except (DatasetError, checkpoint.CheckpointError, train.NonFiniteLossError) as e:
    print(f"rocket: {e}", file=sys.stderr)
    sys.exit(1)
  except train.Interrupted as e:
    print(f"rocket: {e}", file=sys.stderr)
    sys.exit(130)
  print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
  app.run(main)
