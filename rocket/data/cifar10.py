"""CIFAR-10 from the JPEG copy in ``shared/data/cifar10`` (``{train,test}_jpeg.npz``).

Each npz holds the upstream JPEG files concatenated (``data``), their
``offsets`` and ``labels``.  The images are decoded once with Pillow and the
uint8 arrays cached (``~/.cache/rocket`` or ``config.cache_dir``), keyed by
the source file's size and modification time.  The copy is a lossy JPEG
re-encode of the official pixels; report results as "CIFAR-10 (JPEG copy)".
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
from concurrent import futures

import numpy as np

from rocket.data.base import Dataset, DatasetError, channel_stats

FILES = ("train_jpeg.npz", "test_jpeg.npz")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def candidate_dirs(data_dir: str = "") -> list[pathlib.Path]:
  """Where CIFAR-10 is looked for, in order."""
  if data_dir:
    return [pathlib.Path(data_dir).expanduser()]
  dirs = []
  if os.environ.get("ROCKET_DATA_DIR"):
    dirs.append(pathlib.Path(os.environ["ROCKET_DATA_DIR"]).expanduser() / "cifar10")
  dirs += [REPO_ROOT.parent / "shared" / "data" / "cifar10",
           pathlib.Path.cwd().parent / "shared" / "data" / "cifar10"]
  return dirs


def find_dir(data_dir: str = "") -> pathlib.Path:
  tried = candidate_dirs(data_dir)
  for d in tried:
    if all((d / f).is_file() for f in FILES):
      return d
  raise DatasetError(
      "CIFAR-10 not found: looked for " + " and ".join(FILES) + " in "
      + ", ".join(str(d) for d in tried)
      + ". Put the shared data beside the checkout (../shared/data/cifar10), set "
      "$ROCKET_DATA_DIR to the folder holding cifar10/, or pass "
      "--config.data_dir=/path/to/cifar10.")


def _decode_one(blob: bytes) -> np.ndarray:
  from PIL import Image
  return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.uint8)


def decode_npz(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  try:
    with np.load(path) as z:
      data, offsets, labels = z["data"], z["offsets"], z["labels"]
  except Exception as e:  # noqa: BLE001 -- any read failure gets the same advice
    raise DatasetError(f"cannot read {path}: {e}. Check it with "
                       "`python ../shared/data/verify.py`.") from e
  advice = ("the file is damaged or not the shared CIFAR-10 copy: check it with "
            "`python ../shared/data/verify.py`")
  if len(offsets) != len(labels) + 1 or np.any(np.diff(offsets) <= 0) or offsets[-1] > len(data):
    raise DatasetError(f"{path}: {len(labels)} labels need {len(labels) + 1} increasing image offsets "
                       f"within the data, found {len(offsets)}; {advice}")
  blobs = [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(labels))]

  def decode(i):
    try:
      return _decode_one(blobs[i])
    except Exception as e:  # noqa: BLE001 -- PIL raises several types for a bad image
      raise DatasetError(f"{path}: image {i} (bytes {offsets[i]}-{offsets[i + 1]}) is not a readable "
                         f"JPEG ({type(e).__name__}: {e}); {advice}") from None

  with futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    images = list(pool.map(decode, range(len(labels)), chunksize=512))
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise DatasetError(f"{path}: images of different sizes {sorted(shapes)[:3]}; {advice}")
  return np.stack(images), labels.astype(np.int32)


def _cache_path(cache_dir: str, src: pathlib.Path) -> pathlib.Path:
  """The decoded copy of ``src``, keyed by the sha256 of its bytes (~0.2 s for the 47 MB train
  file): a different file never reuses another's pixels, whatever its name, size or mtime."""
  with open(src, "rb") as f:
    digest = hashlib.file_digest(f, "sha256").hexdigest()[:24]
  root = pathlib.Path(cache_dir or os.environ.get("ROCKET_CACHE_DIR", "~/.cache/rocket")).expanduser()
  return root / f"cifar10_{src.stem}_{digest}.npz"


def load_split(path: pathlib.Path, cache_dir: str = "") -> tuple[np.ndarray, np.ndarray]:
  cache = _cache_path(cache_dir, path)
  if cache.is_file():
    try:
      with np.load(cache) as z:
        return z["images"], z["labels"]
    except Exception:  # noqa: BLE001 -- a broken cache is rebuilt, never trusted
      pass
  images, labels = decode_npz(path)
  try:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, images=images, labels=labels)
    os.replace(tmp, cache)
  except OSError:
    pass  # caching is an optimisation only
  return images, labels


def load(data_dir: str = "", cache_dir: str = "") -> Dataset:
  d = find_dir(data_dir)
  tr_x, tr_y = load_split(d / FILES[0], cache_dir)
  te_x, te_y = load_split(d / FILES[1], cache_dir)
  mean, std = channel_stats(tr_x)
  return Dataset("cifar10", tr_x, tr_y, te_x, te_y, 10, mean, std,
                 description=f"CIFAR-10 (JPEG copy, {d})")
