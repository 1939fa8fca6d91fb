"""CTR models, the shared train loop on CTR data, and the exported scorer."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from conftest import ROOT, load_config

from rocket import checkpoint, methods, objective, train
from rocket.ctr import data as ctr_data
from rocket.ctr import export, hashing, serving
from rocket.ctr.embeddings import FieldEmbeddings, default_embedding_config
from rocket.ctr.models import CTRRocketNet, NetSpec, crossed_ids
from rocket.ctr.serving import ExportError, RequestError, Scorer

FRAPPE = ROOT.parent / "shared" / "data" / "ctr" / "frappe" / "frappe_libfm.npz"


def tiny(**overrides):
  return load_config("tiny", file="ctr_frappe.py", **overrides)


LIGHT, BOOSTER = NetSpec("mlp", (8,)), NetSpec("mlp", (16, 8), 1)


def model(share="embedding", light=LIGHT, booster=BOOSTER, crosses=((0, 1),)):
  return CTRRocketNet(light=light, booster=booster, base_vocab_sizes=(5, 7, 3),
                      emb_cfg=ml_collections.FrozenConfigDict(default_embedding_config()),
                      share=share, crosses=crosses, cross_buckets=11)


IDS = jnp.asarray(np.random.default_rng(0).integers(0, 3, (6, 3)), jnp.int32)


def test_param_tree_follows_the_sharing_scheme():
  p = model().init(jax.random.key(0), IDS)["params"]
  assert set(p) == {"shared", "light", "booster"} and "embedding" in p["shared"]
  assert "embedding" not in p["light"] and "embedding" not in p["booster"]
  p = model(share="none").init(jax.random.key(0), IDS)["params"]
  assert set(p) == {"light", "booster"} and "embedding" in p["light"] and "embedding" in p["booster"]
  p = model(booster=None).init(jax.random.key(0), IDS)["params"]
  assert set(p) == {"light"} and "embedding" in p["light"]
  out = model().apply({"params": model().init(jax.random.key(0), IDS)["params"]}, IDS)
  assert out["logits"]["light"].shape == (6,) and out["logits"]["booster"].shape == (6,)


@pytest.mark.parametrize("kind", ["lr", "fm", "deepfm", "autoint", "mlp", "finalmlp"])
def test_light_kinds(kind):
  m = model(light=NetSpec(kind, (8,)))
  variables = m.init(jax.random.key(1), IDS)
  z = m.apply(variables, IDS, only="light")["logits"]
  assert set(z) == {"light"} and z["light"].shape == (6,)


def test_autoint_attends_over_the_fields():
  spec = NetSpec("autoint", ())
  assert (spec.attention_layers, spec.heads, spec.name) == (3, 2, "AutoInt-3x2h")
  assert NetSpec("autoint", (8,), attention_layers=1, heads=1).name == "AutoInt-1x1h+MLP-8"
  with pytest.raises(ValueError, match="autoint takes"):
    NetSpec("autoint", (), cross_layers=1)
  m = model(light=NetSpec("autoint", (), attention_layers=2, heads=2))
  params = m.init(jax.random.key(1), IDS)["params"]
  head = params["light"]["head"]
  d = 16  # the embedding width
  assert head["att0_q"]["kernel"].shape == (d, 2 * d) and head["att1_q"]["kernel"].shape == (2 * d, 2 * d)
  assert head["att_out"]["kernel"].shape == (4 * 2 * d, 1)  # 3 fields + 1 cross, flattened
  z = m.apply({"params": params}, IDS, only="light")["logits"]["light"]
  assert z.shape == (6,) and np.all(np.isfinite(z))


def test_deepfm_is_fm_plus_an_mlp_on_the_same_embeddings():
  m = model(light=NetSpec("deepfm", (8,)))
  params = m.init(jax.random.key(1), IDS)["params"]
  assert set(params["light"]["head"]) == {"linear", "bias", "dense0", "out"}
  fm = model(light=NetSpec("fm"))
  fm_params = {**params, "light": {"head": {k: params["light"]["head"][k] for k in ("linear", "bias")}}}
  mlp = model(light=NetSpec("mlp", (8,)))
  mlp_params = {**params, "light": {"head": {k: params["light"]["head"][k] for k in ("dense0", "out")}}}
  z = lambda mm, p: mm.apply({"params": p}, IDS, only="light")["logits"]["light"]  # noqa: E731
  np.testing.assert_allclose(z(m, params), z(fm, fm_params) + z(mlp, mlp_params), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="deepfm has no cross layers"):
    NetSpec("deepfm", (8,), cross_layers=1)
  assert NetSpec("deepfm", (8, 4)).name == "DeepFM-8x4"


def test_fm_interaction_matches_pairwise_sum():
  m = model(light=NetSpec("fm"), booster=None, crosses=())
  params = m.init(jax.random.key(2), IDS)["params"]
  z = m.apply({"params": params}, IDS)["logits"]["light"]
  emb = m.apply({"params": params}, IDS, method=lambda mod, ids: mod.towers["light"].embedding(ids))
  lin = m.apply({"params": params}, IDS,
                method=lambda mod, ids: mod.towers["light"].head(ids, jnp.zeros_like(emb)))
  e = np.asarray(emb)
  pair = sum(np.sum(e[:, i] * e[:, j], -1) for i in range(3) for j in range(i + 1, 3))
  np.testing.assert_allclose(np.asarray(z), np.asarray(lin) + pair, rtol=1e-5, atol=1e-6)


def test_crosses_in_graph_match_numpy():
  ids = np.random.default_rng(3).integers(0, 1000, (50, 3)).astype(np.int32)
  c = ((0, 1), (2, 0, 1))
  host = crossed_ids(ids, c, 97, xp=np)
  dev = jax.jit(lambda x: crossed_ids(x, c, 97))(jnp.asarray(ids))
  np.testing.assert_array_equal(host, np.asarray(dev))
  assert host.min() >= 0 and host.max() < 97
  np.testing.assert_array_equal(host[:, 0], hashing.cross_ids(ids[:, 0], ids[:, 1], 97, salt=1))


def test_gradient_block_keeps_the_hint_off_the_booster():
  m = model()
  params = m.init(jax.random.key(4), IDS)["params"]
  config = tiny()
  obj = objective.Objective.from_config(config, "rocket")

  def hint(p, blocked):
    z = m.apply({"params": p}, IDS)["logits"]
    return obj.loss_terms({"logits": z}, jnp.zeros(len(IDS)), blocked)["hint"]

  g_on = jax.grad(hint)(params, True)
  g_off = jax.grad(hint)(params, False)
  norm = lambda t: float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(t)))  # noqa: E731
  assert norm(g_on["booster"]) == 0.0 and norm(g_on["light"]) > 0
  assert norm(g_off["booster"]) > 0


@pytest.mark.parametrize("method", ["light", "booster", "rocket", "rocket_kd", "kd"])
def test_every_ctr_method_trains(tmp_path, method):
  result = train.train_with_teacher(tiny(method=method), tmp_path)
  nets = methods.get_method(method).nets
  for n in nets:
    for split in ("valid", "test"):
      for k in ("auc", "gauc", "logloss"):
        assert np.isfinite(result[f"{split}/{n}_{k}"])
    assert result[f"bytes/{n}_bytes"] >= result[f"bytes/{n}_embedding_bytes"] > 0
  if method == "kd":
    assert "test/booster_auc" in result["teacher"]


def test_ctr_training_learns_the_synthetic_click_model(tmp_path):
  c = tiny(method="rocket", num_epochs=1, batch_size=512, eval_every_steps=5,
           **{"synthetic_ctr.num_train": 10000, "optim.lr": 0.01})
  result = train.train_with_teacher(c, tmp_path)
  # chance is 0.5; the true click probabilities reach about 0.84 on this data
  assert result["test/booster_auc"] > 0.6 and result["test/light_auc"] > 0.6
  recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert recs[-1]["train/ce_light"] < recs[0]["train/ce_light"]


def test_attention_transfer_is_refused_for_ctr():
  with pytest.raises(ValueError, match="attention transfer"):
    train.validate_config(tiny(method="at"))
  with pytest.raises(ValueError, match="share"):
    train.validate_config(tiny(share="group_bottom"))
  with pytest.raises(ValueError, match="embedding.l2 must be >= 0"):
    train.validate_config(tiny(**{"embedding.l2": -1e-3}))
  with pytest.raises(ValueError, match="dropout must be in"):
    train.validate_config(tiny(**{"booster.dropout": 1.5}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  wd = tmp_path_factory.mktemp("ctr_run")
  train.train_with_teacher(tiny(method="rocket"), wd)
  return wd, train.load_run(wd)


@pytest.mark.parametrize("int8", [False, True])
def test_export_reloads_without_training_code_and_scores_the_same(trained, tmp_path, int8):
  wd, run = trained
  out = tmp_path / "scorer"
  export.export(run, out, int8=int8)
  ds = run.data
  req, cand = export.field_layout(ds.fields)
  rows = np.asarray(ds.test.ids[:40])
  request, candidates = rows[0, req], rows[:, cand]
  full = np.empty_like(rows)
  full[:, req], full[:, cand] = request, candidates
  params = export.serving_params(run, "light", int8)
  z = export.serving_model(run, int8).apply({"params": params}, jnp.asarray(full), only="light")
  ref = jax.nn.sigmoid(z["logits"]["light"])
  got = Scorer.load(out).score(request, candidates)
  np.testing.assert_allclose(got, np.asarray(ref), rtol=1e-5, atol=1e-6)
  # A fresh interpreter that cannot import flax or the rocket package: only serving.py, jax, numpy.
  script = textwrap.dedent(f"""
      import sys, importlib.util, numpy as np
      sys.modules["flax"] = None; sys.modules["rocket"] = None; sys.modules["optax"] = None
      spec = importlib.util.spec_from_file_location("serving", {str(ROOT / "rocket/ctr/serving.py")!r})
      serving = importlib.util.module_from_spec(spec); spec.loader.exec_module(serving)
      s = serving.Scorer.load({str(out)!r})
      print(list(s.score(np.array({request.tolist()}), np.array({candidates.tolist()}))))
  """)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
  assert res.returncode == 0, res.stderr
  np.testing.assert_allclose(eval(res.stdout), np.asarray(ref), rtol=1e-5, atol=1e-6)
  if int8:
    assert Scorer.load(out).num_bytes < 0.5 * sum(x.nbytes for x in jax.tree.leaves(
        export.light_params(jax.device_get(run.state.params))))


def test_scorer_rejects_bad_shapes_and_missing_files(trained, tmp_path):
  _, run = trained
  export.export(run, tmp_path / "s")
  s = Scorer.load(tmp_path / "s")
  with pytest.raises(RequestError, match=r"candidate_ids must have shape \[N, "):
    s.score(np.zeros(len(s.request_fields), int), np.zeros((3, len(s.candidate_fields) + 1), int))
  with pytest.raises(RequestError, match="request_ids must have shape"):
    s.score(np.zeros(len(s.request_fields) + 1, int), np.zeros((3, len(s.candidate_fields)), int))
  with pytest.raises(FileNotFoundError, match="rocket.ctr.export"):
    Scorer.load(tmp_path)


def test_scorer_validates_every_request(trained, tmp_path):
  _, run = trained
  export.export(run, tmp_path / "s")
  s = Scorer.load(tmp_path / "s")
  fr, fc = len(s.request_fields), len(s.candidate_fields)
  v0 = s.manifest["vocab_sizes"][s.candidate_fields[0]]
  req, base = np.ones(fr, np.int32), np.ones((3, fc), np.int64)
  oov = base.copy()
  oov[1, 0] = 0
  # unknown ids (past the vocabulary, or an int64 that int32 would wrap to 1) score as the OOV id
  for unknown in (v0, v0 + 10**6, 2**32 + 1):
    c = base.copy()
    c[1, 0] = unknown
    np.testing.assert_array_equal(s.score(req, c), s.score(req, oov))
  strict = Scorer.load(tmp_path / "s", unknown_ids="reject")
  c = base.copy()
  c[2, 0] = v0
  with pytest.raises(RequestError, match=f"field '{s.candidate_fields[0]}' has an id outside its "
                                         f"vocabulary: {v0} "):
    strict.score(req, c)
  c = base.copy()
  c[0, fc - 1] = -1
  with pytest.raises(RequestError, match=f"'{s.candidate_fields[-1]}' has a negative id: -1"):
    s.score(req, c)
  with pytest.raises(RequestError, match="integer ids, got dtype float64"):
    s.score(req, base + 0.9)
  with pytest.raises(RequestError, match="request_ids must hold integer ids"):
    s.score(np.full(fr, np.nan), base)
  assert s.score(req, np.zeros((0, fc), np.int32)).shape == (0,)
  # padding to the compiled sizes changes no score
  rng = np.random.default_rng(0)
  vocab = [s.manifest["vocab_sizes"][f] for f in s.candidate_fields]
  c9 = np.stack([rng.integers(0, v, 9) for v in vocab], 1)
  np.testing.assert_allclose(s.score(req, c9[:5]), s.score(req, c9)[:5], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(s.score_async(req, c9.astype(np.int32))), s.score(req, c9),
                             rtol=1e-6)


def test_a_damaged_or_edited_export_is_refused(trained, tmp_path):
  _, run = trained
  out = tmp_path / "s"
  export.export(run, out)
  good = {f: (out / f).read_bytes() for f in ("params.npz", "manifest.json", "scorer.jaxexport")}
  b = bytearray(good["params.npz"])
  b[len(b) // 2] ^= 1
  (out / "params.npz").write_bytes(bytes(b))
  with pytest.raises(ExportError, match="params.npz does not match the sha256"):
    Scorer.load(out)
  (out / "params.npz").write_bytes(good["params.npz"])
  manifest = json.loads(good["manifest.json"])  # a field's vocabulary edited after export
  manifest["vocab_sizes"][manifest["candidate_fields"][0]] += 1
  (out / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ExportError, match="does not describe the exported module"):
    Scorer.load(out)
  # NaN parameters with consistent checksums (a broken export, not a damaged file)
  with np.load(out / "params.npz") as z:
    arrays = {k: z[k] for k in z.files}
  floating = [k for k in arrays if k.startswith("leaf_") and arrays[k].dtype.kind == "f"]
  arrays[floating[0]] = np.full_like(arrays[floating[0]], np.nan)
  np.savez(out / "params.npz", **arrays)
  manifest = json.loads(good["manifest.json"])
  manifest["sha256"]["params.npz"] = serving.file_sha256(out / "params.npz")
  (out / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ExportError, match=f"{floating[0]} holds NaN"):
    Scorer.load(out)
  # an export from before checksums loads, with a warning
  (out / "params.npz").write_bytes(good["params.npz"])
  manifest = json.loads(good["manifest.json"])
  del manifest["sha256"]
  (out / "manifest.json").write_text(json.dumps(manifest))
  with pytest.warns(UserWarning, match="cannot be verified"):
    Scorer.load(out)


@pytest.mark.skipif(not FRAPPE.is_file(), reason="../shared/data/ctr/frappe absent")
def test_frappe_end_to_end_from_the_command_line(tmp_path):
  cmd = [sys.executable, "-m", "rocket.main", f"--config={ROOT / 'configs/ctr_frappe.py'}",
         f"--workdir={tmp_path}", "--config.num_train_steps=6", "--config.eval_every_steps=6",
         "--config.features.train_subset=4096", "--config.progress_bar=False"]
  res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert res.returncode == 0, res.stderr
  rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  for k in ("test/light_auc", "test/light_gauc", "test/light_logloss", "test/booster_auc",
            "valid/light_gauc"):
    assert 0 < rec[k] < 1.5
  assert "Frappe" in res.stderr


def test_missing_ctr_data_says_which_flag_to_pass(tmp_path):
  with pytest.raises(ctr_data.DatasetError, match="data_dir"):
    train.train_with_teacher(tiny(dataset="frappe", data_dir=str(tmp_path / "nowhere")), tmp_path / "w")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_tables_train_with_float32_optimizer_state(tmp_path, dtype):
  c = tiny(method="light", num_train_steps=4, eval_every_steps=4, **{"embedding.dtype": dtype})
  result = train.train_with_teacher(c, tmp_path)
  assert np.isfinite(result["train/loss"]) and np.isfinite(result["test/light_auc"])
  run = train.load_run(tmp_path)
  table = run.state.params["light"]["embedding"]["fields"]["embedding"]
  assert table.dtype == jnp.dtype(dtype)
  mu = run.state.opt_state[0][0].mu["light"]["embedding"]["fields"]["embedding"]
  assert mu.dtype == jnp.float32


def test_a_checkpoint_of_per_field_tables_is_refused_in_one_line(tmp_path):
  """A checkpoint from before the plain fields shared one table (no ``embedding_layout`` in its
  architecture) is refused by the architecture check, not taken for a damaged one."""
  train.train_and_evaluate(tiny(method="light", num_train_steps=2, eval_every_steps=2), tmp_path)
  meta_file = next((tmp_path / "checkpoints").glob("*/meta/metadata"))
  meta = json.loads(meta_file.read_text())
  del meta["arch"]["embedding_layout"]
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"another architecture \(embedding_layout: checkpoint=None config='plain fields"):
    train.train_and_evaluate(tiny(method="light", num_train_steps=4, eval_every_steps=2), tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]


def test_embedding_l2_penalises_the_looked_up_rows_only():
  emb_cfg = ml_collections.FrozenConfigDict(dict(default_embedding_config(), l2=0.5))
  m = CTRRocketNet(light=LIGHT, booster=BOOSTER, base_vocab_sizes=(5, 7, 3), emb_cfg=emb_cfg)
  params = m.init(jax.random.key(0), IDS)["params"]
  assert "penalties" not in m.apply({"params": params}, IDS)  # evaluation: no penalty
  pen = m.apply({"params": params}, IDS, train=True)["penalties"]["emb_l2"]
  table = np.asarray(params["shared"]["embedding"]["fields"]["embedding"])  # the 3 fields' rows
  looked_up = np.asarray(IDS) + np.asarray(FieldEmbeddings.from_config(emb_cfg, (5, 7, 3)).offsets())
  assert float(pen) == pytest.approx(0.5 * float(np.sum(table[looked_up] ** 2)) / len(IDS), rel=1e-5)
  g = jax.grad(lambda p: m.apply({"params": p}, IDS, train=True)["penalties"]["emb_l2"])(params)
  touched = np.zeros(len(table), bool)
  touched[looked_up.ravel()] = True
  row_norms = np.abs(np.asarray(g["shared"]["embedding"]["fields"]["embedding"])).sum(1)
  assert np.all(row_norms[~touched] == 0) and np.all(row_norms[touched] > 0)


def test_dropout_is_random_in_training_and_off_in_evaluation(tmp_path):
  spec = NetSpec("mlp", (16, 8), dropout=0.5)
  assert "dropout0.5" in spec.name
  with pytest.raises(ValueError, match="dropout"):
    NetSpec("mlp", (8,), dropout=1.0)
  m = model(booster=spec)
  assert m.uses_dropout and not model().uses_dropout
  params = m.init(jax.random.key(0), IDS)["params"]
  z = [m.apply({"params": params}, IDS, train=True, rngs={"dropout": jax.random.key(k)})["logits"]
       for k in (1, 2)]
  assert not np.allclose(z[0]["booster"], z[1]["booster"])
  np.testing.assert_array_equal(z[0]["light"], z[1]["light"])  # the light net has none
  e = [m.apply({"params": params}, IDS)["logits"]["booster"] for _ in range(2)]
  np.testing.assert_array_equal(e[0], e[1])
  # the train step passes the rng; the run's penalty is a loss term
  result = train.train_and_evaluate(tiny(method="rocket", **{"booster.dropout": 0.3,
                                                             "embedding.l2": 1e-4}), tmp_path)
  assert np.isfinite(result["test/booster_auc"]) and result["train/penalty_emb_l2"] > 0


def test_cross_buckets_sized_from_the_training_data(tmp_path):
  from rocket import tasks  # noqa: PLC0415
  from rocket.ctr import task as ctr_task  # noqa: PLC0415

  config = tiny(**{"features.cross_buckets": 0, "features.cross_load": 0.5,
                   "features.crosses": "item*hour,user*item"})
  ds = tasks.get_task(config).load(config)
  distinct = [len(np.unique(np.asarray(ds.train.ids)[:, c], axis=0)) for c in ([1, 2], [0, 1])]
  sizes = ctr_task.cross_buckets(config, ds)
  assert sizes == tuple(int(np.ceil(d / 0.5)) for d in distinct)  # train rows only
  report = ctr_task.cross_report(config, ds)
  assert f"item*hour: {distinct[0]:,} distinct in {sizes[0]:,} buckets" in report
  m = ctr_task.build_ctr_model(config, ds)
  assert m.vocab_sizes[-2:] == sizes
  params = m.init(jax.random.key(0), jnp.asarray(ds.train.ids[:4]))["params"]
  tables = FieldEmbeddings.from_config(config.embedding, m.vocab_sizes)
  assert tables.field_table(params["shared"]["embedding"], 5).shape[0] == sizes[1]
  # a configured count is the same for every cross, as before
  config.features.cross_buckets = 97
  assert ctr_task.cross_buckets(config, ds) == 97 and "in 97 buckets" in ctr_task.cross_report(config, ds)
  config.features.cross_buckets = -1
  with pytest.raises(ValueError, match="cross_buckets must be > 0, or 0"):
    ctr_task.cross_buckets(config, ds)
  # a whole run: trained, evaluated, exported, scored with per-cross tables
  config.features.cross_buckets = 0
  train.train_and_evaluate(apply(config, method="light"), tmp_path / "run")
  run = train.load_run(tmp_path / "run")
  export.export(run, tmp_path / "export")
  s = Scorer.load(tmp_path / "export")
  req, cand = export.field_layout(run.data.fields)
  ids = np.asarray(run.data.test.ids[:5])
  assert s.score(ids[0, req], ids[:, cand]).shape == (5,)


def apply(config, **overrides):
  from rocket.config_util import apply_overrides  # noqa: PLC0415

  return apply_overrides(config, overrides)


def test_the_export_scores_raw_feature_values(trained, tmp_path):
  # the export carries the vocabularies: raw values give the scores of their training ids
  wd, run = trained
  export.export(run, tmp_path / "s")
  s = Scorer.load(tmp_path / "s")
  assert set(s.manifest["encoders"]) == {f.name for f in run.data.fields}
  req, cand = export.field_layout(run.data.fields)
  ids = np.asarray(run.data.test.ids[:20]).copy()
  ids[3, cand[0]] = 0  # an out-of-vocabulary candidate

  def raw(f, i):  # the raw value training mapped to id i (id 0: a value it never kept)
    values = run.data.encoders[f]["values"]
    return values[i - 1] if i > 0 else -12345

  names = [f.name for f in run.data.fields]
  request = {names[f]: raw(f, ids[0, f]) for f in req}
  candidates = {names[f]: [raw(f, i) for i in ids[:, f]] for f in cand}
  np.testing.assert_array_equal(s.score_raw(request, candidates), s.score(ids[0, req], ids[:, cand]))
  with pytest.raises(RequestError, match="must give exactly the fields"):
    s.score_raw(request, {})
  strict = Scorer.load(tmp_path / "s", unknown_ids="reject")
  with pytest.raises(RequestError, match="-12345 is not in the training vocabulary"):
    strict.score_raw(request, candidates)
  (tmp_path / "s" / "vocab.npz").write_bytes(b"x")  # a changed vocabulary is refused
  with pytest.raises(ExportError, match="vocab.npz does not match"):
    Scorer.load(tmp_path / "s")


def test_finalmlp_gates_two_streams_and_fuses_them_bilinearly():
  m = model(light=NetSpec("finalmlp", (8, 4), heads=2), booster=None)
  params = m.init(jax.random.key(0), IDS)["params"]["light"]["head"]
  assert params["bilinear"].shape == (2, 2, 2)  # 2 heads over the last width 4
  assert {"gate1_context", "gate2_context", "stream1_dense0", "stream2_dense1"} <= set(params)
  assert NetSpec("finalmlp", (8, 4), heads=2).name == "FinalMLP-8x4+2h"
  with pytest.raises(ValueError, match="divides into heads"):
    NetSpec("finalmlp", (8, 5), heads=2)


def test_batch_norm_trains_on_batch_statistics_and_serves_running_averages(tmp_path):
  spec = NetSpec("mlp", (8,), batch_norm=True)
  assert spec.name == "MLP-8+BN"
  m = model(light=spec, booster=None)
  variables = m.init(jax.random.key(0), IDS)
  assert set(variables["batch_stats"]["light"]["head"]) == {"dense0_bn"}
  # evaluation: a row's score does not depend on the rest of the batch
  z_all = m.apply(variables, IDS)["logits"]["light"]
  z_one = m.apply(variables, IDS[:1])["logits"]["light"]
  np.testing.assert_allclose(z_all[:1], z_one, rtol=1e-6)
  # a whole run, exported: the scorer uses the trained running averages
  c = tiny(method="light", **{"light.batch_norm": True, "light.hidden": "16"})
  train.train_and_evaluate(c, tmp_path / "run")
  run = train.load_run(tmp_path / "run", checkpoint="auto")  # the selected one, as exported
  stats = run.state.batch_stats["light"]["head"]["dense0_bn"]
  assert float(np.abs(np.asarray(stats["mean"])).sum()) > 0  # updated from zero in training
  export.export(run, tmp_path / "s")
  s = Scorer.load(tmp_path / "s")
  req, cand = export.field_layout(run.data.columns)
  ids = np.asarray(run.data.test.ids[:8]).copy()
  ids[:, req] = ids[0, req]
  z = run.model.apply({"params": run.state.params, "batch_stats": run.state.batch_stats}, ids,
                      only="light")["logits"]["light"]
  np.testing.assert_allclose(s.score(ids[0, req], ids[:, cand]), jax.nn.sigmoid(z), rtol=1e-5, atol=1e-6)
  assert export.evaluate(run, "light")["auc"] == pytest.approx(
      json.loads((tmp_path / "run" / "final.json").read_text())["test/light_auc"], abs=1e-6)


def test_booster_lr_scale_scales_the_boosters_own_updates_only():
  from rocket import tasks  # noqa: PLC0415

  def one_step(scale):
    c = tiny(method="rocket", **{"optim.booster_lr_scale": scale})
    ds = tasks.get_task(c).load(c)
    setup = train.run_setup(c, ds)
    state = setup.initializer()(jax.random.key(0))
    new, _ = jax.jit(setup.train_step(c, ds))(state, ds.train.ids[:c.batch_size],
                                              ds.train.labels[:c.batch_size], None)
    return jax.tree.map(lambda a, b: np.asarray(b) - np.asarray(a), state.params, new.params)

  full, half = one_step(1.0), one_step(0.5)
  for net, ratio in (("booster", 0.5), ("light", 1.0), ("shared", 1.0)):
    for a, b in zip(jax.tree.leaves(full[net]), jax.tree.leaves(half[net])):
      np.testing.assert_allclose(b, ratio * a, rtol=1e-5, atol=5e-8, err_msg=net)  # float32 deltas
  assert any(np.any(x != 0) for x in jax.tree.leaves(full["booster"]))
  with pytest.raises(ValueError, match="booster_lr_scale must be >= 0"):
    train.create_optimizer(tiny(**{"optim.booster_lr_scale": -1.0}), 10, 5)


def test_booster_grad_scales_only_the_boosters_gradient_into_the_shared_embedding():
  m = model(crosses=())
  params = m.init(jax.random.key(0), IDS)["params"]
  y = jnp.asarray([0, 1, 1, 0, 1, 0], jnp.float32)

  def grads(net, scale):
    def loss(p):
      z = m.apply({"params": p}, IDS, booster_grad=scale)["logits"][net]
      return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))
    return jax.grad(loss)(params)

  out = m.apply({"params": params}, IDS)["logits"]
  for scale in (0.0, 0.5):  # the forward pass is the same, exactly
    cut = m.apply({"params": params}, IDS, booster_grad=scale)["logits"]
    for net in ("light", "booster"):
      np.testing.assert_array_equal(cut[net], out[net])
  full, none, half = (grads("booster", s) for s in (None, 0.0, 0.5))
  shared = lambda g: jax.tree.leaves(g["shared"])  # noqa: E731
  assert all(float(jnp.abs(g).max()) > 0 for g in shared(full))
  assert all(float(jnp.abs(g).max()) == 0 for g in shared(none))
  for h, f in zip(shared(half), shared(full)):
    np.testing.assert_allclose(h, 0.5 * f, rtol=1e-6)
  # the booster's own parameters, and everything the light net's loss moves, are untouched
  jax.tree.map(np.testing.assert_array_equal, none["booster"], full["booster"])
  jax.tree.map(np.testing.assert_array_equal, grads("light", 0.0), grads("light", None))
