"""Criteo and Avazu, streamed from the raw files into a memory-mapped id cache.

Neither file fits comfortably in memory (Criteo Kaggle: 45M rows x 39 fields, 11 GB), so
the raw file (plain or gzip, detected by its magic bytes) is read in chunks of
``config.features.chunk_rows`` lines:

* pass 0 counts the rows;
* pass 1 (vocabulary mode only) counts each field's values over the train rows
  (``Vocab.update``); with ``hash_buckets > 0`` ids are hashed and there is no pass 1;
* pass 2 writes ``ids.npy`` (int32 [N, F]), ``labels.npy`` (float32) and ``users.npy``
  (int64) into ``<cache_dir>/ctr/<dataset>_<key>/`` and finally ``meta.json``.

The cache key hashes the file's resolved path, size and mtime with the feature settings,
so a rerun reuses the cache (``np.load(mmap_mode="r")``, no parsing) and a changed file
or setting builds a new one.  The splits are views of the memory maps.

Split: rows are in time order in both files, so the last 10% of rows (``N // 10``) are
test, the 10% before them valid and the first ``N - 2 * (N // 10)`` rows train, as is
common practice for these two benchmarks.

**Criteo** Display Advertising Challenge ``train.txt``: tab-separated label, I1..I13
(integers), C1..C26 (hex hashes), missing values are empty.  I-fields go through
``bucketize_log2`` (missing -> its own bucket), C-fields are categorical with "missing"
a value of its own.  Criteo has no user id and its fields are anonymous: ``users`` is
all zeros (one GAUC group, so GAUC equals AUC), and every field is put on the item side
(per candidate; always correct, if not the cheapest, at serving time).

**Avazu** ``train.csv`` (header ``id,click,hour,C1,banner_pos,site_id,...``): ``id`` is
dropped, ``hour`` (YYMMDDHH) becomes ``hour`` (of day, 0..23) and ``weekday``.  The
user is approximated as in the competition winners' solution: ``device_id`` unless it
is the anonymous default ``a99f214a`` (~80% of rows), else ``device_ip + "-" + device_model``;
``users`` is a 63-bit BLAKE2b fingerprint of that string.  Sides: device_* are user,
C1 and C14..C21 (anonymous ad features) item, the rest (time, banner_pos, site_*, app_*) context.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import itertools
import json
import os
import pathlib
import shutil
import zlib
from collections.abc import Iterator

import numpy as np

from rocket.ctr import hashing
from rocket.ctr.data import (CTRDataset, CTRSplit, FeatureOptions, candidate_dirs, describe_features,
                             not_found)
from rocket.ctr.features import FieldSpec, Vocab, bucketize_log2, field_salt, hash_column
from rocket.data.base import DatasetError

CACHE_VERSION = 1
CRITEO_FILES = ("train.txt", "train.txt.gz", "train.tsv", "train.tsv.gz")
AVAZU_FILES = ("train.csv", "train.csv.gz", "train.gz", "train")
AVAZU_ANON_DEVICE = "a99f214a"


@dataclasses.dataclass
class Chunk:
  labels: np.ndarray  # float32 [n]
  users: np.ndarray  # int64 [n]
  columns: list[np.ndarray]  # F raw columns (int, or bytes tokens), one per field


class Format:
  """How to split a file's lines into tokens and tokens into (labels, users, field columns)."""
  name: str
  files: tuple[str, ...]
  delimiter: str
  header: bool
  fields: list[FieldSpec]  # vocab_size unknown yet (1)

  def set_header(self, header: list[str]):
    pass

  @property
  def num_columns(self) -> int:
    raise NotImplementedError

  def parse(self, tokens: np.ndarray) -> Chunk:
    raise NotImplementedError


class CriteoFormat(Format):
  name, files, delimiter, header = "criteo", CRITEO_FILES, "\t", False
  INT = [f"I{i}" for i in range(1, 14)]
  CAT = [f"C{i}" for i in range(1, 27)]

  def __init__(self):
    self.fields = [FieldSpec(n, 1, "item") for n in self.INT + self.CAT]

  @property
  def num_columns(self) -> int:
    return 1 + len(self.INT) + len(self.CAT)

  def parse(self, tokens):
    labels = _labels(tokens[:, 0], "column 1 (label)")
    ints = []
    for j, name in enumerate(self.INT):
      try:
        ints.append(bucketize_log2(tokens[:, 1 + j]))
      except ValueError as e:
        raise DatasetError(f"column {2 + j} ({name}) must be a number or empty: {e}") from None
    cats = [tokens[:, 1 + len(self.INT) + j] for j in range(len(self.CAT))]
    return Chunk(labels, np.zeros(len(labels), np.int64), ints + cats)


class AvazuFormat(Format):
  name, files, delimiter, header = "avazu", AVAZU_FILES, ",", True
  COLUMNS = ("id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
             "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
             "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21")
  SIDES = {"C1": "item", **{f"C{i}": "item" for i in range(14, 22)}}

  def __init__(self):
    raw = [c for c in self.COLUMNS if c not in ("id", "click", "hour")]
    self.sources = raw
    self.fields = [FieldSpec("hour", 1, "context"), FieldSpec("weekday", 1, "context")] + [
        FieldSpec(c, 1, "user" if c.startswith("device_") else self.SIDES.get(c, "context")) for c in raw]
    self.pos = {c: i for i, c in enumerate(self.COLUMNS)}

  def set_header(self, header):
    missing = [c for c in self.COLUMNS if c not in header and c != "id"]
    if missing:
      raise DatasetError(f"avazu: the header lacks column(s) {', '.join(missing)} (is this train.csv?)")
    self.pos = {c: header.index(c) for c in self.COLUMNS if c in header}
    self._num_columns = len(header)

  @property
  def num_columns(self) -> int:
    return getattr(self, "_num_columns", len(self.COLUMNS))

  def parse(self, tokens):
    col = lambda c: tokens[:, self.pos[c]]
    labels = _labels(col("click"), f"column {self.pos['click'] + 1} (click)")
    hour_of_day, weekday = _avazu_time(col("hour"), f"column {self.pos['hour'] + 1} (hour)")
    dev_id = col("device_id")
    ip_model = np.char.add(np.char.add(col("device_ip"), b"-"), col("device_model"))
    user = np.where(dev_id == AVAZU_ANON_DEVICE.encode(), ip_model, dev_id)
    users = (hashing.fingerprint(user, 64) >> np.uint64(1)).astype(np.int64)  # 63 bits: >= 0
    return Chunk(labels, users, [hour_of_day, weekday] + [col(c) for c in self.sources])


FORMATS = {"criteo": CriteoFormat, "avazu": AvazuFormat}


def _labels(tokens: np.ndarray, column: str) -> np.ndarray:
  try:
    labels = tokens.astype(np.float32)
  except ValueError as e:
    raise DatasetError(f"{column}: the label must be 0 or 1: {e}") from None
  if labels.size and not np.isin(labels, (0.0, 1.0)).all():
    raise DatasetError(f"{column}: the label must be 0 or 1, found {np.unique(labels)[:5]}")
  return labels


def _avazu_time(tokens: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray]:
  """YYMMDDHH -> (hour of day, weekday with Monday = 0), parsed once per unique value."""
  uniq, inv = np.unique(tokens, return_inverse=True)
  hours, days = np.zeros(len(uniq), np.int64), np.zeros(len(uniq), np.int64)
  for i, t in enumerate(uniq):
    t = t.decode("ascii", "replace") if isinstance(t, bytes) else str(t)
    try:
      hours[i] = int(t[6:8])
      days[i] = datetime.date(2000 + int(t[:2]), int(t[2:4]), int(t[4:6])).weekday()
    except ValueError as e:
      raise DatasetError(f"{column}: bad hour value {t!r} (want YYMMDDHH)") from e
  return hours[inv.ravel()], days[inv.ravel()]


# ---------------------------------------------------------------------------------------------
# Reading


def open_binary(path: pathlib.Path):
  """A binary stream of ``path``, gunzipped when it starts with the gzip magic bytes."""
  with open(path, "rb") as f:
    magic = f.read(2)
  return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_header(fmt: Format, f) -> None:
  if fmt.header:
    first = f.readline()
    if not first:
      raise DatasetError(f"{fmt.name}: the data file is empty")
    fmt.set_header(first.decode("utf-8", "replace").rstrip("\r\n").split(fmt.delimiter))


def count_rows(fmt: Format, path: pathlib.Path) -> int:
  """The number of non-blank data lines."""
  with open_binary(path) as f:
    _read_header(fmt, f)
    return sum(1 for line in f if line.strip())


def iter_chunks(fmt: Format, path: pathlib.Path, chunk_rows: int) -> Iterator[Chunk]:
  """Parsed chunks of at most ``chunk_rows`` rows, in file order (blank lines skipped).

  Lines are split as bytes and the tokens stay bytes (``S`` arrays): categorical values are
  counted, looked up and hashed as bytes, which is much faster than decoding them to str.
  """
  delim = fmt.delimiter.encode()
  with open_binary(path) as f:
    _read_header(fmt, f)
    line_no = 1 + int(fmt.header)
    while True:
      lines = list(itertools.islice(f, chunk_rows))
      if not lines:
        return
      numbers = [line_no + i for i, line in enumerate(lines) if line.strip()]
      line_no += len(lines)
      lines = [line.rstrip(b"\r\n") for line in lines if line.strip()]
      if not lines:
        continue
      tokens = delim.join(lines).split(delim)
      c = fmt.num_columns
      if len(tokens) != len(lines) * c:
        bad = next(i for i, line in enumerate(lines) if len(line.split(delim)) != c)
        raise DatasetError(f"{path}, line {numbers[bad]}: {len(lines[bad].split(delim))} columns, "
                           f"expected {c}")
      rows = np.array(tokens, dtype=bytes).reshape(len(lines), c)
      try:
        yield fmt.parse(rows)
      except DatasetError as e:  # find the first bad row, for its line number
        for i in range(len(lines)):
          try:
            fmt.parse(rows[i:i + 1])
          except DatasetError as row_error:
            raise DatasetError(f"{path}, line {numbers[i]}, {row_error}") from None
        raise DatasetError(f"{path}, lines {numbers[0]}-{numbers[-1]}: {e}") from None


def encode_chunk(fmt: Format, chunk: Chunk, vocabs: list[Vocab] | None, hash_buckets: int) -> np.ndarray:
  ids = np.empty((len(chunk.labels), len(fmt.fields)), np.int32)
  for f, (spec, col) in enumerate(zip(fmt.fields, chunk.columns)):
    if hash_buckets:
      ids[:, f] = hash_column(col, hash_buckets, field_salt(spec.name))
    else:
      ids[:, f] = vocabs[f].transform(col)
  return ids


# ---------------------------------------------------------------------------------------------
# Cache


def find_data_file(name: str, data_dir: str = "") -> pathlib.Path:
  """``data_dir`` may be the file itself or a folder holding one of the known file names."""
  files = FORMATS[name].files
  tried = candidate_dirs(name, data_dir)
  for d in tried:
    if d.is_file():
      return d
    for fname in files:
      if (d / fname).is_file():
        return d / fname
  raise not_found(name, " or ".join(files), tried)


def split_sizes(n: int) -> tuple[int, int, int]:
  n_eval = n // 10
  return n - 2 * n_eval, n_eval, n_eval


def cache_root(cache_dir: str = "") -> pathlib.Path:
  root = cache_dir or os.environ.get("ROCKET_CACHE_DIR", "~/.cache/rocket")
  return pathlib.Path(root).expanduser() / "ctr"


def cache_path(name: str, path: pathlib.Path, cache_dir: str, opts: FeatureOptions) -> pathlib.Path:
  st = path.stat()
  key = {"version": CACHE_VERSION, "dataset": name, "path": str(path.resolve()), "size": st.st_size,
         "mtime_ns": st.st_mtime_ns, "hash_buckets": opts.hash_buckets,
         "min_count": 0 if opts.hash_buckets else opts.min_count}
  digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  return cache_root(cache_dir) / f"{name}_{digest}"


def build_cache(name: str, path: pathlib.Path, out: pathlib.Path, opts: FeatureOptions) -> None:
  fmt = FORMATS[name]()
  n = count_rows(fmt, path)
  n_train, n_valid, n_test = split_sizes(n)
  if n_test == 0:
    raise DatasetError(f"{path}: {n} rows is too few for a 80/10/10 split")
  vocabs = None
  if not opts.hash_buckets:
    vocabs = [Vocab() for _ in fmt.fields]
    seen = 0
    for chunk in iter_chunks(fmt, path, opts.chunk_rows):
      take = min(len(chunk.labels), n_train - seen)
      for v, col in zip(vocabs, chunk.columns):
        v.update(col[:take])
      seen += take
      if seen >= n_train:
        break
    for v in vocabs:
      v.finalize(opts.min_count)
  tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  try:
    ids = np.lib.format.open_memmap(tmp / "ids.npy", "w+", np.int32, (n, len(fmt.fields)))
    labels = np.lib.format.open_memmap(tmp / "labels.npy", "w+", np.float32, (n,))
    users = np.lib.format.open_memmap(tmp / "users.npy", "w+", np.int64, (n,))
    row = 0
    for chunk in iter_chunks(fmt, path, opts.chunk_rows):
      k = len(chunk.labels)
      if row + k > n:
        raise DatasetError(f"{path} changed while it was read")
      ids[row:row + k] = encode_chunk(fmt, chunk, vocabs, opts.hash_buckets)
      labels[row:row + k], users[row:row + k] = chunk.labels, chunk.users
      row += k
    if row != n:
      raise DatasetError(f"{path} changed while it was read ({row} rows, counted {n})")
    for a in (ids, labels, users):
      a.flush()
    del ids, labels, users
    sizes = [opts.hash_buckets or len(v) for v in (vocabs or fmt.fields)]
    meta = {"dataset": name, "source": str(path.resolve()), "rows": n, "splits": [n_train, n_valid, n_test],
            "fields": [dataclasses.asdict(dataclasses.replace(f, vocab_size=s))
                       for f, s in zip(fmt.fields, sizes)],
            "hash_buckets": opts.hash_buckets, "min_count": opts.min_count, "version": CACHE_VERSION}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
      os.replace(tmp, out)
    except OSError:
      if not (out / "meta.json").is_file():  # else another process built it first: use theirs
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def load(name: str, data_dir: str = "", cache_dir: str = "",
         opts: FeatureOptions | None = None) -> CTRDataset:
  """Criteo or Avazu from the cache, building it first when absent (see the module docstring)."""
  opts = opts or FeatureOptions()
  path = find_data_file(name, data_dir)
  out = cache_path(name, path, cache_dir, opts)
  if not (out / "meta.json").is_file():
    try:
      out.parent.mkdir(parents=True, exist_ok=True)
      build_cache(name, path, out, opts)
    except (OSError, EOFError, zlib.error) as e:
      raise DatasetError(
          f"building the {name} id cache {out} from {path} failed: {e}. Either the data file is truncated "
          "or corrupt, or the cache folder is not writable (then pass --config.cache_dir=/a/writable/folder)."
      ) from e
  meta = json.loads((out / "meta.json").read_text())
  ids = np.load(out / "ids.npy", mmap_mode="r")
  labels = np.load(out / "labels.npy", mmap_mode="r")
  users = np.load(out / "users.npy", mmap_mode="r")
  a, b = meta["splits"][0], meta["splits"][0] + meta["splits"][1]
  split = lambda s: CTRSplit(ids[s], labels[s], users[s])
  return CTRDataset(name, [FieldSpec(**f) for f in meta["fields"]], split(slice(0, a)), split(slice(a, b)),
                    split(slice(b, None)),
                    description=f"{name} ({meta['rows']} rows, last 10% test, previous 10% valid; "
                    f"{describe_features(opts)}; {path}; cache {out})")
