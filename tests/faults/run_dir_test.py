"""What survives what: interruptions, damaged or incompatible checkpoints, diverged states, a
crash mid-write, a second process, reruns. Each test ends with nothing lost (see the README's
"What survives what"; the scorer's cases are in tests/ctr_model_test.py, bad data files in
tests/faults/bad_data_test.py)."""

import json
import os

import jax
import numpy as np
import pytest

from rocket import checkpoint, train
from tests.train_test import read_metrics, restore_state, sigterm_at, small


def test_sigterm_checkpoints_and_resume_is_bit_for_bit(tmp_path):
  train.train_and_evaluate(small(), tmp_path / "straight")
  with pytest.raises(train.Interrupted, match="step 5.*Rerun the same command"):
    train.train_and_evaluate(small(), tmp_path / "resumed", callbacks=[sigterm_at(5)])
  ck = checkpoint.Checkpoints(tmp_path / "resumed" / "checkpoints")
  assert ck.latest_step() == 5
  ck.close()
  assert [r["step"] for r in read_metrics(tmp_path / "resumed")] == [4]
  train.train_and_evaluate(small(), tmp_path / "resumed")  # the same command again
  a = restore_state(tmp_path / "straight", small())
  b = restore_state(tmp_path / "resumed", small())
  assert int(a.step) == int(b.step) == 8
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  ra, rb = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
  assert [r["step"] for r in rb] == [4, 8]
  assert ra[-1]["test/light_accuracy"] == rb[-1]["test/light_accuracy"]
  assert ra[-1]["test/booster_loss"] == rb[-1]["test/booster_loss"]
  # the train/* averages of the record after the resume cover steps 5-8, as uninterrupted
  assert {k: v for k, v in ra[-1].items() if k.startswith("train/")} == {
      k: v for k, v in rb[-1].items() if k.startswith("train/")}


def test_sigterm_during_an_evaluation_stops_cleanly_and_resumes_exactly(tmp_path):
  # the signal arrives at step 4, before that step's evaluation and checkpoint: the loop stops
  # at its next check with the step already saved (it used to save step 4 twice and crash)
  with pytest.raises(train.Interrupted, match="step 4"):
    train.train_and_evaluate(small(), tmp_path / "resumed", callbacks=[sigterm_at(4)])
  assert [r["step"] for r in read_metrics(tmp_path / "resumed")] == [4]
  train.train_and_evaluate(small(), tmp_path / "resumed")
  train.train_and_evaluate(small(), tmp_path / "straight")
  a = restore_state(tmp_path / "straight", small())
  b = restore_state(tmp_path / "resumed", small())
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_rerunning_a_finished_run_does_not_train_again(tmp_path):
  first = train.train_and_evaluate(small(num_train_steps=4), tmp_path)
  files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
  again = train.train_and_evaluate(small(num_train_steps=4), tmp_path)
  assert again == json.loads(json.dumps(first))  # train/* averages included
  assert len(read_metrics(tmp_path)) == 1
  assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files  # nothing changed


def test_non_finite_loss_stops_with_step_and_term(tmp_path):
  c = small(num_train_steps=12, eval_every_steps=4, log_every_steps=1)
  c.hint.weight = float("inf")
  with pytest.raises(train.NonFiniteLossError,
                     match=r"non-finite loss at step 0 \(non-finite: .*loss.*terms: .*hint="):
    train.train_and_evaluate(c, tmp_path)


def test_non_finite_after_a_checkpoint_keeps_it(tmp_path):
  c = small(num_train_steps=12, eval_every_steps=4, log_every_steps=1)
  train.train_and_evaluate(small(num_train_steps=4), tmp_path)  # a good checkpoint at 4
  c.optim.schedule, c.optim.lr = "constant", 1e9  # then explode
  with pytest.raises(train.NonFiniteLossError, match=r"step \d+.*last good checkpoint \(step 4\)"):
    train.train_and_evaluate(c, tmp_path)
  ck = checkpoint.Checkpoints(tmp_path / "checkpoints")
  assert ck.latest_step() == 4
  ck.close()


def test_incompatible_checkpoint_is_reported_and_kept(tmp_path):
  train.train_and_evaluate(small(num_train_steps=4), tmp_path)
  before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
  other = small(num_train_steps=4)
  other.booster.depth = 16
  with pytest.raises(checkpoint.CheckpointError, match="another architecture.*booster"):
    train.train_and_evaluate(other, tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("damage", ["garbage", "changed_bytes"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, damage, capsys,
                                                                        monkeypatch):
  const = {"optim.schedule": "constant"}  # the first 4 steps are the same for 8 and 12 steps
  straight = train.train_and_evaluate(small(num_train_steps=12, **const), tmp_path / "straight")
  wd = tmp_path / "run"
  if damage == "changed_bytes":  # step 8's digest will not match its bytes
    real = checkpoint.state_digest
    monkeypatch.setattr(checkpoint, "state_digest",
                        lambda s: "0" * 64 if int(s.step) == 8 else real(s))
  train.train_and_evaluate(small(num_train_steps=8, **const), wd)  # checkpoints at 4 and 8
  monkeypatch.undo()
  if damage == "garbage":
    for f in (wd / "checkpoints" / "8" / "state").rglob("*"):
      if f.is_file():
        f.write_bytes(b"garbage")
  result = train.train_and_evaluate(small(num_train_steps=12, **const), wd)
  err = capsys.readouterr().err
  assert "warning:" in err and "/checkpoints/8" in err and "older checkpoint 4" in err
  assert (wd / "checkpoints" / "8.damaged").is_dir()  # kept, out of the way
  assert result["step"] == 12
  assert result["params_fingerprint"] == straight["params_fingerprint"]  # resumed exactly from 4


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
  train.train_and_evaluate(small(num_train_steps=4), tmp_path)
  step_dir = tmp_path / "checkpoints" / "4"
  for f in (step_dir / "state").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
    train.train_and_evaluate(small(num_train_steps=8), tmp_path)
  assert step_dir.exists()


def test_a_partial_last_metrics_line_does_not_block_the_rerun(tmp_path):
  """A crash while writing metrics.jsonl leaves half a line: the rerun drops it and goes on."""
  c = small()
  with pytest.raises(train.Interrupted):
    train.train_and_evaluate(c, tmp_path, callbacks=[sigterm_at(6)])
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"step": 8, "test/light_acc')
  result = train.train_and_evaluate(c, tmp_path)
  assert result["step"] == 8
  assert [r["step"] for r in read_metrics(tmp_path)] == [4, 8]


def test_a_workdir_in_use_is_refused_in_one_line(tmp_path):
  with train.run_lock(tmp_path):  # another run holds the directory
    with pytest.raises(train.RunInUse, match=f"in use by another run \\(pid {os.getpid()}"):
      train.train_and_evaluate(small(), tmp_path)
  assert not (tmp_path / "metrics.jsonl").exists()
  assert train.train_and_evaluate(small(), tmp_path)["step"] == 8  # free again


def test_a_diverged_state_is_never_checkpointed(tmp_path):
  """Huge LR, evaluation every step: the exploded state after step 1 must not become the "last
  good checkpoint" that a rerun with a lower LR would resume from."""
  c = small(num_train_steps=6, eval_every_steps=1, log_every_steps=1)
  c.optim.schedule, c.optim.lr, c.optim.momentum = "constant", 1e30, 0.0
  with pytest.raises(train.NonFiniteLossError, match="non-finite"):
    train.train_and_evaluate(c, tmp_path)
  ck = checkpoint.Checkpoints(tmp_path / "checkpoints")
  try:
    steps = list(ck.manager.all_steps())
  finally:
    ck.close()
  records = {r["step"]: r for r in read_metrics(tmp_path)}
  assert any(not np.isfinite(v) for r in records.values() for v in r.values() if isinstance(v, float))
  for step in steps:  # every checkpoint that exists has a finite evaluation
    assert all(np.isfinite(v) for v in records[step].values() if isinstance(v, float)), step
