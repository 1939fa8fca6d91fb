"""paper_repro/gpu_campaign.py end to end on CPU with tiny budgets, as it will run on a GPU."""

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SWEEP = '''
PAIR = {"light.depth": 10, "booster.depth": 10, "share": "interval", "data_seed": 0,
        "batch_size": 64, "num_train_steps": 24, "eval_every_steps": 16, "eval_batch_size": 100,
        "synthetic.image_size": 16}

def get_sweep():
  return {"runs": [dict(name="p__light", overrides={**PAIR, "method": "light"}),
                   dict(name="p__rocket", overrides={**PAIR, "method": "rocket"}),
                   dict(name="p__booster", overrides={**PAIR, "method": "booster"}),
                   dict(name="p__kd", overrides={**PAIR, "method": "kd"}, teacher="p__booster")]}
'''


def campaign(tmp_path, *args, runs="p__light,p__rocket"):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "paper_repro.gpu_campaign", "--config=configs/cifar10.py:tiny",
       f"--sweep={tmp_path / 'sweep.py'}", f"--runs={runs}", "--seeds=0,1", *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_campaign_finishes_runs_packs_them_and_skips_them_next_window(tmp_path):
  (tmp_path / "sweep.py").write_text(SWEEP)
  wd, out = tmp_path / "wd", tmp_path / "out"
  r = campaign(tmp_path, "--budget_s=400", f"--workdir={wd}", f"--out={out}")
  assert r.returncode == 0, r.stdout + r.stderr
  summary = json.loads((out / "campaign.json").read_text())
  assert summary["runs"]["p__rocket"] == {"seeds": [0, 1], "epochs": 3, "of": 3, "finished": True}
  assert summary["run_axis"] in ("vmap", "unrolled") and set(summary["probe_s_per_step"]) == {
      "vmap", "unrolled"}
  assert summary["train_images_per_s"] > 0 and summary["device"].endswith("cpu")
  got = tmp_path / "got"
  with tarfile.open(out / "results.tar.gz") as tar:
    names = tar.getnames()
    tar.extractall(got, filter="data")
  assert "p__rocket/seed1/final.json" in names and not any("checkpoints" in n for n in names)
  final = json.loads((got / "p__light/seed0/final.json").read_text())
  assert final["stacked"] == 2 and final["step"] == 24
  # rocket.report reads the unpacked sweep layout as it reads rocket.sweep's
  from rocket import report
  rows = report.collect(got)
  assert [len(r["seeds"]) for r in rows] == [2, 2]
  # the next window skips what is finished
  r = campaign(tmp_path, "--budget_s=400", f"--workdir={tmp_path / 'wd2'}",
               f"--out={tmp_path / 'out2'}", f"--results={got}")
  assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_campaign_stops_checkpointed_and_the_next_window_resumes_from_what_came_back(tmp_path):
  (tmp_path / "sweep.py").write_text(SWEEP)
  wd, out = tmp_path / "wd", tmp_path / "out"
  r = campaign(tmp_path, "--budget_s=400", "--max_epochs=1", "--run_axis=unrolled",
               f"--workdir={wd}", f"--out={out}")
  assert r.returncode == 0, r.stdout + r.stderr
  summary = json.loads((out / "campaign.json").read_text())
  assert summary["stopped_at_deadline"] and summary["runs"]["p__light"]["epochs"] == 1
  assert not (wd / "p__light/seed0/final.json").exists()
  with tarfile.open(out / "resume_p__rocket.tar") as tar:  # what a bare next machine needs
    names = tar.getnames()
  assert "p__rocket/seed1/checkpoints/8" in names and "p__rocket/seed1/config.json" in names
  # next window: a fresh workdir, only what came back, and only seed 1 was started
  (out / "resume_p__light.tar").unlink()
  r = campaign(tmp_path, "--budget_s=400", "--run_axis=unrolled", f"--workdir={tmp_path / 'wd2'}",
               f"--out={tmp_path / 'out2'}", f"--resume_from={out}", "--seeds=1,2")
  assert r.returncode == 0, r.stdout + r.stderr
  summary = json.loads((tmp_path / "out2/campaign.json").read_text())
  # the rocket run continues seed 1 only; the light run (nothing to resume) starts seeds 1 and 2
  assert summary["planned"] == {"p__light": [1, 2], "p__rocket": [1]}
  assert summary["runs"]["p__rocket"]["finished"]
  final = json.loads((tmp_path / "wd2/p__rocket/seed1/final.json").read_text())
  assert final["step"] == 24
  steps = [json.loads(x)["step"] for x in
           (tmp_path / "wd2/p__rocket/seed1/metrics.jsonl").read_text().splitlines()]
  assert steps == [16, 24]


def test_a_run_without_its_teacher_is_skipped_with_what_to_pass(tmp_path):
  (tmp_path / "sweep.py").write_text(SWEEP)
  r = campaign(tmp_path, f"--workdir={tmp_path / 'wd'}", runs="p__kd")
  assert r.returncode == 0, r.stdout + r.stderr
  assert "its teacher p__booster has no finished run here for seeds [0, 1]" in r.stdout
  assert "--teachers_from" in r.stdout and "nothing to do" in r.stdout


@pytest.mark.slow
def test_a_finished_teacher_comes_back_and_the_next_window_trains_its_students(tmp_path):
  (tmp_path / "sweep.py").write_text(SWEEP)
  out = tmp_path / "out"
  r = campaign(tmp_path, "--budget_s=400", "--run_axis=unrolled", f"--workdir={tmp_path / 'wd'}",
               f"--out={out}", runs="p__booster")
  assert r.returncode == 0, r.stdout + r.stderr
  assert sorted(p.name for p in out.glob("teacher_*.tar")) == [
      "teacher_p__booster_seed0.tar", "teacher_p__booster_seed1.tar"]
  # a bare machine: only the teacher tars; the KD run trains each seed from its own teacher
  r = campaign(tmp_path, "--budget_s=400", "--run_axis=unrolled", f"--workdir={tmp_path / 'wd2'}",
               f"--out={tmp_path / 'out2'}", f"--teachers_from={out}", runs="p__kd")
  assert r.returncode == 0, r.stdout + r.stderr
  assert json.loads((tmp_path / "out2/campaign.json").read_text())["runs"]["p__kd"]["finished"]
  for s in (0, 1):
    kd = json.loads((tmp_path / f"wd2/p__kd/seed{s}/final.json").read_text())
    teacher = json.loads((tmp_path / f"wd/p__booster/seed{s}/final.json").read_text())
    assert kd["teacher"]["test/booster_accuracy"] == teacher["test/booster_accuracy"]


def test_fewer_seeds_keeps_what_fits_in_every_stack():
  from paper_repro import gpu_campaign

  class FakeStack:
    def __init__(self, label):
      self.label, self.seeds, self.epoch = label, [0, 1, 2], 2

    def keep(self, n):
      self.seeds = self.seeds[:n]

  stacks, dropped = [FakeStack("a"), FakeStack("b")], {}
  assert not gpu_campaign.fewer_seeds(stacks, need=100, have=120, dropped=dropped, why="fits")
  assert gpu_campaign.fewer_seeds(stacks, need=300, have=210, dropped=dropped, why="too slow")
  assert [s.seeds for s in stacks] == [[0, 1], [0, 1]]
  assert dropped == {"a/seed2": 2, "b/seed2": 2}
  assert gpu_campaign.fewer_seeds(stacks, need=1000, have=10, dropped=dropped, why="far too slow")
  assert [s.seeds for s in stacks] == [[0], [0]]  # never below one seed
  assert not gpu_campaign.fewer_seeds(stacks, need=1000, have=10, dropped=dropped, why="one left")
