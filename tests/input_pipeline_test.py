import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from rocket import input_pipeline
from rocket.data import DatasetError, cifar10, load_dataset
from rocket.train import make_mesh
from tests.conftest import load_config


def test_train_order_is_a_function_of_seed_and_step():
  n, b = 100, 32
  epoch0 = np.concatenate([input_pipeline.train_indices(s, 0, n, b) for s in range(3)])
  assert len(set(epoch0.tolist())) == 96  # one epoch: no repeats, last partial batch dropped
  again = input_pipeline.train_indices(4, 0, n, b)
  np.testing.assert_array_equal(again, input_pipeline.train_indices(4, 0, n, b))
  assert not np.array_equal(input_pipeline.train_indices(0, 0, n, b),
                            input_pipeline.train_indices(3, 0, n, b))  # new epoch, new order
  assert not np.array_equal(input_pipeline.train_indices(0, 0, n, b),
                            input_pipeline.train_indices(0, 1, n, b))  # seed matters


def test_train_batches_prefetch_matches_direct():
  x = np.arange(40 * 2 * 2 * 3, dtype=np.uint8).reshape(40, 2, 2, 3)
  y = np.arange(40, dtype=np.int32)
  sh = NamedSharding(make_mesh(), P("data"))
  a = list(input_pipeline.train_batches(x, y, seed=1, batch_size=8, start_step=3, num_steps=9,
                                        sharding=sh, prefetch=2))
  b = list(input_pipeline.train_batches(x, y, seed=1, batch_size=8, start_step=3, num_steps=9,
                                        sharding=sh, prefetch=0))
  assert [s for s, *_ in a] == list(range(3, 9))
  for (_, xa, ya), (_, xb, yb) in zip(a, b):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_eval_batches_pad_with_zero_weight():
  x = np.ones((10, 2, 2, 3), np.uint8)
  y = np.arange(10, dtype=np.int32)
  sh = NamedSharding(make_mesh(), P("data"))
  batches = list(input_pipeline.eval_batches(x, y, 4, sh))
  assert len(batches) == 3
  assert float(sum(w.sum() for _, _, w in batches)) == 10
  np.testing.assert_array_equal(batches[-1][2], [1, 1, 0, 0])


def test_augment_crops_and_flips():
  img = jnp.arange(2 * 8 * 8 * 1, dtype=jnp.float32).reshape(2, 8, 8, 1) + 1
  out = input_pipeline.augment(jax.random.key(0), img, pad=0)
  for o, i in zip(np.asarray(out), np.asarray(img)):  # pad 0: identity or a mirror
    assert np.array_equal(o, i) or np.array_equal(o, i[:, ::-1])
  out = np.asarray(input_pipeline.augment(jax.random.key(1), img, pad=2))
  assert out.shape == img.shape
  many = np.asarray(input_pipeline.augment(jax.random.key(2), jnp.repeat(img[:1], 64, 0), pad=2))
  assert len({m.tobytes() for m in many}) > 10  # different crops per image
  # every output is a window of the zero-padded (possibly flipped) input
  padded = np.pad(np.asarray(img[0]), ((2, 2), (2, 2), (0, 0)))
  windows = {padded[r:r + 8, c:c + 8].tobytes() for r in range(5) for c in range(5)}
  windows |= {padded[r:r + 8, c:c + 8][:, ::-1].tobytes() for r in range(5) for c in range(5)}
  assert all(m.tobytes() in windows for m in many)


def test_augment_without_flip_only_crops():
  img = jnp.arange(64 * 8 * 8, dtype=jnp.float32).reshape(64, 8, 8, 1) + 1
  out = np.asarray(input_pipeline.augment(jax.random.key(3), img, pad=0, flip=False))
  np.testing.assert_array_equal(out, np.asarray(img))  # pad 0 and no flip: the identity


def test_normalize():
  x = np.full((1, 2, 2, 3), 255, np.uint8)
  out = input_pipeline.normalize(x, np.array([0.5] * 3), np.array([0.25] * 3))
  np.testing.assert_allclose(out, 2.0)


def _write_jpeg_npz(path, n=6):
  from PIL import Image
  rng = np.random.default_rng(0)
  blobs, labels = [], []
  for i in range(n):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    labels.append(i % 10)
  offsets = np.cumsum([0] + [len(b) for b in blobs])
  np.savez(path, data=np.concatenate(blobs), offsets=offsets, labels=np.array(labels, np.uint8),
           file_ids=np.arange(n, dtype=np.int32))


def test_cifar10_loader_decodes_and_caches(tmp_path):
  d = tmp_path / "cifar10"
  d.mkdir()
  _write_jpeg_npz(d / "train_jpeg.npz", 6)
  _write_jpeg_npz(d / "test_jpeg.npz", 4)
  ds = cifar10.load(str(d), str(tmp_path / "cache"))
  assert ds.train_images.shape == (6, 32, 32, 3) and ds.train_images.dtype == np.uint8
  assert ds.test_labels.tolist() == [0, 1, 2, 3]
  assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
  again = cifar10.load(str(d), str(tmp_path / "cache"))  # from the cache
  np.testing.assert_array_equal(again.train_images, ds.train_images)


def test_cifar10_cache_is_keyed_by_content(tmp_path):
  """A file replaced by another of the same name, size and mtime is decoded again, not served
  from the first one's cache."""
  path, cache = tmp_path / "test_jpeg.npz", str(tmp_path / "cache")
  _write_jpeg_npz(path, 4)
  _, labels = cifar10.load_split(path, cache)
  stat = path.stat()
  with np.load(path) as z:
    arrays = dict(z)
  arrays["labels"] = (arrays["labels"] + 1) % 10  # other content, same size
  np.savez(path, **arrays)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
  _, again = cifar10.load_split(path, cache)
  np.testing.assert_array_equal(again, (labels + 1) % 10)


def test_cifar10_missing_is_a_clear_error(tmp_path):
  with pytest.raises(DatasetError, match="CIFAR-10 not found.*--config.data_dir"):
    cifar10.load(str(tmp_path / "missing"))


def test_shared_copy_is_found_beside_the_checkout():
  if not (cifar10.REPO_ROOT.parent / "shared" / "data" / "cifar10").is_dir():
    pytest.skip("no ../shared/data beside this checkout")
  assert cifar10.find_dir().name == "cifar10"


def test_tfds_datasets_without_tfds_are_a_clear_error():
  try:
    import tensorflow_datasets  # noqa: F401
    pytest.skip("tensorflow-datasets is installed")
  except ImportError:
    pass
  with pytest.raises(DatasetError, match="tensorflow-datasets"):
    load_dataset(load_config("tiny", dataset="cifar100"))


def test_train_subset_is_seeded():
  a = load_dataset(load_config("tiny", train_subset=100))
  b = load_dataset(load_config("tiny", train_subset=100))
  assert len(a.train_labels) == 100
  np.testing.assert_array_equal(a.train_images, b.train_images)
