"""The console scripts pyproject.toml declares are installed and start (CI installs the package
with pip, as a user does)."""

import shutil
import subprocess
import tomllib

import pytest
from conftest import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_tool_has_a_console_script():
  assert set(SCRIPTS) == {"rocket-train", "rocket-sweep", "rocket-report", "rocket-export",
                          "rocket-compression-report"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_runs(name):
  path = shutil.which(name)
  assert path, f"{name} is not on PATH: install the package (pip install -e .) to get it"
  res = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
  assert res.returncode in (0, 1), res.stderr[-2000:]  # absl's --help exits with 1
  assert f"USAGE: {path}" in res.stdout + res.stderr
