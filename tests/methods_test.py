import json

import jax.numpy as jnp
import numpy as np
import pytest

from rocket import losses, methods, objective, train
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
  w = objective.Objective.from_config(c, "kd").term_weights()
  assert w == {"ce_light": pytest.approx(0.1), "kd": 0.9}
  w = objective.Objective.from_config(c, "at_kd").term_weights()
  assert w["at"] == 500.0 and w["kd"] == 0.9
  w = objective.Objective.from_config(c, "rocket_kd").term_weights()
  assert w == {"ce_light": pytest.approx(0.1), "ce_booster": 1.0, "hint": 0.03, "kd": 0.9}
  assert methods.get_method("rocket_kd").needs_teacher  # the paper's: a pre-trained teacher
  with pytest.raises(ValueError, match="loss_convention"):
    objective.Objective.from_config(load_config("tiny", loss_convention="hinton"), "kd")


# --- the official code's formulas (zhougr1993/Rocket-Launching utils.py, rocket_interval.py),
# written out in numpy as PyTorch computes them, on hand-made logits and feature maps.

def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_ce(z, y):
  return -np_log_softmax(z)[np.arange(len(y)), y].mean()


def official_kl_term(y, t, T, alpha):
  """``F.kl_div(F.log_softmax(y/T), F.softmax(t/T)) * (T*T*2*alpha)``: kl_div's (old default)
  reduction is the mean over batch x classes."""
  p_t = np.exp(np_log_softmax(t / T))
  return (p_t * (np.log(p_t) - np_log_softmax(y / T))).mean() * (T * T * 2.0 * alpha)


def official_at(x, y):
  a = lambda f: (f ** 2).mean(-1).reshape(len(f), -1)  # noqa: E731  (NHWC: channels last)
  n = lambda v: v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)  # noqa: E731
  return ((n(a(x)) - n(a(y))) ** 2).mean()


RNG = np.random.default_rng(3)
Z_S = np.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
Z_T = np.array([[4.0, 0.0, -1.0, 0.0], [0.0, 1.0, 2.0, -1.0], [3.0, -3.0, 0.0, 0.5]], np.float32)
Z_B = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0]], np.float32)
LABELS = np.array([0, 2, 1])
F_S = [RNG.normal(size=(3, 8, 8, 4)).astype(np.float32), RNG.normal(size=(3, 4, 4, 8)).astype(np.float32)]
F_T = [RNG.normal(size=(3, 8, 8, 16)).astype(np.float32), RNG.normal(size=(3, 4, 4, 32)).astype(np.float32)]


def weighted_loss(method_name, config, logits):
  obj = objective.Objective.from_config(config, method_name)
  outputs = {"logits": {k: jnp.asarray(v) for k, v in logits.items()},
             "features": {"light": [jnp.asarray(f) for f in F_S]}}
  teacher = {"logits": jnp.asarray(Z_T), "features": [jnp.asarray(f) for f in F_T]}
  terms = obj.loss_terms(outputs, jnp.asarray(LABELS), True, teacher)
  weights = obj.term_weights()
  return float(sum(weights[k] * v for k, v in terms.items()))


@pytest.mark.parametrize("alpha,temperature", [(0.9, 4.0), (0.5, 2.0)])
def test_paper_kd_is_the_official_distillation(alpha, temperature):
  c = load_config("tiny", loss_convention="paper", **{"kd.alpha": alpha, "kd.temperature": temperature})
  official = official_kl_term(Z_S, Z_T, temperature, alpha) + np_ce(Z_S, LABELS) * (1 - alpha)
  assert weighted_loss("kd", c, {"light": Z_S}) == pytest.approx(official, rel=1e-5)
  # modern (Hinton): alpha * T^2 * KL summed over classes = C / 2 times the official KD term
  m = load_config("tiny", **{"kd.alpha": alpha, "kd.temperature": temperature})
  hinton = (official_kl_term(Z_S, Z_T, temperature, alpha) * Z_S.shape[1] / 2
            + np_ce(Z_S, LABELS) * (1 - alpha))
  assert weighted_loss("kd", m, {"light": Z_S}) == pytest.approx(hinton, rel=1e-5)


def test_paper_at_and_at_kd_are_the_official_losses():
  c = load_config("tiny", loss_convention="paper")
  beta, alpha, t = 1e3, 0.9, 4.0
  at = sum(official_at(x, y) for x, y in zip(F_S, F_T))
  # official AT alone: distillation with alpha=0 (= CE) + beta * sum of at_loss
  assert weighted_loss("at", c, {"light": Z_S}) == pytest.approx(np_ce(Z_S, LABELS) + beta * at, rel=1e-5)
  official = official_kl_term(Z_S, Z_T, t, alpha) + np_ce(Z_S, LABELS) * (1 - alpha) + beta * at
  assert weighted_loss("at_kd", c, {"light": Z_S}) == pytest.approx(official, rel=1e-5)
  # modern: beta / 2 on the same term
  m = load_config("tiny")
  assert weighted_loss("at", m, {"light": Z_S}) == pytest.approx(np_ce(Z_S, LABELS) + beta / 2 * at, rel=1e-5)


def test_paper_rocket_kd_is_the_official_loss():
  """rocket_distillation(ys, y_t) + CE(booster) + CE(light) + gamma * ((y_b - ys)**2).sum() / batch."""
  c = load_config("tiny", loss_convention="paper")
  gamma, alpha, t = 0.03, 0.9, 4.0
  official = (official_kl_term(Z_S, Z_T, t, alpha) + np_ce(Z_B, LABELS) + np_ce(Z_S, LABELS)
              + gamma * ((Z_B - Z_S) ** 2).sum() / len(Z_S))
  got = weighted_loss("rocket_kd", c, {"light": Z_S, "booster": Z_B})
  assert got == pytest.approx(official, rel=1e-5)
  # and rocket alone is the official rocket loss
  official_rocket = np_ce(Z_B, LABELS) + np_ce(Z_S, LABELS) + gamma * ((Z_B - Z_S) ** 2).sum() / len(Z_S)
  for conv in ("paper", "modern"):
    got = weighted_loss("rocket", load_config("tiny", loss_convention=conv), {"light": Z_S, "booster": Z_B})
    assert got == pytest.approx(official_rocket, rel=1e-5)


def test_hint_warmup_ramps_lambda():
  c = load_config("tiny")
  c.hint.warmup_epochs = 2.0
  obj = objective.Objective.from_config(c, "rocket")
  ramp = [float(obj.term_weights(jnp.asarray(s), steps_per_epoch=10)["hint"])
          for s in (0, 9, 19, 50)]
  assert ramp == pytest.approx([0.03 / 20, 0.03 / 2, 0.03, 0.03])


@pytest.mark.parametrize("method,terms", [
    ("rocket_kd", {"ce_light", "ce_booster", "hint", "kd"}),
    ("kd", {"ce_light", "kd"}),
    ("at", {"ce_light", "at"}),
    ("at_kd", {"ce_light", "kd", "at"}),
])
def test_each_method_trains(tmp_path, method, terms):
  result = train.train_with_teacher(small(method=method, num_train_steps=4), tmp_path)
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
    train.train_with_teacher(small(method="kd", num_train_steps=4), tmp_path / "a",
                             callbacks=[sigterm_at(2)])
  teacher = tmp_path / "a" / "teacher"
  before = {p: p.stat().st_mtime_ns for p in teacher.rglob("*") if p.is_file()}
  assert (teacher / "final.json").is_file()
  result = train.train_with_teacher(small(method="kd", num_train_steps=4), tmp_path / "a")
  assert result["step"] == 4
  after = {p: p.stat().st_mtime_ns for p in teacher.rglob("*") if p.is_file()}
  assert after == before
  # A teacher trained for another budget is not silently reused.
  with pytest.raises(ValueError, match="different config.*num_train_steps"):
    train.train_with_teacher(small(method="kd", num_train_steps=6), tmp_path / "a")
  # An explicit teacher_workdir is used as it is, and nothing is trained in <workdir>/teacher.
  c = small(method="at", num_train_steps=4, teacher_workdir=str(teacher))
  result = train.train_with_teacher(c, tmp_path / "b")
  assert not (tmp_path / "b" / "teacher").exists()
  assert result["teacher"]["test/booster_accuracy"] == json.loads(
      (teacher / "final.json").read_text())["test/booster_accuracy"]


def test_teacher_workdir_must_hold_a_finished_run(tmp_path):
  c = small(method="kd", num_train_steps=4, teacher_workdir=str(tmp_path / "none"))
  with pytest.raises(ValueError, match="no finished run"):
    train.train_with_teacher(c, tmp_path / "s")
  with pytest.raises(ValueError, match="uses no teacher"):
    train.validate_config(small(method="rocket", teacher_workdir="x"))


def test_a_student_run_never_trains_its_teacher(tmp_path):
  """Teachers are finished runs: train_and_evaluate loads one and trains none (big_vision's way);
  train_with_teacher (rocket.main) trains the teacher first, as a run of its own."""
  from rocket.config_util import ConfigError  # noqa: PLC0415

  with pytest.raises(ConfigError, match="teacher_workdir.*train_with_teacher"):
    train.train_and_evaluate(small(method="rocket_kd", num_train_steps=4), tmp_path / "s")
  assert not (tmp_path / "s" / "teacher").exists()


def test_config_fields_each_method_reads():
  f = lambda name: methods.get_method(name).config_fields()  # noqa: E731
  assert f("booster") == frozenset()
  assert f("light") == {"light"}
  assert f("rocket") == {"light", "share", "hint", "gradient_block"}
  assert f("kd") == {"light", "kd", "loss_convention", "teacher_workdir"}
  assert f("rocket_kd") == f("rocket") | {"kd", "loss_convention", "teacher_workdir"}
  assert f("at_kd") >= {"at", "kd"}
  # a finished teacher (a booster run) is reused whatever the student's fields, but not across
  # a change of data, optimiser or booster
  skip = train.teacher_irrelevant_fields()
  assert {"hint", "kd", "at", "light", "share", "progress_bar", "eval_every_epochs"} <= skip
  assert not {"booster", "optim", "seed", "dataset", "num_epochs", "batch_size"} & skip
