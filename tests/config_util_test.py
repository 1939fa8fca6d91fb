"""rocket.config_util: config files for notebooks, tests and sweeps; entry points import cleanly."""

import json
import subprocess
import sys

import pytest

from rocket import config_util
from tests.conftest import ROOT


def test_load_config_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # "configs/..." resolves against the repository root
  c = config_util.load_config("configs/cifar10.py:tiny", method="light", **{"hint.weight": 0.25})
  assert c.method == "light" and c.hint.weight == 0.25
  assert c.dataset == "synthetic"  # the tiny preset
  full = config_util.load_config(str(ROOT / "configs" / "cifar10.py"))  # absolute, no preset
  assert full.dataset == "cifar10"
  ctr = config_util.load_config("configs/ctr_frappe.py:tiny")
  assert ctr.task == "ctr"


def test_bad_specs_say_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="configs/cifar10.py"):  # lists the config files
    config_util.load_config("configs/cifar_10.py")
  with pytest.raises(ValueError, match="no such config field"):
    config_util.load_config("configs/cifar10.py:tiny", **{"optim.learning_rate": 1})
  with pytest.raises(ValueError, match="no such config field"):
    config_util.load_config("configs/cifar10.py:tiny", **{"nope.x": 1})
  f = tmp_path / "not_a_config.py"
  f.write_text("X = 1\n")
  with pytest.raises(ValueError, match="get_config"):
    config_util.load_config(str(f))


def test_apply_overrides_copies():
  base = config_util.load_config("configs/cifar10.py:tiny")
  c = config_util.apply_overrides(base, {"method": "kd", "light.depth": 16})
  assert (c.method, c.light.depth) == ("kd", 16)
  assert (base.method, base.light.depth) != ("kd", 16)


def test_entry_points_define_flags_only_when_run():
  """rocket.main and rocket.sweep both have --config; importing both must not clash."""
  code = ("import rocket.main, rocket.sweep\nfrom absl import flags\n"
          "assert 'config' not in flags.FLAGS and 'workdir' not in flags.FLAGS, list(flags.FLAGS)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
  return out


@pytest.mark.parametrize("spec", ["configs/cifar10.py", "configs/ctr_frappe.py",
                                  "configs/ctr_movielens.py", "paper_repro/configs/paper.py"])
def test_every_config_file_starts_from_the_core_fields(spec):
  # the fields every task reads are defined once (config_util.core_config); a config file may
  # change their values but has every one of them
  core = _flat(config_util.core_config().to_dict())
  have = _flat(config_util.load_config(spec).to_dict())
  assert set(core) <= set(have), sorted(set(core) - set(have))
  if spec == "configs/cifar10.py":  # the core defaults are the image side's
    assert {k: have[k] for k in core} == core


def test_the_tuned_ctr_presets_are_the_committed_runs_settings():
  # paper_repro/results/ctr_frappe_tuned_wd was run with these flags, ctr_movielens_l2 with the preset
  for file, flags in (("configs/ctr_frappe.py", {"features.cross_buckets": 0, "num_epochs": 15,
                                                 "select.patience": 6, "optim.weight_decay": 1e-4}),
                      ("configs/ctr_movielens.py", {"features.cross_buckets": 0, "num_epochs": 20,
                                                    "select.patience": 8, "features.crosses": "",
                                                    "embedding.l2": 1e-2})):
    assert config_util.load_config(f"{file}:tuned") == config_util.load_config(file, **flags)
  runs = json.loads((ROOT / "paper_repro/results/ctr_movielens_l2/runs.json").read_text())
  committed = next(iter(runs[0]["seeds"].values()))["config"]
  preset = config_util.load_config("configs/ctr_movielens.py:tuned").to_dict()
  for key in ("features", "embedding", "num_epochs", "select", "optim", "batch_size"):
    want = json.loads(json.dumps(preset[key]))
    if isinstance(want, dict):  # fields added since those runs keep their defaults
      added = {k: want.pop(k) for k in set(want) - set(committed[key])}
      assert added in ({}, {"booster_lr_scale": 1.0}, {"detach_booster_after": 0}), (key, added)
    assert committed[key] == want, key
