import json

import jax.numpy as jnp
import numpy as np
import pytest

from rocket import losses, methods, train
from tests.conftest import load_config
from tests.train_test import sigterm_at, small


def np_attention(f):
  a = (f.astype(np.float64) ** 2).mean(-1).reshape(f.shape[0], -1)
  return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_attention_map_against_numpy():
  f = np.random.default_rng(0).normal(size=(3, 4, 5, 6)).astype(np.float32)
  a = np.asarray(losses.attention_map(f))
  assert a.shape == (3, 20)
  np.testing.assert_allclose(a, np_attention(f), rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, rtol=1e-5)


def test_attention_transfer_against_numpy():
  rng = np.random.default_rng(1)
  fs = [rng.normal(size=(2, 8, 8, 4)), rng.normal(size=(2, 4, 4, 8))]
  ft = [rng.normal(size=(2, 8, 8, 16)), rng.normal(size=(2, 4, 4, 32))]  # wider teacher
  ref = sum(((np_attention(s) - np_attention(t)) ** 2).mean() for s, t in zip(fs, ft))
  got = losses.attention_transfer([jnp.asarray(x, jnp.float32) for x in fs],
                                  [jnp.asarray(x, jnp.float32) for x in ft])
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  with pytest.raises(ValueError, match="spatial"):
    losses.attention_transfer([jnp.zeros((2, 8, 8, 4))], [jnp.zeros((2, 4, 4, 4))])


def test_term_weights():
  c = load_config("tiny")
  w = methods.term_weights(methods.get_method("kd"), c)
  assert w == {"ce_light": pytest.approx(0.1), "kd": 0.9}
  w = methods.term_weights(methods.get_method("at_kd"), c)
  assert w["at"] == 500.0 and w["kd"] == 0.9
  w = methods.term_weights(methods.get_method("rocket_kd"), c)
  assert set(w) == {"ce_light", "ce_booster", "hint", "kd"} and w["ce_booster"] == 1.0


def test_hint_warmup_ramps_lambda():
  c = load_config("tiny")
  c.hint.warmup_epochs = 2.0
  m = methods.get_method("rocket")
  ramp = [float(methods.term_weights(m, c, jnp.asarray(s), steps_per_epoch=10)["hint"])
          for s in (0, 9, 19, 50)]
  assert ramp == pytest.approx([0.03 / 20, 0.03 / 2, 0.03, 0.03])


@pytest.mark.parametrize("method,terms", [
    ("rocket_kd", {"ce_light", "ce_booster", "hint", "kd"}),
    ("kd", {"ce_light", "kd"}),
    ("at", {"ce_light", "at"}),
    ("at_kd", {"ce_light", "kd", "at"}),
])
def test_each_method_trains(tmp_path, method, terms):
  result = train.train_and_evaluate(small(method=method, num_train_steps=4), tmp_path)
  got = {k.split("/")[1] for k in result if k.startswith("train/")} - {
      "loss", "lr", "grad_norm", "acc_light", "acc_booster"}
  assert got == terms
  assert all(np.isfinite(result[f"train/{t}"]) for t in terms)
  assert result[f"train/{sorted(terms - {'ce_light', 'ce_booster'})[0]}"] > 0
  if methods.get_method(method).needs_teacher:
    assert "test/booster_accuracy" in result["teacher"]
    assert (tmp_path / "teacher" / "final.json").is_file()


def test_teacher_is_reused_not_retrained(tmp_path):
  with pytest.raises(train.Interrupted):  # the student is stopped after 2 steps
    train.train_and_evaluate(small(method="kd", num_train_steps=4), tmp_path / "a",
                             callbacks=[sigterm_at(2)])
  teacher = tmp_path / "a" / "teacher"
  before = {p: p.stat().st_mtime_ns for p in teacher.rglob("*") if p.is_file()}
  assert (teacher / "final.json").is_file()
  result = train.train_and_evaluate(small(method="kd", num_train_steps=4), tmp_path / "a")
  assert result["step"] == 4
  after = {p: p.stat().st_mtime_ns for p in teacher.rglob("*") if p.is_file()}
  assert after == before
  # A teacher trained for another budget is not silently reused.
  with pytest.raises(ValueError, match="different config.*num_train_steps"):
    train.train_and_evaluate(small(method="kd", num_train_steps=6), tmp_path / "a")
  # An explicit teacher_workdir is used as it is, and nothing is trained in <workdir>/teacher.
  c = small(method="at", num_train_steps=4, teacher_workdir=str(teacher))
  result = train.train_and_evaluate(c, tmp_path / "b")
  assert not (tmp_path / "b" / "teacher").exists()
  assert result["teacher"]["test/booster_accuracy"] == json.loads(
      (teacher / "final.json").read_text())["test/booster_accuracy"]


def test_teacher_workdir_must_hold_a_finished_run(tmp_path):
  c = small(method="kd", num_train_steps=4, teacher_workdir=str(tmp_path / "none"))
  with pytest.raises(ValueError, match="no finished run"):
    train.train_and_evaluate(c, tmp_path / "s")
  with pytest.raises(ValueError, match="uses no teacher"):
    train.validate_config(small(method="rocket", teacher_workdir="x"))
