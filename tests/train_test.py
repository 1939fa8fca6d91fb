import json
import os
import signal

import jax
import numpy as np
import pytest

from rocket import checkpoint, image_task, train
from tests.conftest import load_config


def small(**kw):
  base = dict(num_train_steps=8, eval_every_steps=4, log_every_steps=2)
  base.update(kw)
  c = load_config("tiny", **base)
  c.synthetic.num_train, c.synthetic.num_test, c.synthetic.image_size = 256, 64, 16
  return c


def read_metrics(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def sigterm_at(stop_step):
  def cb(step, state):
    del state
    if step == stop_step:
      os.kill(os.getpid(), signal.SIGTERM)
  return cb


def restore_state(workdir, config):
  ds_shape = (config.synthetic.image_size,) * 2 + (3,)
  model = image_task.build_model(config, config.synthetic.num_classes)
  tx, _ = train.create_optimizer(config, 8, 8)
  state = train.init_state(model, tx, ds_shape, config.seed, train.make_mesh())
  ck = checkpoint.Checkpoints(workdir / "checkpoints")
  arch = ck.read_meta(ck.latest_step())["arch"]
  restored, _ = ck.restore(checkpoint.abstract_like(state), arch)
  ck.close()
  return restored


def test_training_lowers_the_loss(tmp_path):
  c = small(num_train_steps=60, eval_every_steps=30, log_every_steps=10)
  c.optim.schedule, c.optim.lr = "constant", 0.05
  train.train_and_evaluate(c, tmp_path)
  recs = read_metrics(tmp_path)
  assert [r["step"] for r in recs] == [30, 60]
  assert recs[1]["train/loss"] < recs[0]["train/loss"]
  assert recs[1]["train/ce_light"] < recs[0]["train/ce_light"]
  assert recs[1]["test/light_accuracy"] > 0.3  # 10 classes: chance is 0.1
  for key in ("train/hint", "train/ce_booster", "test/booster_accuracy", "test/light_loss",
              "wall_time_s", "epoch"):
    assert key in recs[1]
  assert json.loads((tmp_path / "config.json").read_text())["method"] == "rocket"


@pytest.mark.parametrize("method,nets", [("light", ["light"]), ("booster", ["booster"])])
def test_single_net_methods(tmp_path, method, nets):
  result = train.train_and_evaluate(small(method=method, num_train_steps=4), tmp_path)
  assert sorted(result["params"]) == sorted(nets + ["total"])
  assert result["params"]["total"] == result["params"][nets[0]]
  assert f"test/{nets[0]}_accuracy" in result and "train/hint" not in result


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


@pytest.mark.parametrize("overrides,pattern", [
    ({"method": "distill"}, "unknown method"),
    ({"light.depth": 15}, "6n\\+4"),
    ({"share": "top"}, "share"),
    ({"hint.kind": "cosine"}, "hint.kind"),
    ({"gradient_block": "maybe"}, "gradient_block"),
    ({"batch_size": 0}, "batch_size"),
    ({"optim.schedule": "poly"}, "schedule"),
])
def test_bad_config_values_are_clear_errors(tmp_path, overrides, pattern):
  with pytest.raises(ValueError, match=pattern):
    train.train_and_evaluate(load_config("tiny", **overrides), tmp_path)


def test_width_mismatch_with_sharing(tmp_path):
  c = load_config("tiny", **{"booster.width": 2})
  with pytest.raises(ValueError, match="equal widths"):
    train.validate_config(c)
  c.share = "none"
  train.validate_config(c)


def test_step_schedule_boundaries_scale_with_training_length():
  c = load_config("tiny")
  _, sched = train.create_optimizer(c, total_steps=200, steps_per_epoch=10)
  assert float(sched(0)) == pytest.approx(0.1)
  assert float(sched(61)) == pytest.approx(0.02)
  assert float(sched(199)) == pytest.approx(0.1 * 0.2 ** 3)
  c.optim.warmup_epochs = 1.0
  _, sched = train.create_optimizer(c, total_steps=200, steps_per_epoch=10)
  assert float(sched(0)) == 0.0 and float(sched(10)) == pytest.approx(0.1)


def test_speed_probe_warns_once_when_the_run_would_take_hours(capsys):
  probe = train._SpeedProbe(start_step=0, total_steps=10_000, hint="use the cpu preset", steps=2,
                            warn_after_s=1e-6)
  for done in range(1, 6):
    probe.tick(done, {"loss": np.zeros(())})
  err = capsys.readouterr().err
  assert err.count("no accelerator found") == 1 and "use the cpu preset" in err
  quick = train._SpeedProbe(start_step=0, total_steps=10_000, hint="x", steps=2, warn_after_s=1e9)
  for done in range(1, 6):
    quick.tick(done, {"loss": np.zeros(())})
  assert "no accelerator" not in capsys.readouterr().err


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
