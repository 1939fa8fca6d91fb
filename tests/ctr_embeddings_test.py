import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rocket.ctr import embeddings as emb

VOCAB = (3, 40, 1000, 2345)
B = 16


def _cfg(**overrides):
  cfg = emb.default_embedding_config()
  cfg.dim = 8
  cfg.buckets = 100
  cfg.update(overrides)
  return cfg


def _ids(vocab=VOCAB, n=B, seed=0):
  rng = np.random.default_rng(seed)
  ids = np.stack([rng.integers(0, v, n) for v in vocab], axis=1)
  ids[0] = 0                                           # the OOV id
  ids[1] = np.asarray(vocab) - 1                       # the largest ids
  return jnp.asarray(ids, jnp.int32)


def _eval_params(cfg, vocab=VOCAB):
  module = emb.FieldEmbeddings.from_config(cfg, vocab)
  return jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((1, len(vocab)), jnp.int32))


def _random_like(shapes, seed=0):
  # numpy-filled params of the module's layout: compiling `init` (threefry) for every config is slow on CPU.
  rng = np.random.default_rng(seed)
  fill = lambda s: jnp.asarray((rng.normal(size=s.shape) * 0.1).astype(s.dtype))  # noqa: E731
  return jax.tree_util.tree_map(fill, shapes)


def _init(cfg, vocab=VOCAB):
  """(module, params, ids) with random params; `test_init` covers the module's own initialiser."""
  module = emb.FieldEmbeddings.from_config(cfg, vocab)
  return module, _random_like(_eval_params(cfg, vocab)["params"]), _ids(vocab)


def _shapes(tree):
  return jax.tree_util.tree_map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)


def test_default_config():
  cfg = emb.default_embedding_config()
  assert cfg.to_dict() == dict(dim=16, rows="full", buckets=100_000, dims="", rank=0, dtype="float32",
                               qat=False, int8=False, l2=0.0)
  with pytest.raises(ValueError, match="unknown embedding config"):
    emb.FieldEmbeddings.from_config(dict(dim=8, bukets=3), VOCAB)
  module = emb.FieldEmbeddings.from_config(dict(dim=8), VOCAB, name="embeddings")
  assert module.rows == "full" and module.dim == 8 and module.vocab_sizes == VOCAB


def test_init():
  cfg = _cfg(rows="qr", rank=2, dims="2,4,2,8")
  module = emb.FieldEmbeddings.from_config(cfg, VOCAB, init_std=0.05)
  params = jax.jit(module.init)(jax.random.key(0), _ids())["params"]
  assert _shapes(params) == _shapes(_eval_params(cfg)["params"])
  assert "fields" not in params                                # every field is projected or qr
  rem = params["field_2"]["rem"]["embedding"]                 # dense tables: N(0, init_std)
  np.testing.assert_allclose(np.std(rem), 0.05, rtol=0.2)
  quo = params["field_2"]["quo"]["embedding"]                 # ... a quotient table starts near 1
  assert quo.shape == (10, 2)
  np.testing.assert_allclose(np.mean(quo), 1.0, atol=0.05)
  lr = params["field_3"]                                       # low rank: the products behave alike
  assert lr["rem"]["embedding"].shape == (100, 2) and lr["quo"]["embedding"].shape == (24, 2)
  np.testing.assert_allclose(np.std(lr["rem"]["embedding"]), 0.05, rtol=0.2)
  assert 0.025 < np.std(lr["rem"]["embedding"] @ lr["rem"]["factor"]) < 0.1   # a 2 x 8 factor: noisy
  np.testing.assert_allclose(np.mean(lr["quo"]["embedding"] @ lr["quo"]["factor"]), 1.0, atol=0.05)


def test_init_of_the_shared_table():
  module = emb.FieldEmbeddings.from_config(_cfg(rows="hash"), VOCAB, init_std=0.05)
  table = jax.jit(module.init)(jax.random.key(0), _ids())["params"]["fields"]["embedding"]
  assert table.shape == (243, 8)
  np.testing.assert_allclose(np.mean(table), 0.0, atol=0.01)
  np.testing.assert_allclose(np.std(table), 0.05, rtol=0.1)


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(rows="hash"),
    dict(rows="qr"),
    dict(rows="qr", dims="auto", rank=2, dtype="bfloat16", qat=True),
    dict(rows="hash", dims="4,4,8,8", rank=3, dtype="float16"),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "full")
def test_modes_output_and_gradients(overrides):
  cfg = _cfg(**overrides)
  module, params, ids = _init(cfg)

  def loss(p):
    out = module.apply({"params": p}, ids)
    return jnp.sum(jnp.sin(out)), out

  grads, out = jax.jit(jax.grad(loss, has_aux=True))(params)
  assert out.shape == (B, len(VOCAB), 8) and out.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out)))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert bool(jnp.all(jnp.isfinite(g.astype(jnp.float32)))), path
    assert float(jnp.max(jnp.abs(g.astype(jnp.float32)))) > 0, f"no gradient reaches {path}"
  report = emb.embedding_report(cfg, VOCAB)
  assert report["bytes"] == emb.embedding_bytes(params)
  assert report["params"] == sum(x.size for x in jax.tree_util.tree_leaves(params))


def test_full_is_a_plain_gather_from_one_table():
  module, params, ids = _init(_cfg())
  assert _shapes(params) == {"fields": {"embedding": ((sum(VOCAB), 8), jnp.float32)}}
  assert module.offsets() == (0, 3, 43, 1043)
  out = module.apply({"params": params}, ids)
  table = np.asarray(params["fields"]["embedding"])
  for f, (start, stop) in enumerate(zip((0, 3, 43, 1043), (3, 43, 1043, sum(VOCAB)))):
    np.testing.assert_array_equal(module.field_table(params, f), table[start:stop])
    np.testing.assert_array_equal(out[:, f], table[start:stop][ids[:, f]])
  assert emb.embedding_bytes(params) == sum(VOCAB) * 8 * 4


def test_the_shared_table_equals_per_field_tables():
  """Plain fields (full and hashed) split out of the shared table by their offsets are the
  per-field tables of a reference lookup, for the fields and for sequences of ids."""
  vocab = (7, 300, 50, 5000, 2)
  module, params, _ = _init(_cfg(rows="hash", buckets=64), vocab)
  assert [s.mode for s in module.plan()] == ["full", "hash", "full", "hash", "full"]
  assert module.offsets() == (0, 7, 71, 121, 185)
  assert params["fields"]["embedding"].shape == (187, 8)
  tables = [np.asarray(module.field_table(params, f)) for f in range(len(vocab))]
  assert [len(t) for t in tables] == [7, 64, 50, 64, 2]
  np.testing.assert_array_equal(np.concatenate(tables), params["fields"]["embedding"])
  ids = _ids(vocab, n=64, seed=3)
  seq = jnp.asarray(np.random.default_rng(4).integers(0, 5000, (64, 6)), jnp.int32)
  out, (rows3, rows0) = module.apply({"params": params}, ids, sequences=((3, seq), (0, seq % 7)))
  for f in range(len(vocab)):
    rows = emb.hash_rows(ids[:, f], 64) if f in (1, 3) else ids[:, f]
    np.testing.assert_array_equal(out[:, f], tables[f][np.asarray(rows)])
  np.testing.assert_array_equal(rows3, tables[3][np.asarray(emb.hash_rows(seq, 64))])
  np.testing.assert_array_equal(rows0, tables[0][np.asarray(seq % 7)])


def test_mixed_layout_keeps_other_fields_apart():
  # qr: the fields within `buckets` rows are plain; the two big ones keep their rem/quo tables.
  module, params, ids = _init(_cfg(rows="qr"))
  assert set(params) == {"fields", "field_2", "field_3"} and module.offsets() == (0, 3, None, None)
  assert params["fields"]["embedding"].shape == (43, 8)
  out = module.apply({"params": params}, ids)
  for f in (0, 1):
    np.testing.assert_array_equal(out[:, f], module.field_table(params, f)[ids[:, f]])
  # auto dims: the widest fields are plain, the narrower ones have their own table and projection.
  vocab = (10**4, 10**4, 100, 2, 10**4)
  module, params, ids = _init(_cfg(dims="auto"), vocab)
  assert [s.dim for s in module.plan()] == [8, 8, 3, 2, 8]
  assert module.offsets() == (0, 10**4, None, None, 2 * 10**4)
  assert set(params) == {"fields", "field_2", "field_3"}
  assert _shapes(params["field_2"]) == {"table": {"embedding": ((100, 3), jnp.float32)},
                                        "proj": {"kernel": ((3, 8), jnp.float32)}}
  out = module.apply({"params": params}, ids)
  for f in (0, 1, 4):
    np.testing.assert_array_equal(out[:, f], module.field_table(params, f)[ids[:, f]])
  p = params["field_3"]
  np.testing.assert_allclose(out[:, 3], p["table"]["embedding"][ids[:, 3]] @ p["proj"]["kernel"], rtol=1e-5)
  # a module whose fields are all qr has no shared table
  assert "fields" not in _eval_params(_cfg(rows="qr", buckets=2))["params"]


def test_hash_rows_bytes_and_lookup():
  cfg = _cfg(rows="hash")
  module, params, ids = _init(cfg)
  assert _shapes(params) == {"fields": {"embedding": ((243, 8), jnp.float32)}}
  assert [module.field_table(params, f).shape[0] for f in range(4)] == [3, 40, 100, 100]  # 3, 40 fit
  assert emb.embedding_bytes(params) == (3 + 40 + 100 + 100) * 8 * 4
  report = emb.embedding_report(cfg, VOCAB)
  assert report["rows"] == 243 and report["modes"] == ("full", "full", "hash", "hash")
  assert report["full_bytes"] == sum(VOCAB) * 8 * 4
  out = module.apply({"params": params}, ids)
  rows = emb.hash_rows(ids[:, 3], 100)
  np.testing.assert_array_equal(out[:, 3], module.field_table(params, 3)[rows])
  # The hash is deterministic, in range and spreads ids over the buckets.
  h = np.asarray(emb.hash_rows(jnp.arange(100_000), 100))
  np.testing.assert_array_equal(h, np.asarray(emb.hash_rows(jnp.arange(100_000), 100)))
  assert h.min() >= 0 and h.max() < 100
  counts = np.bincount(h, minlength=100)
  assert counts.min() > 800 and counts.max() < 1200


def test_qr_rows_bytes_and_lookup():
  cfg = _cfg(rows="qr")
  module, params, ids = _init(cfg)
  assert _shapes(params["field_2"]) == {"rem": {"embedding": ((100, 8), jnp.float32)},
                                        "quo": {"embedding": ((10, 8), jnp.float32)}}
  assert _shapes(params["field_3"]) == {"rem": {"embedding": ((100, 8), jnp.float32)},
                                        "quo": {"embedding": ((24, 8), jnp.float32)}}   # ceil(2345/100)
  assert emb.embedding_bytes(params) == (3 + 40 + 100 + 10 + 100 + 24) * 8 * 4
  report = emb.embedding_report(cfg, VOCAB)
  assert report["rows"] == 277 and report["field_rows"] == (3, 40, 110, 124)
  out = module.apply({"params": params}, ids)
  p = params["field_3"]
  want = p["rem"]["embedding"][ids[:, 3] % 100] * p["quo"]["embedding"][ids[:, 3] // 100]
  np.testing.assert_allclose(out[:, 3], want, rtol=1e-6)
  # Every id of the field gets its own (remainder, quotient) pair of rows.
  every = jnp.arange(2345)
  pairs = set(zip(np.asarray(every % 100).tolist(), np.asarray(every // 100).tolist()))
  assert len(pairs) == 2345


def test_dims_auto_and_projection():
  vocab = (10**6, 10**4, 100, 2)
  cfg = _cfg(dim=16, dims="auto")
  report = emb.embedding_report(cfg, vocab)       # eval_shape: the big table is never allocated
  # 16 * (v / 1e6) ** 0.25 = 16, 5.06, 1.6, 0.6 -> rounded and clipped to [2, 16].
  assert report["dims"] == (16, 5, 2, 2)
  tables = 10**6 * 16 + 10**4 * 5 + 100 * 2 + 2 * 2
  projections = (5 + 2 + 2) * 16
  assert report["params"] == tables + projections
  assert report["bytes"] == 4 * (tables + projections)
  assert emb.field_dims("4,8", 16, (5, 6)) == (4, 8)
  with pytest.raises(ValueError, match="comma list"):
    emb.field_dims("4,x", 16, (5, 6))
  with pytest.raises(ValueError, match="2 positive widths"):
    emb.field_dims("4", 16, (5, 6))
  module, params, ids = _init(_cfg(dims="2,4,8,12"))
  assert "field_2" not in params and module.offsets()[2] == 0         # width `dim`: the shared table
  assert params["field_3"]["proj"]["kernel"].shape == (12, 8)
  out = module.apply({"params": params}, ids)
  want = params["field_0"]["table"]["embedding"][ids[:, 0]] @ params["field_0"]["proj"]["kernel"]
  np.testing.assert_allclose(out[:, 0], want, rtol=1e-5, atol=1e-7)


def test_low_rank_only_where_it_saves():
  cfg = _cfg(rank=3)
  module, params, ids = _init(cfg)
  # 3 x 8 = 24 <= 3 * (3 + 8): the tiny field stays dense (and plain).
  assert _shapes(params["fields"]) == {"embedding": ((3, 8), jnp.float32)} and "field_0" not in params
  assert _shapes(params["field_2"]) == {"table": {"embedding": ((1000, 3), jnp.float32),
                                                  "factor": ((3, 8), jnp.float32)}}
  n = 3 * 8 + (40 + 1000 + 2345 + 3 * 8) * 3
  assert emb.embedding_bytes(params) == 4 * n
  out = module.apply({"params": params}, ids)
  p = params["field_2"]["table"]
  np.testing.assert_allclose(out[:, 2], p["embedding"][ids[:, 2]] @ p["factor"], rtol=1e-5, atol=1e-7)


def test_half_precision_storage():
  for dtype in ("float16", "bfloat16"):
    shapes = _eval_params(_cfg(rows="qr", rank=3, dtype=dtype))["params"]
    assert {x.dtype for x in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype(dtype)}
    half = emb.embedding_report(_cfg(rows="qr", rank=3, dtype=dtype), VOCAB)["bytes"]
    assert half == emb.embedding_bytes(shapes)
    assert 2 * half == emb.embedding_report(_cfg(rows="qr", rank=3), VOCAB)["bytes"]
    # With projections only the tables shrink; the projections stay float32.
    proj = (2 + 4 + 12) * 8 * 4
    b16 = emb.embedding_report(_cfg(dims="2,4,8,12", dtype=dtype), VOCAB)["bytes"]
    assert 2 * (b16 - proj) == emb.embedding_report(_cfg(dims="2,4,8,12"), VOCAB)["bytes"] - proj
  module, params, ids = _init(_cfg(dtype="bfloat16"))
  out = module.apply({"params": params}, ids)
  assert out.dtype == jnp.float32
  for f in range(len(VOCAB)):
    table = module.field_table(params, f)
    assert table.dtype == jnp.bfloat16
    np.testing.assert_array_equal(out[:, f], table[ids[:, f]].astype(jnp.float32))


def _fake_quant(x):
  x = np.asarray(x, np.float64)
  scale = np.abs(x).max(axis=-1, keepdims=True) / 127
  return np.round(x / np.where(scale > 0, scale, 1)) * scale


@pytest.mark.parametrize("overrides", [dict(), dict(rows="qr", dims="auto", rank=3)])
def test_int8_post_training_quantisation(overrides):
  cfg = _cfg(**overrides)
  module, params, ids = _init(cfg)
  q = emb.quantize_int8(params)
  module8 = emb.FieldEmbeddings.from_config(cfg, VOCAB, int8=True)
  assert _shapes(q) == _shapes(_eval_params(_cfg(**overrides, int8=True))["params"])
  assert emb.quantize_int8(q) == q                                      # already converted
  # Bytes: every float32 table becomes int8 (1/4) plus one float32 scale per row.
  n_bytes = 0
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    rows, width = x.shape
    is_table = path[-1].key == "embedding"
    n_bytes += rows * width + 4 * rows if is_table else 4 * rows * width
  assert emb.embedding_bytes(q) == n_bytes
  cfg8 = _cfg(**overrides, int8=True)
  assert emb.embedding_report(cfg8, VOCAB)["bytes"] == n_bytes
  # Dequantised rows are within half a step of the float rows.
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    if path[-1].key != "embedding":
      continue
    qnode = q
    for k in path[:-1]:
      qnode = qnode[k.key]
    x = np.asarray(x)
    xhat = np.asarray(qnode["q"], np.float32) * np.asarray(qnode["scale"])
    assert qnode["q"].dtype == jnp.int8 and qnode["scale"].dtype == jnp.float32
    assert np.all(np.abs(x - xhat) <= np.asarray(qnode["scale"]) / 2 * (1 + 1e-6))
  out = module.apply({"params": params}, ids)
  out8 = module8.apply({"params": q}, ids)
  assert out8.shape == out.shape and out8.dtype == jnp.float32
  if not overrides:                                                     # a plain lookup: the row bound
    offsets = np.asarray(module.offsets())
    shared = q["fields"]
    assert _shapes(shared) == {"q": ((sum(VOCAB), 8), jnp.int8), "scale": ((sum(VOCAB), 1), jnp.float32)}
    rows = np.asarray(ids) + offsets
    scale = np.asarray(shared["scale"])[rows]                        # [B, F, 1]
    assert np.all(np.abs(out8 - out) <= scale / 2 * (1 + 1e-6))
    np.testing.assert_array_equal(out8, np.asarray(emb.dequantize_rows(shared["q"], shared["scale"]))[rows])
  else:
    np.testing.assert_allclose(out8, out, atol=2e-4)


def test_int8_at_a_path_of_a_bigger_model():
  class Model(nn.Module):
    int8: bool = False

    @nn.compact
    def __call__(self, ids):
      x = emb.FieldEmbeddings.from_config(_cfg(rows="qr"), VOCAB, int8=self.int8, name="embeddings")(ids)
      return nn.Dense(1, name="head")(x.reshape(x.shape[0], -1))

  ids = _ids()
  params = _random_like(jax.eval_shape(Model().init, jax.random.key(1), ids)["params"])
  params8 = dict(params, embeddings=emb.quantize_int8(params["embeddings"]))
  out = Model().apply({"params": params}, ids)
  out8 = Model(int8=True).apply({"params": params8}, ids)
  np.testing.assert_allclose(out8, out, atol=1e-3)


def test_qat_forward_and_straight_through_gradient():
  cfg = _cfg()
  plain, params, ids = _init(cfg)
  qat = emb.FieldEmbeddings.from_config(_cfg(qat=True), VOCAB)
  x = plain.apply({"params": params}, ids)
  fq = _fake_quant(x)
  c = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)

  def loss(p):
    out = qat.apply({"params": p}, ids)
    return jnp.sum(c * out + out ** 2), out

  grads, out = jax.jit(jax.grad(loss, has_aux=True))(params)
  np.testing.assert_allclose(out, fq, rtol=1e-6, atol=1e-9)
  assert not np.allclose(out, x, rtol=0, atol=1e-7)
  # Straight through: d loss / d row = the upstream gradient c + 2 fq(x), scattered to the looked-up rows.
  upstream = np.asarray(c) + 2 * fq
  for f in range(len(VOCAB)):
    want = np.zeros((VOCAB[f], 8))
    np.add.at(want, np.asarray(ids[:, f]), upstream[:, f])
    np.testing.assert_allclose(qat.field_table(grads, f), want, rtol=1e-5, atol=1e-6)


def test_check_ids():
  ids = np.asarray(_ids())
  emb.check_ids(ids, VOCAB)
  bad = ids.copy()
  bad[3, 2] = 1000
  with pytest.raises(ValueError, match=r"field 2 \(item\): ids must lie in \[0, 1000\)"):
    emb.check_ids(bad, VOCAB, names=("user", "cat", "item", "shop"))
  bad = ids.copy()
  bad[5, 1] = -1
  with pytest.raises(ValueError, match="field 1"):
    emb.check_ids(bad, VOCAB)
  with pytest.raises(ValueError, match="shape"):
    emb.check_ids(ids[:, :3], VOCAB)
  with pytest.raises(ValueError, match="integers"):
    emb.check_ids(ids.astype(np.float32), VOCAB)


def test_invalid_options():
  ids = _ids()
  for overrides, match in [(dict(rows="lsh"), "rows"), (dict(dtype="int4"), "dtype"),
                           (dict(rows="hash", buckets=0), "buckets"), (dict(rank=-1), "rank")]:
    with pytest.raises(ValueError, match=match):
      emb.FieldEmbeddings.from_config(_cfg(**overrides), VOCAB).init(jax.random.key(0), ids)
  with pytest.raises(ValueError, match="shape"):
    emb.FieldEmbeddings.from_config(_cfg(), VOCAB).init(jax.random.key(0), ids[:, :2])
