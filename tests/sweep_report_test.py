import json
import os
import subprocess
import sys

import pytest

from rocket import report, sweep
from tests.conftest import ROOT, load_config

SWEEP = '''
def get_sweep():
  return dict(seeds=(0, 1), runs=[
      dict(name="light", overrides={"method": "light"}),
      dict(name="kd", overrides={"method": "kd", "kd.alpha": 0.5}, teacher="booster"),
      dict(name="booster", overrides={"method": "booster"}),
  ])
'''


def test_plan_puts_teachers_first_and_expands_seeds(tmp_path):
  f = tmp_path / "s.py"
  f.write_text(SWEEP)
  s = sweep.load_sweep(str(f))
  order = [(r["name"], r["seed"]) for r in sweep.plan(s, (0, 1), None)]
  assert order == [("light", 0), ("booster", 0), ("kd", 0), ("light", 1), ("booster", 1), ("kd", 1)]
  only = [(r["name"], r["seed"]) for r in sweep.plan(s, (3,), ["kd"])]
  assert only == [("booster", 3), ("kd", 3)]


def test_bad_sweep_files(tmp_path):
  f = tmp_path / "s.py"
  f.write_text("def get_sweep():\n  return dict(runs=[dict(name='a', teacher='b')])\n")
  with pytest.raises(ValueError, match="teacher 'b'"):
    sweep.load_sweep(str(f))
  with pytest.raises(ValueError, match="not found"):
    sweep.load_sweep(str(tmp_path / "missing.py"))
  with pytest.raises(ValueError, match="no such config field"):
    sweep.apply_overrides(load_config("tiny"), {"optim.learning_rate": 1})


def test_sweep_end_to_end_then_report(tmp_path):
  f = tmp_path / "s.py"
  f.write_text(SWEEP)
  cmd = [sys.executable, "-m", "rocket.sweep", "--config=configs/cifar10.py:tiny",
         f"--sweep={f}", f"--workdir={tmp_path / 'sw'}", "--config.num_train_steps=4",
         "--config.eval_every_steps=2", "--config.synthetic.image_size=16", "--seeds=0,1"]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  for name in ("light", "booster", "kd"):
    for s in (0, 1):
      assert (tmp_path / "sw" / name / f"seed{s}" / "final.json").is_file()
  # kd used the sweep's booster run as its teacher, and trained no teacher of its own
  kd_cfg = json.loads((tmp_path / "sw" / "kd" / "seed1" / "config.json").read_text())
  assert kd_cfg["teacher_workdir"].endswith("booster/seed1") and kd_cfg["kd"]["alpha"] == 0.5
  assert not (tmp_path / "sw" / "kd" / "seed1" / "teacher").exists()
  # rerunning skips every finished run
  r2 = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r2.returncode == 0 and r2.stdout.count("skipped") == 6

  table = report.write_report(tmp_path / "sw", tmp_path / "out", "Test sweep", "tiny budget")
  lines = [x for x in table.splitlines() if x.startswith("| ")]
  assert [x.split("|")[1].strip() for x in lines] == ["run", "light", "kd", "booster"]
  kd_row = next(x for x in lines if x.startswith("| kd "))
  assert "±" in kd_row and "†" in kd_row  # two seeds; teacher's error marked
  assert (tmp_path / "out" / "curves.png").stat().st_size > 1000
  runs = json.loads((tmp_path / "out" / "runs.json").read_text())
  assert [r["name"] for r in runs] == ["light", "kd", "booster"]
  assert set(runs[0]["seeds"]) == {"0", "1"}
  # a run of the plan with no finished seed (e.g. left out by --only) is listed under the table
  plan = json.loads((tmp_path / "sw" / "sweep.json").read_text())
  plan["runs"].append({"name": "never", "overrides": {"method": "rocket"}})
  (tmp_path / "sw" / "sweep.json").write_text(json.dumps(plan))
  table = report.write_report(tmp_path / "sw", tmp_path / "out2", "Test sweep")
  assert not any(x.startswith("| never ") for x in table.splitlines())
  assert "Not run (no finished seed in this sweep): never." in table


def test_report_mean_std():
  assert report.mean_std([1.0, 3.0]) == "2.00 ± 1.41"
  assert report.mean_std([2.0]) == "2.00"
  assert report.mean_std([]) == "–"
