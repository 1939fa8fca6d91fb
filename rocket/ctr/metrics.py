"""Exact evaluation metrics of CTR models (numpy, float64, host side).

* :func:`auc`: area under the ROC curve, computed exactly from one sort as the
  normalised Mann-Whitney statistic: every (positive, negative) pair counts 1
  when the positive scores higher and 1/2 when the scores tie (midranks), so the
  value equals the trapezoidal ROC area (scikit-learn's ``roc_auc_score``).
  Optional sample weights weigh every pair by ``w_pos * w_neg``.  With only one
  class present the AUC is undefined and ``nan`` is returned.
* :func:`gauc`: group AUC, the impression-weighted mean of per-user AUCs.
* :func:`logloss` / :func:`logloss_from_logits`: mean binary cross-entropy.
* :func:`ctr_metrics`: all of the above from a model's logits.

Labels are 0/1 (any numeric or boolean dtype); anything else raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np


def _labels(labels) -> np.ndarray:
  y = np.asarray(labels).reshape(-1)
  pos = y == 1
  if not np.all(pos | (y == 0)):
    raise ValueError("labels must be 0 or 1")
  return pos


def _scores(scores, n: int) -> np.ndarray:
  s = np.asarray(scores, dtype=np.float64).reshape(-1)
  if s.shape[0] != n:
    raise ValueError(f"got {n} labels but {s.shape[0]} scores")
  if np.isnan(s).any():
    raise ValueError("scores contain NaN")
  return s


def _run_ends(*sorted_keys: np.ndarray) -> np.ndarray:
  """Indices of the last element of every run of equal keys in sorted arrays."""
  n = sorted_keys[0].shape[0]
  change = np.zeros(n, dtype=bool)
  change[-1] = True
  for k in sorted_keys:
    change[:-1] |= k[1:] != k[:-1]
  return np.flatnonzero(change)


def auc(labels, scores, weights=None) -> float:
  """Exact ROC AUC with ties counted as 1/2; ``nan`` when only one class is present.

  ``weights`` (optional, non-negative, one per example) weigh each
  (positive, negative) pair by the product of the two weights; an example of
  weight 0 is ignored.  O(n log n): one stable sort of the scores.
  """
  pos = _labels(labels)
  n = pos.shape[0]
  s = _scores(scores, n)
  if weights is None:
    w = np.ones(n, dtype=np.float64)
  else:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
      raise ValueError(f"got {n} labels but {w.shape[0]} weights")
    if (w < 0).any() or not np.isfinite(w).all():
      raise ValueError("weights must be finite and non-negative")
  if n == 0:
    return float("nan")
  order = np.argsort(s, kind="stable")
  s = s[order]
  wp = np.where(pos[order], w[order], 0.0)
  wn = np.where(pos[order], 0.0, w[order])
  ends = _run_ends(s)
  # Weighted positives / negatives of each run of tied scores, ascending score.
  cp = np.cumsum(wp)[ends]
  cn = np.cumsum(wn)[ends]
  gp = np.diff(cp, prepend=0.0)
  gn = np.diff(cn, prepend=0.0)
  total_p, total_n = cp[-1], cn[-1]
  if total_p <= 0 or total_n <= 0:
    return float("nan")
  # A positive beats every negative of a lower score and ties with those of its own.
  wins = np.sum(gp * ((cn - gn) + 0.5 * gn))
  return float(wins / (total_p * total_n))


def gauc(labels, scores, users):
  """Group AUC: ``sum_u n_u AUC_u / sum_u n_u`` over users ``u`` with both classes.

  ``n_u`` is the number of impressions (rows) of user ``u`` and ``AUC_u`` the
  exact AUC (ties as 1/2) of that user's rows.  Users whose rows are all
  positive or all negative have no AUC and are skipped, from the sum and from
  the normaliser alike: this is the convention of the DIN paper (Zhou et al.,
  "Deep Interest Network for Click-Through Rate Prediction", KDD 2018,
  Alibaba), whose GAUC averages per-user AUCs weighted by impressions.

  Vectorised: one ``lexsort`` by (user, score), then cumulative sums and
  ``bincount`` (no loop over users).  ``users`` may be any sortable array
  (integers, strings).

  Returns:
    ``(value, info)``: ``value`` is ``nan`` when no user has both classes;
    ``info = dict(users_total, users_used, impressions_used)``.
  """
  pos = _labels(labels)
  n = pos.shape[0]
  s = _scores(scores, n)
  u = np.asarray(users).reshape(-1)
  if u.shape[0] != n:
    raise ValueError(f"got {n} labels but {u.shape[0]} users")
  if n == 0:
    return float("nan"), dict(users_total=0, users_used=0, impressions_used=0)
  order = np.lexsort((s, u))
  u, s, pos = u[order], s[order], pos[order]

  user_start = np.ones(n, dtype=bool)
  user_start[1:] = u[1:] != u[:-1]
  uid = np.cumsum(user_start) - 1                # dense user index of every row
  n_users = int(uid[-1]) + 1
  neg = ~pos
  cn = np.cumsum(neg, dtype=np.int64)
  # Negatives (over all users) strictly before each user's first row.
  starts = np.flatnonzero(user_start)
  neg_before_user = cn[starts] - neg[starts]

  ends = _run_ends(u, s)                          # runs of equal (user, score)
  cp_end = np.cumsum(pos, dtype=np.int64)[ends]
  cn_end = cn[ends]
  gp = np.diff(cp_end, prepend=0)
  gn = np.diff(cn_end, prepend=0)
  g_uid = uid[ends]
  below = cn_end - gn - neg_before_user[g_uid]   # same-user negatives with a lower score
  wins = np.bincount(g_uid, weights=gp * (below + 0.5 * gn), minlength=n_users)

  n_pos = np.bincount(uid, weights=pos, minlength=n_users)
  n_neg = np.bincount(uid, weights=neg, minlength=n_users)
  used = (n_pos > 0) & (n_neg > 0)
  imps = (n_pos + n_neg)[used]
  info = dict(users_total=n_users, users_used=int(used.sum()), impressions_used=int(imps.sum()))
  if not used.any():
    return float("nan"), info
  per_user = wins[used] / (n_pos[used] * n_neg[used])
  return float(np.sum(imps * per_user) / np.sum(imps)), info


def logloss(labels, probs, eps: float = 1e-7) -> float:
  """Mean binary cross-entropy of probabilities clipped to ``[eps, 1 - eps]``."""
  y = _labels(labels).astype(np.float64)
  p = np.clip(_scores(probs, y.shape[0]), eps, 1.0 - eps)
  return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def logloss_from_logits(labels, logits) -> float:
  """Mean binary cross-entropy of ``sigmoid(logits)``, stable for any logit.

  Uses ``-log sigmoid(z) = softplus(-z)`` and ``-log(1 - sigmoid(z)) = softplus(z)``,
  i.e. the per-example loss ``softplus(z) - y z`` with ``softplus(z) = logaddexp(0, z)``.
  """
  y = _labels(labels).astype(np.float64)
  z = _scores(logits, y.shape[0])
  return float(np.mean(np.logaddexp(0.0, z) - y * z))


def ctr_metrics(labels, logits, users=None) -> dict:
  """AUC, GAUC and log-loss of a binary CTR model's logits.

  AUC and GAUC are computed on the logits themselves (the same ranking as the
  probabilities, without the ties that rounding ``sigmoid`` to float32 creates
  for large logits).  Without ``users`` the GAUC is ``nan``.

  Returns:
    ``dict(auc, gauc, logloss, users_used)`` of Python floats (``users_used`` an int).
  """
  logits = np.asarray(logits, dtype=np.float64).reshape(-1)
  if users is None:
    g, used = float("nan"), 0
  else:
    g, info = gauc(labels, logits, users)
    used = info["users_used"]
  return dict(auc=auc(labels, logits), gauc=g, logloss=logloss_from_logits(labels, logits),
              users_used=used)
