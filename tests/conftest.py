import os
import pathlib
import tempfile

import pytest

# Identical programs (the same tiny model in many tests, and in the CLI
# subprocesses) compile once per session.
CACHE = pathlib.Path(os.environ.get("ROCKET_TEST_JAX_CACHE", tempfile.gettempdir())) / "rocket_test_jax_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

ROOT = pathlib.Path(__file__).resolve().parents[1]


# Whole files of subprocesses, notebooks and benchmarks, and single tests that train for many
# steps: `python -m pytest -q -m "not slow"` is the fast lane; CI runs everything.
SLOW_FILES = {"main_test.py", "multidevice_test.py", "notebooks_test.py", "bench_quick_test.py",
              "benchmarks_test.py", "sweep_report_test.py", "ctr_report_test.py",
              "cli_scripts_test.py"}
SLOW_TESTS = {"test_sigterm_checkpoints_and_resume_is_bit_for_bit",
              "test_sigterm_during_an_evaluation_stops_cleanly_and_resumes_exactly",
              "test_teacher_is_reused_not_retrained",
              "test_frappe_end_to_end_from_the_command_line", "test_non_finite_after_a_checkpoint_keeps_it",
              "test_rerunning_a_finished_run_does_not_train_again", "test_each_method_trains",
              "test_incompatible_checkpoint_is_reported_and_kept", "test_training_lowers_the_loss",
              "test_corrupt_checkpoint_is_reported_and_kept"}


def pytest_collection_modifyitems(items):
  for item in items:
    if item.path.name in SLOW_FILES or item.originalname in SLOW_TESTS:
      item.add_marker(pytest.mark.slow)


def load_config(arg="tiny", file="cifar10.py", **overrides):
  """configs/<file> (default cifar10.py) with a preset and dotted-key overrides."""
  from rocket.config_util import load_config as load  # noqa: PLC0415

  return load(f"configs/{file}:{arg}", **overrides)


@pytest.fixture
def tiny_config():
  return load_config
