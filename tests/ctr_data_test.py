import gzip
import json
import pathlib
import warnings

import ml_collections
import numpy as np
import pytest

from rocket.ctr import criteo, data, hashing, loaders
from rocket.ctr.features import (NUMERIC_VOCAB_SIZE, FieldSpec, Vocab, bucketize_log2, parse_crosses)
from rocket.data.base import DatasetError


def make_config(dataset, **kw):
  features = kw.pop("features", {})
  c = ml_collections.ConfigDict(dict(dataset=dataset, data_dir="", cache_dir="", seed=0))
  c.features = ml_collections.ConfigDict(dict(min_count=1, hash_buckets=0, train_subset=0, chunk_rows=1000))
  c.features.update(features)
  c.update(kw)
  return c


def auc(labels, scores):
  """Rank-sum AUC (no ties in the scores here)."""
  ranks = np.argsort(np.argsort(scores)) + 1
  pos = labels.sum()
  neg = len(labels) - pos
  return (ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)


# ---------------------------------------------------------------------------------------------
# hashing


def test_hashing_is_deterministic_and_numpy_equals_jax():
  import jax
  import jax.numpy as jnp

  x = np.concatenate([np.arange(-50, 5000), [2**31 - 1, -(2**31)]]).astype(np.int32)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no numpy overflow warnings
    np_mix = hashing.mix32(x)
    np_ids = hashing.hash_ids(x, 1000, salt=7)
    np_cross = hashing.cross_ids(x[:, None], x[None, :40], 977, salt=3)
    scalar = hashing.hash_ids(np.int64(123), 10)
  assert np_mix.dtype == np.uint32 and np_ids.dtype == np.int32 and np_cross.shape == (len(x), 40)
  np.testing.assert_array_equal(np_mix, np.asarray(hashing.mix32(jnp.asarray(x), xp=jnp)))
  jit_ids = jax.jit(lambda v: hashing.hash_ids(v, 1000, salt=7, xp=jnp))(jnp.asarray(x))
  np.testing.assert_array_equal(np_ids, np.asarray(jit_ids))
  jit_cross = jax.jit(lambda a, b: hashing.cross_ids(a[:, None], b[None, :], 977, salt=3, xp=jnp))
  np.testing.assert_array_equal(np_cross, np.asarray(jit_cross(jnp.asarray(x), jnp.asarray(x[:40]))))
  # Fixed values: the same in every process and on every machine.
  assert hashing.mix32(np.uint32(1)) == 1753845952
  assert int(scalar) == int(hashing.hash_ids(np.int32(123), 10))
  np.testing.assert_array_equal(hashing.hash_ids(x, 1000, salt=7), np_ids)
  assert not np.array_equal(hashing.hash_ids(x, 1000, salt=8), np_ids)
  with pytest.raises(TypeError):
    hashing.hash_ids(np.array([1.5]), 10)


def test_hash_range_and_uniformity():
  x = np.arange(200_000)
  for buckets in (1, 7, 100):
    ids = hashing.hash_ids(x, buckets, salt=1)
    assert ids.min() >= 0 and ids.max() < buckets
  counts = np.bincount(hashing.hash_ids(x, 100), minlength=100)  # mean 2000, std ~45
  assert counts.min() > 1750 and counts.max() < 2250
  counts = np.bincount(hashing.cross_ids(x // 500, x % 500, 100).ravel(), minlength=100)
  assert counts.min() > 1750 and counts.max() < 2250


def test_cross_is_order_sensitive():
  a, b = np.arange(1000), np.arange(1000)[::-1].copy()
  ab, ba = hashing.cross_ids(a, b, 1 << 20), hashing.cross_ids(b, a, 1 << 20)
  assert np.mean(ab == ba) < 0.01
  assert np.mean(hashing.cross_ids(a, b, 1 << 20, salt=1) == ab) < 0.01
  # Broadcasting: one user against many candidate items.
  np.testing.assert_array_equal(hashing.cross_ids(5, a, 1000), hashing.cross_ids(np.full(1000, 5), a, 1000))


def test_hash_strings_is_stable():
  vals = ["a", "b", "a", "é", ""]
  ids = hashing.hash_strings(vals, 1000, salt=2)
  assert ids.dtype == np.int32 and ids[0] == ids[2] and len(set(ids.tolist())) == 4
  np.testing.assert_array_equal(ids, hashing.hash_strings(np.array(vals, dtype=object), 1000, salt=2))
  assert hashing.hash_strings([b"a"], 1000, salt=2)[0] == ids[0]  # bytes == their utf-8 str
  # == hash_ids of the uint32 fingerprint, so a serving graph can reproduce it
  np.testing.assert_array_equal(ids, hashing.hash_ids(hashing.fingerprint(vals), 1000, salt=2))
  assert int(hashing.fingerprint(["rocket"])[0]) == 1144317208  # BLAKE2b: fixed across processes
  assert hashing.fingerprint(np.array(["x", "y"]), 64).dtype == np.uint64


# ---------------------------------------------------------------------------------------------
# features


def test_vocab_min_count_oov_and_serialization():
  v = Vocab.fit([5, 3, 3, 9, 9, 9, 7], min_count=2)
  assert len(v) == 3  # OOV + {9, 3}
  np.testing.assert_array_equal(v.values, [9, 3])  # by descending count
  np.testing.assert_array_equal(v.transform([9, 3, 5, 7, 100]), [1, 2, 0, 0, 0])
  assert v.transform(np.array([[3, 9]])).shape == (1, 2)
  ties = Vocab.fit(["b", "a", "c", "a", "b"])
  np.testing.assert_array_equal(ties.values, ["a", "b", "c"])  # ties by value
  d = json.loads(json.dumps(ties.to_dict()))
  again = Vocab.from_dict(d)
  assert len(again) == len(ties) == 4
  np.testing.assert_array_equal(again.transform(["c", "zz", "a"]), ties.transform(["c", "zz", "a"]))
  assert len(Vocab.fit([1, 2], min_count=5)) == 1  # everything OOV
  np.testing.assert_array_equal(Vocab.fit([1, 2], min_count=5).transform([1, 2]), [0, 0])


@pytest.mark.parametrize("merge_every", [1 << 20, 50])
def test_vocab_streaming_equals_fit(monkeypatch, merge_every):
  monkeypatch.setattr(Vocab, "MERGE_EVERY", merge_every)  # 50: counts are merged along the way
  rng = np.random.default_rng(0)
  for x in (rng.zipf(1.5, size=5000) % 700, np.array([f"v{i}" for i in rng.zipf(1.5, size=3000) % 300])):
    streamed = Vocab()
    for chunk in np.array_split(x, 13):
      streamed.update(chunk)
    streamed.finalize(3)
    fitted = Vocab.fit(x[rng.permutation(len(x))], 3)  # order does not matter
    assert streamed.to_dict() == fitted.to_dict()
    np.testing.assert_array_equal(streamed.transform(x), fitted.transform(x))
  with pytest.raises(TypeError):
    Vocab().update([1, 2]).update(["a"])


def test_bucketize_log2():
  x = np.array([np.nan, -7, -3, -2, -1, 0, 1, 2, 3, 10, 100, 1000, 1e30])
  expected = [0, 1, 1, 2, 3, 4, 5, 6, 8, 12, 28, 54, NUMERIC_VOCAB_SIZE - 1]
  np.testing.assert_array_equal(bucketize_log2(x), expected)
  strings = np.array(["", "-1", "0", "2", "3", "1000"])  # as read from a file: "" = missing
  np.testing.assert_array_equal(bucketize_log2(strings), [0, 3, 4, 6, 8, 54])
  ids = bucketize_log2(np.exp(np.linspace(0, 30, 1000)))
  assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < NUMERIC_VOCAB_SIZE
  assert np.all(np.diff(ids) >= 0)  # monotone


def test_parse_crosses_and_field_spec():
  assert parse_crosses("") == []
  assert parse_crosses("item*user_age, item*user_gender") == [("item", "user_age"), ("item", "user_gender")]
  assert parse_crosses("item*user_age*user_gender", ["item", "user_age", "user_gender"]) == [
      ("item", "user_age", "user_gender")]
  with pytest.raises(ValueError, match="'user_agee'"):
    parse_crosses("item*user_agee", ["item", "user_age"])
  with pytest.raises(ValueError):
    parse_crosses("item")
  with pytest.raises(ValueError):
    FieldSpec("x", 3, "ad")


# ---------------------------------------------------------------------------------------------
# real data (skipped without ../shared/data/ctr)


def _load_or_skip(name, **kw):
  try:
    return loaders.load_ctr_dataset(make_config(name, **kw))
  except DatasetError as e:
    pytest.skip(str(e))


def _check_common(ds):
  assert len(ds.fields) == ds.train.ids.shape[1]
  sizes = np.array([f.vocab_size for f in ds.fields])
  for split in (ds.train, ds.valid, ds.test):
    assert split.ids.dtype == np.int32 and split.labels.dtype == np.float32 and split.users.dtype == np.int64
    assert len(split.ids) == len(split.labels) == len(split.users)
    assert split.ids.min() >= 0 and np.all(split.ids.max(0) < sizes)
    assert set(np.unique(split.labels).tolist()) <= {0.0, 1.0}
  assert np.all(ds.train.ids.max(0) == sizes - 1)  # the vocab is fitted on train: every id used


@pytest.fixture(scope="module")
def frappe():
  return _load_or_skip("frappe")


def test_frappe(frappe):
  ds = frappe
  _check_common(ds)
  assert (len(ds.train), len(ds.valid), len(ds.test)) == (69265, 8658, 8659)
  assert ds.field_names[:2] == ["user", "item"] and len(ds.fields) == 10
  assert [f.side for f in ds.fields[:3]] == ["user", "item", "context"]
  assert 0.32 < ds.positive_rate < 0.34 and 0.3 < ds.test.labels.mean() < 0.36
  assert ds.train.users.min() >= 0 and ds.train.users.max() < 957
  u, first = np.unique(ds.train.users, return_index=True)  # user field id <-> raw user: one to one
  assert len(np.unique(ds.train.ids[first, 0])) == len(u) == ds.fields[0].vocab_size - 1
  # The split is fixed: another seed or a second load gives the same rows.
  again = _load_or_skip("frappe", seed=3)
  np.testing.assert_array_equal(again.test.ids, ds.test.ids)
  np.testing.assert_array_equal(again.valid.users, ds.valid.users)


def test_frappe_hashing_and_subset():
  ds = _load_or_skip("frappe", features=dict(hash_buckets=1000, train_subset=500))
  assert len(ds.train) == 500 and all(f.vocab_size == 1000 for f in ds.fields)
  assert ds.train.ids.min() >= 1 and ds.test.ids.max() < 1000
  assert len(np.unique(ds.train.ids[:, 0])) > 200


def test_movielens():
  ds = _load_or_skip("movielens", features=dict(min_count=2))
  _check_common(ds)
  assert len(ds.train) + len(ds.valid) + len(ds.test) == 100_000
  assert 9000 < len(ds.valid) < 11000 and 9000 < len(ds.test) < 11000
  assert ds.field_names == ["user", "item", "genre1", "genre2", "genre3", "user_age", "user_gender",
                            "user_occupation", "user_zip"]
  assert {f.name: f.side for f in ds.fields}["genre2"] == "item"
  assert {f.name: f.vocab_size for f in ds.fields}["user_age"] == 8  # 7 age groups + OOV
  assert 0.5 < ds.positive_rate < 0.6
  users = set(ds.train.users.tolist())
  assert len(users) == 943 and set(ds.test.users.tolist()) == users == set(ds.valid.users.tolist())
  assert (ds.test.ids[:, 1] == 0).mean() < 0.05  # few OOV items


def test_per_user_temporal_split():
  users = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1])
  times = np.array([5, 1, 3, 9, 2, 8, 1, 2, 4, 6, 7, 0, 3, 4])
  tr, va, te = data.per_user_temporal_split(users, times, frac=0.2)
  assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(len(users)))
  for u in (0, 1):
    t_tr, t_va, t_te = (times[s][users[s] == u] for s in (tr, va, te))
    assert len(t_te) >= 1 and len(t_va) >= 1 and t_tr.max() <= t_va.min() <= t_va.max() <= t_te.min()
  np.testing.assert_array_equal(te, [3, 5, 13])  # user 0's two latest (t=9, 8), user 1's latest (t=4)


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_ctr_is_deterministic_and_learnable():
  cfg = make_config("synthetic_ctr", seed=1)
  cfg.synthetic_ctr = ml_collections.ConfigDict(dict(num_train=4000, num_valid=500, num_test=3000))
  a, b = loaders.load_ctr_dataset(cfg), loaders.load_ctr_dataset(cfg)
  np.testing.assert_array_equal(a.train.ids, b.train.ids)
  np.testing.assert_array_equal(a.test.labels, b.test.labels)
  cfg.seed = 2
  c = loaders.load_ctr_dataset(cfg)
  assert not np.array_equal(a.test.labels, c.test.labels)
  _check_common(a)
  assert (len(a.train), len(a.valid), len(a.test)) == (4000, 500, 3000)
  assert [f.side for f in a.fields] == ["user", "item", "context", "context"]
  assert a.test_true_prob.shape == (3000,) and 0.1 < a.positive_rate < 0.9
  assert auc(a.test.labels, a.test_true_prob) > 0.75  # the oracle is far above chance
  assert abs(a.test_true_prob.mean() - a.test.labels.mean()) < 0.03


# ---------------------------------------------------------------------------------------------
# Criteo / Avazu streaming, on small files written here


def write_criteo(path, n=200, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  ints = rng.integers(-3, 3000, (n, 13)).astype(str).astype(object)
  ints[rng.random((n, 13)) < 0.2] = ""
  pool = np.array([f"{v:08x}" for v in rng.integers(0, 2**32, 30)])
  cats = pool[rng.integers(0, 30, (n, 26))].astype(object)
  cats[rng.random((n, 26)) < 0.1] = ""
  rows = ["\t".join([str(y), *i, *c]) for y, i, c in zip(labels, ints, cats)]
  text = "\n".join(rows) + "\n"
  if path.suffix == ".gz":
    with gzip.open(path, "wt") as f:
      f.write(text)
  else:
    path.write_text(text)
  return labels, ints, cats


def test_criteo_streaming_cache_and_missing_values(tmp_path, monkeypatch):
  src = tmp_path / "criteo"
  src.mkdir()
  labels, ints, cats = write_criteo(src / "train.txt")
  cfg = make_config("criteo", data_dir=str(src), cache_dir=str(tmp_path / "cache"),
                    features=dict(min_count=2, chunk_rows=37))
  ds = loaders.load_ctr_dataset(cfg)
  _check_common(ds)
  assert (len(ds.train), len(ds.valid), len(ds.test)) == (160, 20, 20)
  assert len(ds.fields) == 39 and ds.field_names[0] == "I1" and ds.field_names[-1] == "C26"
  np.testing.assert_array_equal(np.concatenate([ds.train.labels, ds.valid.labels, ds.test.labels]), labels)
  assert not np.any(ds.test.users)  # no user id in Criteo
  assert isinstance(ds.train.ids, np.memmap)
  # Streaming in chunks == fitting each field's vocabulary on the train rows at once.
  all_ids = np.concatenate([ds.train.ids, ds.valid.ids, ds.test.ids])
  for f in (0, 5, 12):
    raw = bucketize_log2(ints[:, f].astype(str))
    np.testing.assert_array_equal(all_ids[:, f], Vocab.fit(raw[:160], 2).transform(raw))
    missing = ints[:, f] == ""
    assert len(np.unique(all_ids[missing, f])) == 1  # missing is one value of its own
  for f in (0, 25):
    raw = cats[:, f].astype(str)
    np.testing.assert_array_equal(all_ids[:, 13 + f], Vocab.fit(raw[:160], 2).transform(raw))
  # The second load reads the cache: no parsing at all.
  def boom(*a, **k):
    raise AssertionError("the cache was not reused")
  monkeypatch.setattr(criteo, "iter_chunks", boom)
  monkeypatch.setattr(criteo, "count_rows", boom)
  again = loaders.load_ctr_dataset(cfg)
  np.testing.assert_array_equal(again.test.ids, ds.test.ids)
  assert [f.vocab_size for f in again.fields] == [f.vocab_size for f in ds.fields]


def test_criteo_gzip_and_hashing(tmp_path):
  write_criteo(tmp_path / "plain.txt", seed=1)
  write_criteo(tmp_path / "train.txt.gz", seed=1)
  cache = str(tmp_path / "cache")
  feats = dict(min_count=1, chunk_rows=64)
  plain = loaders.load_ctr_dataset(make_config("criteo", data_dir=str(tmp_path / "plain.txt"),
                                               cache_dir=cache,
                                            features=feats))
  gz = loaders.load_ctr_dataset(
      make_config("criteo", data_dir=str(tmp_path), cache_dir=cache, features=feats))
  np.testing.assert_array_equal(plain.train.ids, gz.train.ids)
  np.testing.assert_array_equal(plain.test.labels, gz.test.labels)
  hashed = loaders.load_ctr_dataset(make_config("criteo", data_dir=str(tmp_path), cache_dir=cache,
                                             features=dict(hash_buckets=50, chunk_rows=64)))
  assert all(f.vocab_size == 50 for f in hashed.fields)
  assert hashed.train.ids.min() >= 1 and hashed.train.ids.max() < 50
  assert len(list((tmp_path / "cache" / "ctr").iterdir())) == 3  # one cache per file and setting


def test_criteo_bad_row(tmp_path):
  (tmp_path / "train.txt").write_text("1\t2\t3\n" * 20)
  with pytest.raises(DatasetError, match="columns"):
    loaders.load_ctr_dataset(make_config("criteo", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))


def write_avazu(path, n=200, seed=0):
  rng = np.random.default_rng(seed)
  pool = [f"{v:08x}" for v in rng.integers(0, 2**32, 6)]
  cols = {c: rng.choice(pool, n) for c in criteo.AvazuFormat.COLUMNS}
  cols["id"] = np.arange(n).astype(str)
  cols["click"] = rng.integers(0, 2, n).astype(str)
  cols["hour"] = rng.choice(["14102100", "14102123", "14102205"], n)  # Tue 21 and Wed 22 Oct 2014
  cols["device_id"] = np.where(rng.random(n) < 0.7, criteo.AVAZU_ANON_DEVICE, cols["device_id"])
  cols["device_ip"] = rng.choice(["ip1", "ip2", "ip3"], n)
  cols["device_model"] = rng.choice(["m1", "m2"], n)
  cols["C15"] = np.where(rng.random(n) < 0.1, "", cols["C15"])  # a missing value
  names = list(criteo.AvazuFormat.COLUMNS)
  text = ",".join(names) + "\n" + "".join(",".join(cols[c][i] for c in names) + "\n" for i in range(n))
  with gzip.open(path, "wt") as f:
    f.write(text)
  return cols


def test_avazu_streaming(tmp_path):
  cols = write_avazu(tmp_path / "train.gz")
  cfg = make_config("avazu", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                    features=dict(chunk_rows=45))
  ds = loaders.load_ctr_dataset(cfg)
  _check_common(ds)
  assert (len(ds.train), len(ds.valid), len(ds.test)) == (160, 20, 20)
  names = ds.field_names
  assert names[:2] == ["hour", "weekday"] and "id" not in names and "click" not in names
  assert len(names) == 23
  sides = {f.name: f.side for f in ds.fields}
  assert sides["device_ip"] == "user" and sides["C14"] == "item" and sides["site_id"] == "context"
  labels = np.concatenate([ds.train.labels, ds.valid.labels, ds.test.labels])
  np.testing.assert_array_equal(labels, cols["click"].astype(np.float32))
  ids = np.concatenate([ds.train.ids, ds.valid.ids, ds.test.ids])
  weekday = np.where(np.char.startswith(cols["hour"], "141021"), 1, 2)
  np.testing.assert_array_equal(ids[:, 1], Vocab.fit(weekday[:160]).transform(weekday))
  hour = cols["hour"].astype(int) % 100
  np.testing.assert_array_equal(ids[:, 0], Vocab.fit(hour[:160]).transform(hour))
  c15 = names.index("C15")
  assert len(np.unique(ids[cols["C15"] == "", c15])) == 1
  # Users: the device id, or ip + model for the anonymous device id.
  users = np.concatenate([ds.train.users, ds.valid.users, ds.test.users])
  anon = cols["device_id"] == criteo.AVAZU_ANON_DEVICE
  ip_model = np.char.add(np.char.add(cols["device_ip"], "|"), cols["device_model"])
  key = np.where(anon, ip_model, cols["device_id"])
  _, expected = np.unique(key, return_inverse=True)
  _, got = np.unique(users, return_inverse=True)
  assert len(np.unique(np.stack([expected, got]), axis=1)[0]) == len(np.unique(expected))  # same partition
  assert len(np.unique(got)) == len(np.unique(expected)) and users.min() >= 0


def test_missing_data_dir_names_the_flag(tmp_path):
  for name in ("frappe", "movielens", "criteo", "avazu"):
    with pytest.raises(DatasetError, match="--config.data_dir"):
      loaders.load_ctr_dataset(make_config(name, data_dir=str(tmp_path / "nowhere")))
  with pytest.raises(DatasetError, match="unknown CTR dataset"):
    loaders.load_ctr_dataset(make_config("mnist"))


def test_candidate_dirs_mirror_cifar(monkeypatch, tmp_path):
  monkeypatch.setenv("ROCKET_DATA_DIR", str(tmp_path))
  dirs = data.candidate_dirs("movielens")
  assert dirs[0] == tmp_path / "ctr" / "movielens100k"
  assert dirs[1] == pathlib.Path(data.__file__).resolve().parents[2].parent / "shared/data/ctr/movielens100k"
