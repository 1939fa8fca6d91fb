"""The command line, end to end, in subprocesses."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(tmp_path, *flags, config="configs/cifar10.py:tiny"):
  cmd = [sys.executable, "-m", "rocket.main", f"--config={config}",
         f"--workdir={tmp_path / 'wd'}", *flags]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_end_to_end_writes_metrics(tmp_path):
  r = run_cli(tmp_path, "--config.num_train_steps=6", "--config.eval_every_steps=3",
              "--config.synthetic.image_size=16", "--config.synthetic.num_train=64",
              "--config.batch_size=16", "--config.seed=3")
  assert r.returncode == 0, r.stderr[-3000:]
  lines = (tmp_path / "wd" / "metrics.jsonl").read_text().splitlines()
  recs = [json.loads(x) for x in lines]
  assert [x["step"] for x in recs] == [3, 6]
  assert {"test/light_accuracy", "test/booster_accuracy", "train/hint"} <= set(recs[-1])
  config = json.loads((tmp_path / "wd" / "config.json").read_text())
  assert config["seed"] == 3 and config["synthetic"]["image_size"] == 16
  assert (tmp_path / "wd" / "checkpoints" / "6").is_dir()
  final = json.loads(r.stdout)
  assert final["step"] == 6 and "test/light_accuracy" in final


def test_cli_unknown_method(tmp_path):
  r = run_cli(tmp_path, "--config.method=distill")
  assert r.returncode == 2
  assert "unknown method 'distill'" in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_depth(tmp_path):
  r = run_cli(tmp_path, "--config.light.depth=12")
  assert r.returncode == 2 and "6n+4" in r.stderr and "Traceback" not in r.stderr


def test_cli_missing_data_dir(tmp_path):
  r = run_cli(tmp_path, "--config.dataset=cifar10", f"--config.data_dir={tmp_path / 'nope'}")
  assert r.returncode == 1
  assert "CIFAR-10 not found" in r.stderr and "--config.data_dir" in r.stderr
  assert "Traceback" not in r.stderr


def test_cli_unknown_field(tmp_path):
  r = run_cli(tmp_path, "--config.learning_rate=0.1")
  assert r.returncode != 0 and "learning_rate" in r.stderr


def test_cli_config_errors_are_one_line_exit_2(tmp_path):
  cases = {
      "--config.hint.wieght=1": 'did you mean "weight"',
      "--config.batch_size=abc": "invalid literal for int()",
      "--config.share=group_bottom": "use share='interval'",
      "--config.optim.lr=0": "config.optim.lr must be > 0",
      "--config.num_train_steps=-5": "config.num_train_steps must be >= 0",
      "--config.hint.weight=-1": "config.hint.weight must be >= 0",
  }
  for flag, message in cases.items():
    r = run_cli(tmp_path, flag)
    assert r.returncode == 2, (flag, r.stderr[-2000:])
    assert message in r.stderr and "Traceback" not in r.stderr, (flag, r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1, (flag, r.stderr)
  r = run_cli(tmp_path, config="configs/nonexist.py")
  assert r.returncode == 2 and "No such file" in r.stderr and "Traceback" not in r.stderr
