import os
import pathlib
import tempfile
import sys

import pytest

# Identical programs (the same tiny model in many tests, and in the CLI
# subprocesses) compile once per session.
CACHE = pathlib.Path(os.environ.get("ROCKET_TEST_JAX_CACHE", tempfile.gettempdir())) / "rocket_test_jax_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_config(arg="tiny", file="cifar10.py", **overrides):
  """configs/<file> (default cifar10.py) with a preset and dotted-key overrides."""
  from rocket.config_util import load_config as load  # noqa: PLC0415

  return load(f"configs/{file}:{arg}", **overrides)


@pytest.fixture
def tiny_config():
  return load_config
