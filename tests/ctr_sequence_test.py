"""Sequence fields (a user's past items, MovieLens) and DIN: no leakage, masking, export."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import ROOT, load_config

from rocket import train
from rocket.config_util import apply_overrides
from rocket.ctr import data as ctr_data
from rocket.ctr import export
from rocket.ctr.embeddings import FieldEmbeddings, default_embedding_config
from rocket.ctr.models import CTRRocketNet, NetSpec
from rocket.ctr.serving import Scorer
from rocket.data.base import DatasetError

MOVIELENS = ROOT.parent / "shared" / "data" / "ctr" / "movielens100k" / "ml100k_ctr.npz"
needs_movielens = pytest.mark.skipif(not MOVIELENS.is_file(), reason="MovieLens-100k not in ../shared")


def brute_past_rows(users, times, length, keep):
  out = np.full((len(users), length), -1)
  for i in range(len(users)):
    rows = [j for j in range(len(users)) if users[j] == users[i] and times[j] < times[i] and keep[j]]
    rows.sort(key=lambda j: (times[j], j), reverse=True)  # the most recent first
    out[i, :len(rows[:length])] = rows[:length]
  return out


@pytest.mark.parametrize("liked_only", [False, True])
def test_past_rows_hold_only_strictly_earlier_events_of_the_same_user(liked_only):
  rng = np.random.default_rng(0)
  users, times = rng.integers(0, 4, 60), rng.integers(0, 12, 60)  # many ties in time
  keep = rng.random(60) < 0.5 if liked_only else np.ones(60, bool)
  got = ctr_data.past_rows(users, times, 5, keep if liked_only else None)
  np.testing.assert_array_equal(got, brute_past_rows(users, times, 5, keep))


@needs_movielens
def test_movielens_history_is_the_users_earlier_items_and_never_the_example():
  base = ctr_data.load_movielens(opts=ctr_data.FeatureOptions())
  ds = ctr_data.load_movielens(opts=ctr_data.FeatureOptions(history=8, history_of="liked"))
  assert [s.name for s in ds.sequences] == ["history"] and ds.train.ids.shape[1] == 9 + 8
  assert [c.name for c in ds.columns][9:11] == ["history[0]", "history[1]"]
  np.testing.assert_array_equal(ds.test.ids[:, :9], base.test.ids)  # the base fields are unchanged
  # rebuild the history of some test and train rows from the raw file, by brute force
  with np.load(MOVIELENS) as z:
    users, items, times, labels = (z[k].astype(np.int64) for k in ("user_id", "item_id", "timestamp",
                                                                      "label"))
  splits = ctr_data.per_user_temporal_split(users, times)
  item_vocab = ds.encoders[1]["values"]
  to_id = {int(v): i + 1 for i, v in enumerate(item_vocab)}
  for split, rows in (("train", splits[0]), ("test", splits[2])):
    part = getattr(ds, split)
    for k in np.random.default_rng(1).choice(len(rows), 40, replace=False):
      r = rows[k]
      earlier = np.flatnonzero((users == users[r]) & (times < times[r]) & (labels > 0))
      earlier = sorted(earlier, key=lambda j: (times[j], j), reverse=True)[:8]
      want = [to_id.get(int(items[j]), 0) for j in earlier] + [0] * (8 - len(earlier))
      np.testing.assert_array_equal(part.ids[k, 9:], want)


def test_history_is_refused_where_there_are_no_event_times(tmp_path):
  from rocket.ctr.loaders import load_ctr_dataset  # noqa: PLC0415

  with pytest.raises(DatasetError, match="only movielens has them"):
    load_ctr_dataset(load_config("tiny", file="ctr_frappe.py", **{"features.history": 5}))
  with pytest.raises(ValueError, match="kind='din' attends over a behaviour sequence"):
    train.validate_config(load_config("tiny", file="ctr_frappe.py", method="light",
                                      **{"light.kind": "din"}))
  with pytest.raises(ValueError, match="history_of"):
    ctr_data.FeatureOptions(history=3, history_of="clicked")


def seq_model(kind, l2=0.0):
  emb = ml_collections.FrozenConfigDict(dict(default_embedding_config(), l2=l2))
  return CTRRocketNet(light=NetSpec(kind, (8,)), booster=NetSpec("mlp", (16,)),
                      base_vocab_sizes=(5, 7), emb_cfg=emb, sequences=((1, 4),))


@pytest.mark.parametrize("kind", ["lr", "fm", "deepfm", "autoint", "mlp", "din"])
def test_a_sequence_is_pooled_over_its_set_positions_in_any_order(kind):
  m = seq_model(kind)
  ids = jnp.asarray([[1, 2, 3, 4, 0, 0], [2, 5, 0, 0, 0, 0], [3, 6, 6, 1, 2, 5]], jnp.int32)
  params = m.init(jax.random.key(0), ids)["params"]
  z = lambda x: np.asarray(m.apply({"params": params}, jnp.asarray(x, jnp.int32))["logits"]["light"])  # noqa: E731
  base = z(ids)
  np.testing.assert_allclose(z([[1, 2, 4, 3, 0, 0], [2, 5, 0, 0, 0, 0], [3, 6, 2, 5, 1, 6]]), base,
                             rtol=1e-5, atol=1e-6)  # order within the sequence does not matter
  np.testing.assert_allclose(z([[1, 2, 0, 3, 0, 4], [2, 5, 0, 0, 0, 0], [3, 6, 6, 1, 2, 5]]), base,
                             rtol=1e-5, atol=1e-6)  # nor where the padding sits
  assert not np.allclose(z([[1, 2, 3, 0, 0, 0], [2, 5, 1, 0, 0, 0], [3, 6, 6, 0, 0, 0]]), base)
  with pytest.raises(ValueError, match="ids must have 6 columns"):
    m.apply({"params": params}, ids[:, :5])


def test_din_attention_weights_sum_to_one_over_the_set_positions():
  from rocket.ctr.models import DINAttention  # noqa: PLC0415

  att = DINAttention()
  q, k = jnp.ones((2, 4)), jax.random.normal(jax.random.key(0), (2, 3, 4))
  mask = jnp.asarray([[True, True, False], [False, False, False]])
  params = att.init(jax.random.key(1), q, k, mask)
  out = np.asarray(att.apply(params, q, k, mask))
  np.testing.assert_array_equal(out[1], 0)  # an empty sequence pools to zero
  # with one set position the weight is 1: the pooled vector is that row
  one = np.asarray(att.apply(params, q, k, jnp.asarray([[False, True, False]] * 2)))
  np.testing.assert_allclose(one, np.asarray(k[:, 1]), rtol=1e-6)


def test_the_l2_penalty_counts_a_sequences_set_rows_only():
  m = seq_model("mlp", l2=0.5)
  ids = jnp.asarray([[1, 2, 3, 4, 0, 0], [2, 5, 6, 0, 0, 0]], jnp.int32)
  params = m.init(jax.random.key(0), ids)["params"]
  pen = float(m.apply({"params": params}, ids, train=True)["penalties"]["emb_l2"])
  tables = FieldEmbeddings.from_config(m.emb_cfg, (5, 7))  # the plain fields share one table
  t = [np.asarray(tables.field_table(params["shared"]["embedding"], f)) for f in (0, 1)]
  rows = [t[0][[1, 2]], t[1][[2, 5]], t[1][[3, 4]], t[1][[6]]]  # fields, then the history's set ids
  assert pen == pytest.approx(0.5 * sum(float(np.sum(r ** 2)) for r in rows) / 2, rel=1e-5)


@needs_movielens
def test_a_din_run_exports_and_scores_a_raw_history(tmp_path):
  c = load_config("", file="ctr_movielens.py", method="rocket")
  c = apply_overrides(c, {"features.history": 6, "features.train_subset": 3000, "features.crosses": "",
                          "num_epochs": 1, "batch_size": 256, "eval_every_epochs": 1.0,
                          "progress_bar": False, "tensorboard": False, "light.kind": "din",
                          "booster.kind": "din", "booster.hidden": "32,16", "booster.cross_layers": 0})
  train.train_and_evaluate(c, tmp_path / "run")
  run = train.load_run(tmp_path / "run")
  assert run.model.sequences == ((1, 6),) and "din0" in run.state.params["light"]["head"]
  manifest = export.export(run, tmp_path / "s")
  assert manifest["sequences"] == [{"name": "history", "field": "item", "length": 6}]
  s = Scorer.load(tmp_path / "s")
  req, cand = export.field_layout(run.data.columns)
  ids = np.asarray(run.data.test.ids[:10]).copy()
  ids[:, req] = ids[0, req]  # one request (row 0's user and history), ten candidates
  z = run.model.apply({"params": run.state.params}, ids, only="light")["logits"]["light"]
  np.testing.assert_allclose(s.score(ids[0, req], ids[:, cand]), jax.nn.sigmoid(z), atol=1e-6)
  names, items = run.data.field_names, run.data.encoders[1]["values"]
  raw = lambda f, i: run.data.encoders[f]["values"][i - 1] if i > 0 else -1  # noqa: E731
  request = {names[f]: raw(f, ids[0, f]) for f in req if f < len(names)}
  history = [items[i - 1] for i in ids[0, len(names):] if i > 0]
  candidates = {names[f]: [raw(f, i) for i in ids[:, f]] for f in cand}
  np.testing.assert_array_equal(s.score_raw({**request, "history": history}, candidates),
                                s.score(ids[0, req], ids[:, cand]))
  # a shorter history is padded, and padding is masked: the last item dropped = its id zeroed
  short = ids[0, req].copy()
  short[len(req) - 6 + len(history) - 1:] = 0
  np.testing.assert_array_equal(s.score_raw({**request, "history": history[:-1]}, candidates),
                                s.score(short, ids[:, cand]))
