import json
import os
import signal

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


