"""Bad data files give one DatasetError naming the file (and the line, column or image): never a
raw traceback, never a silent wrong result."""

import io

import numpy as np
import pytest
from PIL import Image

from rocket.ctr import criteo
from rocket.ctr.data import read_npz
from rocket.data import cifar10
from rocket.data.base import DatasetError


def jpeg(seed: int) -> bytes:
  img = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="JPEG", quality=75)
  return buf.getvalue()


def cifar_npz(path, blobs, labels, offsets=None):
  data = np.frombuffer(b"".join(blobs), np.uint8)
  if offsets is None:
    offsets = np.cumsum([0] + [len(b) for b in blobs])
  np.savez(path, data=data, offsets=np.asarray(offsets), labels=np.asarray(labels))


def test_a_bad_jpeg_inside_a_valid_cifar_npz_names_the_image(tmp_path):
  good = tmp_path / "good.npz"
  cifar_npz(good, [jpeg(0), jpeg(1)], [3, 5])
  images, labels = cifar10.decode_npz(good)
  assert images.shape == (2, 32, 32, 3) and list(labels) == [3, 5]
  bad = tmp_path / "bad.npz"
  cifar_npz(bad, [jpeg(0), b"not a jpeg at all", jpeg(2)], [1, 2, 3])
  with pytest.raises(DatasetError, match=r"bad.npz: image 1 \(bytes \d+-\d+\) is not a readable JPEG"):
    cifar10.decode_npz(bad)
  short = tmp_path / "short.npz"
  cifar_npz(short, [jpeg(0), jpeg(1)], [1, 2, 3])  # a label more than images
  with pytest.raises(DatasetError, match="3 labels need 4 increasing image offsets within the data, found 3"):
    cifar10.decode_npz(short)


def test_a_truncated_or_inconsistent_ctr_npz(tmp_path):
  path = tmp_path / "ctr.npz"
  np.savez(path, x=np.zeros((10, 3)), y=np.zeros(10))
  assert read_npz(path, ("x", "y"), same_length=(("x", "y"),))["x"].shape == (10, 3)
  cut = tmp_path / "cut.npz"
  cut.write_bytes(path.read_bytes()[:200])
  with pytest.raises(DatasetError, match=r"cannot read .*cut.npz \(BadZipFile"):
    read_npz(cut, ("x", "y"))
  with pytest.raises(DatasetError, match=r"cannot read .*ctr.npz \(KeyError"):
    read_npz(path, ("x", "labels"))
  uneven = tmp_path / "uneven.npz"
  np.savez(uneven, x=np.zeros((10, 3)), y=np.zeros(9))
  with pytest.raises(DatasetError, match=r"uneven.npz: arrays with one row per example differ in "
                                         r"length \({'x': 10, 'y': 9}\)"):
    read_npz(uneven, ("x", "y"), same_length=(("x", "y"),))


def criteo_rows(n, bad=None):
  rows = []
  for i in range(n):
    label, ints, cats = "1" if i % 2 else "0", [str(i)] * 13, [f"c{i:x}"] * 26
    if bad and i in bad:
      label, ints = bad[i](label, ints)
    rows.append("\t".join([label, *ints, *cats]))
  return "\n".join(rows) + "\n"


@pytest.mark.parametrize("bad,where", [
    ({2: lambda lab, ints: ("2", ints)}, r"line 3, column 1 \(label\): the label must be 0 or 1"),
    ({4: lambda lab, ints: ("yes", ints)}, r"line 5, column 1 \(label\): the label must be 0 or 1"),
    ({6: lambda lab, ints: (lab, ints[:2] + ["x7"] + ints[3:])},
     r"line 7, column 4 \(I3\) must be a number or empty"),
])
def test_a_bad_criteo_value_names_file_line_and_column(tmp_path, bad, where):
  path = tmp_path / "train.txt"
  path.write_text(criteo_rows(10, bad))
  with pytest.raises(DatasetError, match=f"train.txt, {where}"):
    list(criteo.iter_chunks(criteo.CriteoFormat(), path, chunk_rows=4))
  path.write_text(criteo_rows(10))
  assert sum(len(c.labels) for c in criteo.iter_chunks(criteo.CriteoFormat(), path, 4)) == 10
  path.write_text(criteo_rows(3) + "1\t2\n")
  with pytest.raises(DatasetError, match="train.txt, line 4: 2 columns, expected 40"):
    list(criteo.iter_chunks(criteo.CriteoFormat(), path, chunk_rows=4))
