"""The Criteo-like generator (rocket.ctr.criteo_synth) and the CTR throughput benchmark's smoke mode."""

import gzip
import importlib.util
import pathlib

import numpy as np
import pytest

from rocket.ctr import criteo, criteo_synth
from rocket.ctr.criteo_synth import CAT_FIELDS, CriteoSynth, zipf_ranks
from rocket.ctr.features import bucketize_log2
from tests.conftest import load_config

HAS_TORCH = importlib.util.find_spec("torch") is not None
FAST = ["--steps=1", "--repeats=1", "--warmup=1"]


@pytest.fixture(scope="module")
def gen():
  return CriteoSynth(seed=3)


def test_same_seed_same_bytes_for_any_chunking_and_workers(tmp_path):
  paths = []
  for i, (chunk, workers) in enumerate(((1000, 1), (777, 1), (5000, 1), (400, 2))):
    paths.append(tmp_path / f"t{i}.txt")
    criteo_synth.write(paths[-1], 3000, seed=1, chunk_rows=chunk, workers=workers)
  first = paths[0].read_bytes()
  assert all(p.read_bytes() == first for p in paths[1:])
  assert first.count(b"\n") == 3000
  criteo_synth.write(tmp_path / "other.txt", 3000, seed=2)
  assert (tmp_path / "other.txt").read_bytes() != first


def test_gzip_output_is_byte_identical_and_decompresses_to_the_text(tmp_path):
  a, b = tmp_path / "a" / "train.txt.gz", tmp_path / "b" / "train.txt.gz"
  criteo_synth.write(a, 2000, seed=1, chunk_rows=300)
  criteo_synth.write(b, 2000, seed=1, chunk_rows=2000)
  assert a.read_bytes() == b.read_bytes()
  criteo_synth.write(tmp_path / "t.txt", 2000, seed=1)
  assert gzip.decompress(a.read_bytes()) == (tmp_path / "t.txt").read_bytes()


def test_rows_depend_only_on_their_index(gen):
  whole = gen.rows(0, 500)
  part = gen.rows(200, 100)
  np.testing.assert_array_equal(part.ranks, whole.ranks[200:300])
  np.testing.assert_array_equal(part.labels, whole.labels[200:300])
  assert gen.text(part) == b"".join(gen.text(whole).splitlines(keepends=True)[200:300])


def test_the_criteo_parser_reads_back_what_was_generated(gen, tmp_path):
  path = tmp_path / "train.txt"
  path.write_bytes(gen.text(gen.rows(0, 2500)))
  rows = gen.rows(0, 2500)
  fmt = criteo.CriteoFormat()
  chunks = list(criteo.iter_chunks(fmt, path, 1000))
  labels = np.concatenate([c.labels for c in chunks])
  np.testing.assert_array_equal(labels, rows.labels)
  for j in range(13):
    col = np.concatenate([c.columns[j] for c in chunks])
    np.testing.assert_array_equal(col, bucketize_log2(rows.int_floats()[:, j]))
  for j in range(26):
    col = np.concatenate([c.columns[13 + j] for c in chunks])
    want = np.array([b"" if r == 0 else b"%08x" % h
                     for r, h in zip(rows.ranks[:, j], criteo_synth.hex_values(rows.ranks[:, j], j))])
    np.testing.assert_array_equal(col, want)
  assert (rows.ints < 0).any() and rows.int_missing.any() and (rows.ranks == 0).any()


@pytest.mark.parametrize("hash_buckets", [0, 1000])
def test_load_ctr_dataset_streams_the_file(tmp_path, hash_buckets):
  from rocket.ctr.loaders import load_ctr_dataset

  criteo_synth.main(["--rows=4000", f"--out={tmp_path}/train.txt", "--seed=0", "--chunk_rows=900", "--quiet"])
  config = load_config("", "ctr_frappe.py", dataset="criteo", data_dir=str(tmp_path),
                       cache_dir=str(tmp_path / "cache"),
                       **{"features.crosses": "", "features.hash_buckets": hash_buckets})
  ds = load_ctr_dataset(config)
  assert (len(ds.train), len(ds.valid), len(ds.test)) == (3200, 400, 400)
  assert [f.name for f in ds.fields][12:14] == ["I13", "C1"]
  assert 0.2 < ds.positive_rate < 0.3
  sizes = np.array([f.vocab_size for f in ds.fields])
  assert (np.asarray(ds.train.ids) < sizes).all()
  if not hash_buckets:  # C9 has 3 values, C20 4 (+ missing), C3 millions: many distinct in 3200 rows
    names = [f.name for f in ds.fields]
    assert sizes[names.index("C9")] <= 4 and sizes[names.index("C20")] <= 6
    assert sizes[names.index("C3")] > 500


def test_zipf_ranks_follow_the_power_law():
  u = np.random.default_rng(0).random(2_000_000)
  for vocab, s in ((100_000, 1.05), (1000, 1.3), (5_000_000, 0.9)):
    r = zipf_ranks(u, vocab, s)
    assert r.min() >= 1 and r.max() <= vocab
    counts = np.bincount(r, minlength=201)[1:201].astype(float)
    slope = np.polyfit(np.log(np.arange(20, 201)), np.log(counts[19:]), 1)[0]
    assert abs(slope + s) < 0.15, (vocab, s, slope)


def test_field_frequencies_are_heavy_tailed(gen):
  rows = gen.rows(0, 20_000)
  for j, f in enumerate(CAT_FIELDS):
    r = rows.ranks[:, j]
    r = r[r > 0]
    _, counts = np.unique(r, return_counts=True)
    top_share = counts.max() / len(r)
    if f.vocab <= 30:
      assert len(counts) <= f.vocab and top_share > 0.3, f
    if f.vocab > 1_000_000:  # a long flat tail: mostly values seen once, yet a visible head
      assert len(counts) > 0.3 * len(r) and top_share > 0.003, f
  missing = (rows.ranks == 0).mean(axis=0)
  np.testing.assert_allclose(missing, [f.missing for f in CAT_FIELDS], atol=0.02)


def test_labels_follow_the_click_model(gen):
  rows = gen.rows(0, 60_000)
  assert abs(rows.labels.mean() - 0.25) < 0.015
  assert abs(rows.labels.mean() - rows.probs.mean()) < 0.01
  # model-free: the positive rate per value of a biased field follows that value's bias
  j = [f.name for f in CAT_FIELDS].index("C9")
  values = np.array([1, 2, 3])
  bias = gen.value_bias("C9", values)
  rate = np.array([rows.labels[rows.ranks[:, j] == v].mean() for v in values])
  assert np.array_equal(np.argsort(rate), np.argsort(bias)), (rate, bias)
  assert rate.max() - rate.min() > 0.05
  # and the labels carry the logit's signal: AUC of the true logit well above chance
  from rocket.ctr.metrics import ctr_metrics

  auc = ctr_metrics(rows.labels.astype(np.float32), rows.logits, np.zeros(len(rows)))["auc"]
  assert 0.65 < auc < 0.9


def test_cli_writes_a_folder_train_txt(tmp_path):
  out = criteo_synth.main(["--rows=300", f"--out={tmp_path}", "--quiet"])
  assert pathlib.Path(out["path"]) == tmp_path / "train.txt" and out["rows_per_s"] > 0
  assert criteo.find_data_file("criteo", str(tmp_path)) == tmp_path / "train.txt"


# --------------------------------------------------------------------------- the benchmark


@pytest.mark.slow
def test_ctr_throughput_quick(tmp_path):
  from benchmarks import ctr_throughput

  out = ctr_throughput.main(["--quick", "--torch=off", "--memory=off", *FAST,
                             f"--json_out={tmp_path / 'r.json'}"])
  rows = {r["name"]: r for r in out["rows"]}
  assert set(rows) == {"jax_deepfm", "jax_dcnv2"}
  for r in rows.values():
    assert r["examples_per_s"] > 0 and r["params_M"] > 0
  assert out["ratios"] == {} and (tmp_path / "r.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional benchmark dependency)")
def test_ctr_throughput_quick_with_torch_and_memory():
  from benchmarks import ctr_throughput

  out = ctr_throughput.main(["--quick", "--models=dcnv2", "--torch=on", *FAST])
  rows = {r["name"]: r for r in out["rows"]}
  assert set(rows) == {"jax_dcnv2", "torch_dcnv2"}
  assert set(out["ratios"]) == {"jax_dcnv2/torch_dcnv2"}
  assert all(r["peak_rss_mb"] > r["model_rss_mb"] > 0 for r in rows.values()), out["memory"]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional benchmark dependency)")
@pytest.mark.parametrize("model", ["deepfm", "dcnv2"])
def test_torch_models_have_the_jax_parameter_count(model):
  import jax
  import jax.numpy as jnp

  from benchmarks import ctr_throughput

  args = ctr_throughput.parse(["--quick"])
  batches, sizes = ctr_throughput.make_batches(1, 8, args.max_vocab)
  net = ctr_throughput.jax_setup(args, model, batches, sizes)[2].model
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, len(sizes)), jnp.int32)))
  n_jax = sum(x.size for x in jax.tree.leaves(shapes["params"]))
  tm = ctr_throughput.make_torch_model(model, sizes, args.dim, ctr_throughput.hidden_of(args, model),
                                       args.cross_layers if model == "dcnv2" else 0)
  assert sum(p.numel() for p in tm.parameters()) == n_jax
