import math
import time

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from rocket.ctr import metrics


def _data(seed, n=2000, decimals=1):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  scores = np.round(rng.normal(size=n) + 0.7 * labels, decimals)   # many ties
  return rng, labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
  _, labels, scores = _data(seed)
  assert len(np.unique(scores)) < len(scores) / 10
  assert metrics.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
  coarse = np.round(scores)                                          # a handful of distinct values
  assert metrics.auc(labels, coarse) == pytest.approx(roc_auc_score(labels, coarse), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_auc_matches_sklearn(seed):
  rng, labels, scores = _data(seed)
  weights = rng.uniform(0.0, 3.0, labels.shape[0])
  weights[::7] = 0.0
  got = metrics.auc(labels, scores, weights)
  assert got == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)
  # Integer weights equal repeating the rows.
  reps = rng.integers(0, 4, labels.shape[0])
  rep_labels, rep_scores = np.repeat(labels, reps), np.repeat(scores, reps)
  assert metrics.auc(labels, scores, reps) == pytest.approx(metrics.auc(rep_labels, rep_scores), abs=1e-12)


def test_auc_simple_cases_and_one_class():
  assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
  assert metrics.auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
  assert metrics.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
  assert metrics.auc([0, 1, 1], [0.3, 0.3, 0.9]) == 0.75
  assert metrics.auc(np.array([True, False]), [2.0, 1.0]) == 1.0
  assert math.isnan(metrics.auc([1, 1, 1], [0.1, 0.2, 0.3]))
  assert math.isnan(metrics.auc([0, 0], [0.1, 0.2]))
  assert math.isnan(metrics.auc([0, 1], [0.1, 0.2], weights=[1.0, 0.0]))
  assert math.isnan(metrics.auc([], []))
  with pytest.raises(ValueError, match="0 or 1"):
    metrics.auc([0, 2], [0.1, 0.2])
  with pytest.raises(ValueError):
    metrics.auc([0, 1], [0.1])


def _gauc_oracle(labels, scores, users):
  num = den = 0.0
  used = 0
  for u in np.unique(users):
    m = users == u
    if len(np.unique(labels[m])) < 2:
      continue
    num += m.sum() * roc_auc_score(labels[m], scores[m])
    den += m.sum()
    used += 1
  return num / den, used, int(den)


@pytest.mark.parametrize("seed", [0, 1])
def test_gauc_matches_per_user_oracle(seed):
  rng, labels, scores = _data(seed, n=3000)
  users = rng.integers(0, 150, labels.shape[0]) * 7 - 300           # arbitrary, negative ids included
  users[:40] = 10_000                                                # one user with all positives
  labels[:40] = 1
  value, info = metrics.gauc(labels, scores, users)
  want, used, imps = _gauc_oracle(labels, scores, users)
  assert value == pytest.approx(want, abs=1e-12)
  assert info == dict(users_total=len(np.unique(users)), users_used=used, impressions_used=imps)
  assert info["users_used"] < info["users_total"]
  # String user ids sort differently, the value is the same.
  value_s, info_s = metrics.gauc(labels, scores, users.astype(str))
  assert value_s == pytest.approx(value, abs=1e-12) and info_s == info


def test_gauc_skips_single_class_users():
  labels = [1, 0, 0, 1, 0, 1, 1, 0, 0, 0]
  scores = [0.9, 0.1, 0.5, 0.2, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7]
  users = ["a", "a", "b", "b", "b", "c", "c", "d", "d", "d"]
  value, info = metrics.gauc(labels, scores, users)
  # a: AUC 1 over 2 impressions; b: AUC 0.5 over 3; c (all clicks) and d (no clicks) are skipped.
  assert value == pytest.approx((2 * 1.0 + 3 * 0.5) / 5)
  assert info == dict(users_total=4, users_used=2, impressions_used=5)
  value, info = metrics.gauc([1, 1, 0], [0.1, 0.2, 0.3], [1, 1, 2])
  assert math.isnan(value) and info == dict(users_total=2, users_used=0, impressions_used=0)


def test_gauc_is_vectorised():
  rng = np.random.default_rng(0)
  n = 1_000_000
  labels = rng.integers(0, 2, n)
  scores = rng.normal(size=n).astype(np.float32)
  users = rng.integers(0, 50_000, n)
  start = time.perf_counter()
  value, info = metrics.gauc(labels, scores, users)
  assert time.perf_counter() - start < 5.0                           # ~0.3 s on an idle core
  assert abs(value - 0.5) < 0.01 and info["users_total"] == 50_000


def test_logloss_matches_sklearn_and_clips():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 1000)
  probs = rng.uniform(1e-3, 1 - 1e-3, 1000)
  assert metrics.logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-12)
  assert metrics.logloss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(1e-7))
  assert metrics.logloss([1, 0], [0.0, 1.0], eps=1e-3) == pytest.approx(-math.log(1e-3))


def test_logloss_from_logits_is_stable():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, 1000)
  logits = rng.normal(scale=3.0, size=1000)
  probs = 1.0 / (1.0 + np.exp(-logits))
  assert metrics.logloss_from_logits(labels, logits) == pytest.approx(log_loss(labels, probs), rel=1e-10)
  assert metrics.logloss_from_logits([1, 0], [1000.0, -1000.0]) == 0.0
  assert metrics.logloss_from_logits([0, 1], [1000.0, -1000.0]) == pytest.approx(1000.0)


def test_ctr_metrics():
  rng, labels, logits = _data(3, n=500)
  users = rng.integers(0, 20, 500)
  out = metrics.ctr_metrics(labels, logits, users)
  assert set(out) == {"auc", "gauc", "logloss", "users_used"}
  assert out["auc"] == pytest.approx(roc_auc_score(labels, logits))
  assert out["gauc"] == pytest.approx(_gauc_oracle(labels, logits, users)[0])
  assert out["logloss"] == pytest.approx(metrics.logloss_from_logits(labels, logits))
  assert out["users_used"] == 20
  assert math.isnan(metrics.ctr_metrics(labels, logits)["gauc"])
