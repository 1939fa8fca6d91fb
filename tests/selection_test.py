"""Model selection (config.select): the best evaluation's checkpoint is kept, reported, resumed,
exported; early stopping with patience."""

import json

import pytest

from rocket import train
from rocket.config_util import ConfigError
from rocket.ctr import export
from tests.conftest import load_config


def tiny_ctr(**overrides):
  # 2048 synthetic clicks / batch 256 = 8 steps per epoch, 2 epochs, an evaluation every 2 steps
  return load_config("tiny", file="ctr_frappe.py", eval_every_steps=2, **overrides)


def records(wd):
  return [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]


def test_the_best_validation_checkpoint_is_kept_reported_and_exported(tmp_path):
  config = tiny_ctr(method="rocket", **{"optim.lr": 0.01})  # overfits within 2 epochs
  assert config.select.metric == "valid/{net}_auc"  # the CTR default
  final = train.train_and_evaluate(config, tmp_path)
  recs = records(tmp_path)
  best = max(recs, key=lambda r: r["valid/light_auc"])
  assert len(recs) == 8 and best["step"] < recs[-1]["step"]  # this run peaks before its end
  assert final["selected"]["step"] == best["step"] and final["selected"]["last_step"] == 16
  assert final["selected"]["metric"] == "valid/light_auc"
  for k in ("valid/light_auc", "test/light_auc", "test/booster_gauc"):
    assert final[k] == best[k]
  run = train.load_run(tmp_path, checkpoint="auto")
  assert (run.checkpoint, run.step) == ("best", best["step"])
  assert run.record["valid/light_auc"] == best["valid/light_auc"]
  assert train.load_run(tmp_path).step == 16  # latest, as before
  # the served model is the selected one: its test AUC is the reported one
  assert export.evaluate(run, "light")["auc"] == pytest.approx(best["test/light_auc"], abs=1e-6)
  manifest = export.export(run, tmp_path / "export")
  assert (manifest["checkpoint"], manifest["step"]) == ("best", best["step"])
  assert manifest["selected_by"] == "valid/{net}_auc"
  assert manifest["evaluation"]["valid/light_auc"] == best["valid/light_auc"]


def test_early_stopping_stops_after_patience_and_a_rerun_does_nothing(tmp_path):
  # "step", minimised: the first evaluation stays the best, so patience 2 stops at the third
  config = tiny_ctr(method="light", **{"select.metric": "step", "select.mode": "min",
                                       "select.patience": 2})
  final = train.train_and_evaluate(config, tmp_path)
  assert [r["step"] for r in records(tmp_path)] == [2, 4, 6]
  assert final["stopped_early_at"] == 6 and final["selected"]["step"] == 2 and final["step"] == 2
  again = train.train_and_evaluate(config, tmp_path)  # finished: not trained further
  assert again == final and [r["step"] for r in records(tmp_path)] == [2, 4, 6]


def test_selection_survives_a_resume(tmp_path):
  config = tiny_ctr(method="light", num_epochs=1)
  whole = train.train_and_evaluate(config, tmp_path / "whole")
  stop = dict(num_train_steps=4)  # the same run cut after two evaluations, then resumed
  train.train_and_evaluate(load_config("tiny", file="ctr_frappe.py", eval_every_steps=2,
                                       method="light", num_epochs=1, **stop), tmp_path / "part")
  # a longer num_train_steps on the same workdir continues it (LR schedule: constant)
  resumed = train.train_and_evaluate(config, tmp_path / "part")
  assert resumed["selected"] == {**whole["selected"], "checkpoint": str(tmp_path / "part" / "best")}
  assert resumed["valid/light_auc"] == whole["valid/light_auc"]


def test_bad_selection_settings_say_what_to_do(tmp_path):
  with pytest.raises(ConfigError, match="is not an evaluation of this run; its evaluations: .*"
                                        "valid/light_auc"):
    train.train_and_evaluate(tiny_ctr(method="light", **{"select.metric": "valid/light_acc"}),
                             tmp_path)
  with pytest.raises(ValueError, match="set the metric too"):
    train.validate_config(tiny_ctr(**{"select.metric": "", "select.patience": 3}))
  with pytest.raises(ValueError, match="'max' or 'min'"):
    train.validate_config(tiny_ctr(**{"select.mode": "best"}))
  with pytest.raises(ValueError, match="reduce_factor < 1"):
    train.validate_config(tiny_ctr(**{"select.reduce_after": 2, "select.reduce_factor": 2.0}))


def test_reduce_on_plateau_cuts_the_lr_and_a_resume_keeps_the_cut(tmp_path):
  # "step", minimised, never improves after the first evaluation: every second one cuts the LR
  sel = {"select.metric": "step", "select.mode": "min", "select.reduce_after": 2,
         "select.reduce_factor": 0.5, "optim.lr": 0.01, "num_epochs": 1}
  whole = train.train_and_evaluate(tiny_ctr(method="light", **sel), tmp_path / "whole")
  lrs = {r["step"]: r["train/lr"] for r in records(tmp_path / "whole")}
  # evaluations at steps 2, 4, 6, 8: the ones at 6 (two without improvement) cut the LR
  assert lrs == pytest.approx({2: 0.01, 4: 0.01, 6: 0.01, 8: 0.005})
  assert whole["selected"]["step"] == 2
  # cut after the third evaluation, then resumed: the same LR and the same final parameters
  train.train_and_evaluate(tiny_ctr(method="light", num_train_steps=6, **sel), tmp_path / "part")
  resumed = train.train_and_evaluate(tiny_ctr(method="light", **sel), tmp_path / "part")
  assert {r["step"]: r["train/lr"] for r in records(tmp_path / "part")} == lrs
  assert resumed["params_fingerprint"] == whole["params_fingerprint"]


def _detach_step(recs, after):
  """The oracle: the first evaluation after which the booster's validation AUC has gone ``after``
  evaluations without beating its best."""
  best, since = None, 0
  for r in recs:
    v = r["valid/booster_auc"]
    if best is None or v > best:
      best, since = v, 0
    else:
      since += 1
      if since >= after:
        return r["step"]
  return None


def test_the_booster_is_detached_from_the_shared_embedding_after_its_best_and_a_resume_keeps_it(
    tmp_path):
  sel = {"select.detach_booster_after": 1, "optim.lr": 0.01}  # 2 epochs: it overfits
  whole = train.train_and_evaluate(tiny_ctr(method="rocket", **sel), tmp_path / "whole")
  recs = records(tmp_path / "whole")
  at = _detach_step(recs, 1)
  assert at is not None and at < 16  # this run's booster peaks before the end
  # the windows up to the detaching evaluation trained attached, every later one detached
  assert {r["step"]: r["train/booster_grad"] for r in recs} == {
      r["step"]: 1.0 if r["step"] <= at else 0.0 for r in recs}
  # cut at the detaching evaluation, then resumed: detached from the first step on, same result
  train.train_and_evaluate(tiny_ctr(method="rocket", num_train_steps=at, **sel), tmp_path / "part")
  resumed = train.train_and_evaluate(tiny_ctr(method="rocket", **sel), tmp_path / "part")
  assert [r["train/booster_grad"] for r in records(tmp_path / "part")] == [
      r["train/booster_grad"] for r in recs]
  assert resumed["params_fingerprint"] == whole["params_fingerprint"]
  # not set: the step takes no such argument, and the metric is not logged
  train.train_and_evaluate(tiny_ctr(method="rocket", num_epochs=1), tmp_path / "off")
  assert "train/booster_grad" not in records(tmp_path / "off")[0]


def test_detaching_the_booster_is_refused_where_it_means_nothing():
  with pytest.raises(ValueError, match="trains both nets"):
    train.validate_config(tiny_ctr(method="light", **{"select.detach_booster_after": 2}))
  with pytest.raises(ValueError, match="a metric with '{net}'"):
    train.validate_config(tiny_ctr(method="rocket", **{"select.detach_booster_after": 2,
                                                       "select.metric": "valid/light_auc"}))
  with pytest.raises(ValueError, match="needs share='embedding'"):
    train.validate_config(tiny_ctr(method="rocket", share="none",
                                   **{"select.detach_booster_after": 2}))
  with pytest.raises(ValueError, match="is for CTR runs"):
    train.validate_config(load_config("tiny", method="rocket", **{"select.detach_booster_after": 2}))
