"""CTR datasets as int32 field-id matrices (``rocket.ctr.loaders.load_ctr_dataset(config) -> CTRDataset``).

Every dataset has F categorical fields; ``split.ids[:, f]`` holds ids in
``[0, fields[f].vocab_size)`` with 0 the OOV id.  Ids come from a per-field
:class:`~rocket.ctr.features.Vocab` fitted on the train split only (values seen fewer
than ``config.features.min_count`` times there, and values first seen in valid/test,
map to 0), or with ``config.features.hash_buckets = B > 0`` from the hashing trick
(``1 + hash % (B - 1)`` per field, salted by the field name; ``min_count`` is then unused).

Splits (all fixed, independent of ``config.seed``, so every seed sees the same data):

* **frappe** (``frappe_libfm.npz``): upstream ships only the validation (57,722) and
  test (28,860) rows of the libfm release.  They are concatenated (validation first),
  permuted with ``np.random.default_rng(2018)`` and cut 80% / 10% / 10% into
  train / valid / test (69,265 / 8,658 / 8,659 rows); each split keeps file order.
  ``users`` is the user field (column 0 of the libfm indices, 0..956).
* **movielens** (MovieLens-100k, ``ml100k_ctr.npz``, label = rating >= 4): a per-user
  temporal split.  Each user's ratings are ordered by (timestamp, file row); the last
  ``round(10%)`` (at least 1) go to test, the ``round(10%)`` before them to valid, the rest
  to train.  Every user (all have >= 20 ratings) appears in all three splits, so GAUC
  is defined for every user; items first rated late are OOV in valid/test, as in
  production.  Fields: user, user_age (7 MovieLens age groups), user_gender,
  user_occupation, user_zip (user side); item, genre1..genre3 (the item's first three
  of the 19 genres in u.genre order; "none" is a value of its own) (item side).
  ``config.features.history = L > 0`` adds the sequence ``history`` (user side, see
  :class:`~rocket.ctr.features.SequenceSpec`): the items the same user rated strictly
  earlier in time than the example (``features.history_of="liked"``: only those rated >= 4),
  the L most recent first. Nothing at or after the example's own timestamp enters it, so it
  holds no label of the example nor of any later event; an item the train split never saw
  is out of vocabulary and, like the padding, masked.
* **synthetic_ctr**: users x items with latent vectors and a known logistic click
  model (see :func:`load_synthetic`); ``ds.test_true_prob`` holds the true test p(click).
* **criteo**, **avazu**: streamed from the raw files to a memory-mapped cache, see
  :mod:`rocket.ctr.criteo`.

``config.features.train_subset = n > 0`` keeps a seeded (``config.seed``) random
subset of n train rows, in their original order.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from rocket.ctr.features import FieldSpec, SequenceSpec, Vocab, column_specs, field_salt, hash_column
from rocket.data.base import DatasetError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SPLIT_SEED = 2018
HISTORY_OF = ("rated", "liked")
DATASETS = ("frappe", "movielens", "synthetic_ctr", "criteo", "avazu")
SUBDIRS = {"frappe": "frappe", "movielens": "movielens100k", "criteo": "criteo", "avazu": "avazu"}


@dataclasses.dataclass
class CTRSplit:
  ids: np.ndarray  # int32 [N, C]: F base fields, then each sequence's columns; 0 = OOV (padding)
  labels: np.ndarray  # float32 [N] in {0, 1}
  users: np.ndarray  # int64 [N], the raw user id (GAUC groups by it)

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, idx) -> CTRSplit:
    return CTRSplit(self.ids[idx], self.labels[idx], self.users[idx])


@dataclasses.dataclass
class CTRDataset:
  name: str
  fields: list[FieldSpec]
  train: CTRSplit
  valid: CTRSplit | None
  test: CTRSplit
  description: str = ""
  test_true_prob: np.ndarray | None = None  # float32 [N_test]; synthetic_ctr only
  # per field, how a raw value becomes its id (``encode_fields``): {"kind": "vocab", "values":
  # kept values in id order (id = index + 1; others are 0)} or {"kind": "hash", "buckets",
  # "salt"}; None when the loader gives ids only. An export carries them (raw-value requests).
  encoders: list | None = None
  # multi-valued fields (e.g. a user's past items), stored as id columns after the base fields
  sequences: tuple[SequenceSpec, ...] = ()

  @property
  def columns(self) -> list[FieldSpec]:
    """One spec per id column (the base fields, then the sequences' positions)."""
    return column_specs(self.fields, self.sequences)

  @property
  def positive_rate(self) -> float:
    return float(np.mean(self.train.labels)) if len(self.train) else 0.0

  @property
  def field_names(self) -> list[str]:
    return [f.name for f in self.fields]


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
  """``config.features``: see the module docstring; ``chunk_rows`` is the streaming chunk (criteo/avazu)."""
  min_count: int = 1
  hash_buckets: int = 0
  train_subset: int = 0
  chunk_rows: int = 250_000
  history: int = 0  # length of the past-items sequence (movielens), 0 = none
  history_of: str = "rated"  # "rated": every earlier rating | "liked": ratings >= 4 only

  def __post_init__(self):
    if self.history < 0 or self.history_of not in HISTORY_OF:
      raise ValueError(f"features.history must be >= 0 and features.history_of one of {HISTORY_OF}, "
                       f"got {self.history} and {self.history_of!r}")
    if self.hash_buckets == 1 or self.hash_buckets < 0:
      raise ValueError(f"features.hash_buckets must be 0 (vocabulary) or >= 2, got {self.hash_buckets}")
    if self.chunk_rows < 1:
      raise ValueError(f"features.chunk_rows must be >= 1, got {self.chunk_rows}")

  @classmethod
  def from_config(cls, config) -> FeatureOptions:
    feats = config_get(config, "features", None)
    get = lambda key, default: int(config_get(feats, key, default)) if feats is not None else default
    return cls(min_count=get("min_count", 1), hash_buckets=get("hash_buckets", 0),
               train_subset=get("train_subset", int(config_get(config, "train_subset", 0) or 0)),
               chunk_rows=get("chunk_rows", cls.chunk_rows), history=get("history", 0),
               history_of=str(config_get(feats, "history_of", "rated")))


def config_get(cfg, key, default):
  """``cfg[key]`` for a ConfigDict, dict or object; ``default`` when absent (or ``cfg`` is None)."""
  if cfg is None:
    return default
  if hasattr(cfg, "get"):
    return cfg.get(key, default)
  return getattr(cfg, key, default)


def candidate_dirs(name: str, data_dir: str = "") -> list[pathlib.Path]:
  """Where dataset ``name`` is looked for, in order (mirrors ``rocket.data.cifar10``)."""
  if data_dir:
    return [pathlib.Path(data_dir).expanduser()]
  sub = SUBDIRS[name]
  dirs = []
  if os.environ.get("ROCKET_DATA_DIR"):
    dirs.append(pathlib.Path(os.environ["ROCKET_DATA_DIR"]).expanduser() / "ctr" / sub)
  dirs += [REPO_ROOT.parent / "shared" / "data" / "ctr" / sub,
           pathlib.Path.cwd().parent / "shared" / "data" / "ctr" / sub]
  return dirs


def not_found(name: str, wanted: str, tried: list[pathlib.Path]) -> DatasetError:
  sub = SUBDIRS[name]
  return DatasetError(
      f"{name} data not found: looked for {wanted} in " + ", ".join(str(d) for d in tried)
      + f". Put the shared data beside the checkout (../shared/data/ctr/{sub}), set $ROCKET_DATA_DIR "
      f"to the folder holding ctr/{sub}/, or pass --config.data_dir=/path/to/{sub}.")


def find_file(name: str, filename: str, data_dir: str = "") -> pathlib.Path:
  """The path of ``filename`` in the first candidate dir holding it (``data_dir`` may be the file)."""
  tried = candidate_dirs(name, data_dir)
  for d in tried:
    if d.is_file() and d.name == filename:
      return d
    if (d / filename).is_file():
      return d / filename
  raise not_found(name, filename, tried)


VERIFY = "the file is damaged or not this dataset's: check it with `python ../shared/data/verify.py`"


def read_npz(path: pathlib.Path, keys, same_length=()) -> dict[str, np.ndarray]:
  """The arrays ``keys`` of an npz file; a :class:`DatasetError` naming the file when it cannot be
  read (truncated, not a zip, a key missing) or when arrays of ``same_length`` groups (one row
  per example) differ in length."""
  try:
    with np.load(path) as z:
      out = {k: z[k] for k in keys}
  except Exception as e:  # noqa: BLE001 -- zipfile.BadZipFile, EOFError, OSError, KeyError, ...
    raise DatasetError(f"cannot read {path} ({type(e).__name__}: {e}); {VERIFY}") from None
  for group in same_length:
    lengths = {k: len(out[k]) for k in group}
    if len(set(lengths.values())) > 1:
      raise DatasetError(f"{path}: arrays with one row per example differ in length ({lengths}); "
                         f"{VERIFY}")
  return out


def random_split(n: int, seed: int = SPLIT_SEED, fractions=(0.8, 0.1)) -> tuple[np.ndarray, ...]:
  """Index arrays (each sorted) of a seeded random train/valid/test split of ``n`` rows."""
  perm = np.random.default_rng(seed).permutation(n)
  n_train = int(fractions[0] * n)
  n_valid = int(fractions[1] * n)
  parts = perm[:n_train], perm[n_train:n_train + n_valid], perm[n_train + n_valid:]
  return tuple(np.sort(p) for p in parts)


def encode_fields(names: list[str], columns: dict[str, list[np.ndarray]],
                  opts: FeatureOptions, encoders: list | None = None
                  ) -> tuple[dict[str, np.ndarray], list[int]]:
  """Raw per-field columns per split -> int32 id matrices per split, and the vocab sizes.

  ``columns["train"][f]`` fits field f's vocabulary (or hashing replaces it). When ``encoders``
  is a list, each field's encoder (see :class:`CTRDataset`) is appended to it.
  """
  out = {split: np.zeros((len(cols[0]) if cols else 0, len(names)), np.int32)
         for split, cols in columns.items()}
  sizes = []
  for f, name in enumerate(names):
    if opts.hash_buckets:
      for split, cols in columns.items():
        out[split][:, f] = hash_column(cols[f], opts.hash_buckets, field_salt(name))
      sizes.append(opts.hash_buckets)
      enc = {"kind": "hash", "buckets": int(opts.hash_buckets), "salt": field_salt(name)}
    else:
      vocab = Vocab.fit(columns["train"][f], opts.min_count)
      for split, cols in columns.items():
        out[split][:, f] = vocab.transform(cols[f])
      sizes.append(len(vocab))
      enc = {"kind": "vocab", "values": np.asarray(vocab.values)}
    if encoders is not None:
      encoders.append(enc)
  return out, sizes


def describe_features(opts: FeatureOptions) -> str:
  if opts.hash_buckets:
    return f"hashed into {opts.hash_buckets} buckets per field"
  return f"vocab min_count={opts.min_count}"


# ---------------------------------------------------------------------------------------------
# Frappe

FRAPPE_FILE = "frappe_libfm.npz"
FRAPPE_SIDES = {"user": "user", "item": "item"}  # the other 8 fields are context


def load_frappe(data_dir: str = "", opts: FeatureOptions | None = None) -> CTRDataset:
  opts = opts or FeatureOptions()
  path = find_file("frappe", FRAPPE_FILE, data_dir)
  z = read_npz(path, ("field_names", "validation_x", "validation_y", "test_x", "test_y"),
               same_length=(("validation_x", "validation_y"), ("test_x", "test_y")))
  names = [str(n) for n in z["field_names"]]
  if z["validation_x"].ndim != 2 or z["validation_x"].shape[1] != len(names) or (
      z["test_x"].ndim != 2 or z["test_x"].shape[1] != len(names)):
    raise DatasetError(f"{path}: validation_x/test_x must have one column per field name "
                       f"({len(names)}); {VERIFY}")
  x = np.concatenate([z["validation_x"], z["test_x"]]).astype(np.int64)
  y = np.concatenate([z["validation_y"], z["test_y"]]).astype(np.float32)
  splits = dict(zip(("train", "valid", "test"), random_split(len(y))))
  columns = {s: [x[idx, f] for f in range(x.shape[1])] for s, idx in splits.items()}
  encoders: list = []
  ids, sizes = encode_fields(names, columns, opts, encoders)
  fields = [FieldSpec(n, v, FRAPPE_SIDES.get(n, "context")) for n, v in zip(names, sizes)]
  user_col = names.index("user")
  parts = {s: CTRSplit(ids[s], y[idx], x[idx, user_col]) for s, idx in splits.items()}
  return CTRDataset("frappe", fields, parts["train"], parts["valid"], parts["test"],
                    description=f"Frappe (libfm validation+test re-split 80/10/10, seed {SPLIT_SEED}; "
                    f"{describe_features(opts)}; {path})",
                    encoders=encoders)


# ---------------------------------------------------------------------------------------------
# MovieLens-100k

MOVIELENS_FILE = "ml100k_ctr.npz"
AGE_BOUNDS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M age groups: <18, 18-24, ..., 50-55, 56+


def per_user_temporal_split(users: np.ndarray, times: np.ndarray, frac: float = 0.1):
  """Sorted train/valid/test row indices: each user's last ``round(frac * n)`` (>= 1) rows by
  (time, row) are test, the ``round(frac * n)`` before them valid, the rest train."""
  n = len(users)
  order = np.lexsort((np.arange(n), times, users))
  u = users[order]
  starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
  sizes = np.diff(np.r_[starts, n])
  k = np.maximum(1, np.floor(frac * sizes + 0.5)).astype(np.int64)
  size_r, k_r = np.repeat(sizes, sizes), np.repeat(k, sizes)
  from_end = size_r - 1 - (np.arange(n) - np.repeat(starts, sizes))
  test = from_end < k_r
  valid = ~test & (from_end < 2 * k_r)
  train = ~test & ~valid
  return tuple(np.sort(order[m]) for m in (train, valid, test))


def past_rows(users: np.ndarray, times: np.ndarray, length: int, keep=None) -> np.ndarray:
  """[N, length] int64: for each row, the rows of the same user with a strictly earlier time (and
  ``keep``, when given), the most recent first (ties by row, the later first), -1 past the
  user's first one."""
  n = len(users)
  users, times = np.asarray(users, np.int64), np.asarray(times, np.int64)
  if n and (users.min() < 0 or times.min() < 0 or users.max() >= 2**31 or times.max() >= 2**32):
    raise ValueError("past_rows needs user ids in [0, 2**31) and times in [0, 2**32)")
  key = (users << 32) | times
  events = np.flatnonzero(np.ones(n, bool) if keep is None else keep)
  events = events[np.lexsort((events, key[events]))]
  ekey = key[events]
  before = np.searchsorted(ekey, key, side="left")  # events of earlier users, or earlier times
  first = np.searchsorted(ekey, users << 32, side="left")  # the user's first event
  out = np.full((n, length), -1, np.int64)
  for j in range(length):
    p = before - 1 - j
    has = p >= first
    out[has, j] = events[p[has]]
  return out


def first_genres(genres: np.ndarray, k: int = 3) -> np.ndarray:
  """[N, k] int64: 1 + index of each row's first k set genres (file order), 0 where fewer."""
  g = np.asarray(genres).astype(bool)
  pos = np.argsort(~g, axis=1, kind="stable")[:, :k]
  present = np.take_along_axis(g, pos, axis=1)
  return np.where(present, pos + 1, 0).astype(np.int64)


def load_movielens(data_dir: str = "", opts: FeatureOptions | None = None) -> CTRDataset:
  opts = opts or FeatureOptions()
  path = find_file("movielens", MOVIELENS_FILE, data_dir)
  keys = ("user_id", "item_id", "timestamp", "label", "user_age", "user_gender_male",
          "user_occupation", "user_zip", "item_genres")
  d = read_npz(path, keys, same_length=(keys,))
  users = d["user_id"].astype(np.int64)
  genres = first_genres(d["item_genres"])
  raw = [("user", users, "user"),
         ("item", d["item_id"], "item"),
         ("genre1", genres[:, 0], "item"),
         ("genre2", genres[:, 1], "item"),
         ("genre3", genres[:, 2], "item"),
         ("user_age", np.digitize(d["user_age"], AGE_BOUNDS) + 1, "user"),
         ("user_gender", d["user_gender_male"], "user"),
         ("user_occupation", d["user_occupation"], "user"),
         ("user_zip", d["user_zip"], "user")]
  names = [r[0] for r in raw]
  splits = dict(zip(("train", "valid", "test"), per_user_temporal_split(users, d["timestamp"])))
  columns = {s: [np.asarray(r[1])[idx].astype(np.int64) for r in raw] for s, idx in splits.items()}
  encoders: list = []
  ids, sizes = encode_fields(names, columns, opts, encoders)
  fields = [FieldSpec(name, v, side) for (name, _, side), v in zip(raw, sizes)]
  y = d["label"].astype(np.float32)
  sequences, history = (), ""
  if opts.history:
    item_ids = np.zeros(len(users), np.int64)  # every row's item id (the train vocabulary's)
    for s, idx in splits.items():
      item_ids[idx] = ids[s][:, names.index("item")]
    past = past_rows(users, d["timestamp"], opts.history, y > 0 if opts.history_of == "liked" else None)
    hist = np.where(past >= 0, item_ids[np.maximum(past, 0)], 0).astype(np.int32)
    ids = {s: np.concatenate([ids[s], hist[idx]], axis=1) for s, idx in splits.items()}
    sequences = (SequenceSpec("history", "item", opts.history, "user"),)
    history = f"; history: the {opts.history} most recent earlier {opts.history_of} items"
  parts = {s: CTRSplit(ids[s], y[idx], users[idx]) for s, idx in splits.items()}
  return CTRDataset("movielens", fields, parts["train"], parts["valid"], parts["test"],
                    description=f"MovieLens-100k (rating>=4; per-user temporal split 80/10/10; "
                    f"{describe_features(opts)}{history}; {path})",
                    encoders=encoders, sequences=sequences)


# ---------------------------------------------------------------------------------------------
# Synthetic CTR with a known click model

SYNTHETIC_DEFAULTS = dict(num_users=200, num_items=300, num_train=20000, num_valid=-1, num_test=5000,
                          dim=4, num_hours=8, num_devices=3, bias=-1.0, signal=1.5, cross=0.5,
                          bias_std=0.5, item_zipf=0.8)


def load_synthetic(cfg=None, seed: int = 0, opts: FeatureOptions | None = None) -> CTRDataset:
  """Users and items with latent vectors; impressions with a known p(click).

  ``logit = bias + b_user + b_item + <u, i> + b_hour + b_device + <i, h_hour>``: ``<u, i>``
  has standard deviation ``signal``, the item x hour interaction ``cross`` and the biases
  ``bias_std``.  Users are uniform, items Zipf-popular (``p ~ (rank + 1) ** -item_zipf``),
  hour and device uniform; labels are Bernoulli(p).  Everything is drawn from
  ``np.random.default_rng([seed, 2018])``.  Fields: user (user side), item (item side),
  hour and device (context).  ``num_valid < 0`` (the default) means ``num_train // 10``; 0: no valid split.
  """
  opts = opts or FeatureOptions()
  c = {k: type(v)(config_get(cfg, k, v)) for k, v in SYNTHETIC_DEFAULTS.items()}
  if c["num_valid"] < 0:
    c["num_valid"] = c["num_train"] // 10
  rng = np.random.default_rng([seed, SPLIT_SEED])
  nu, ni, d, nh, nd = c["num_users"], c["num_items"], c["dim"], c["num_hours"], c["num_devices"]
  scale = (c["signal"] ** 2 / d) ** 0.25  # var(<u, i>) = d * scale**4 = signal**2
  u_vec = rng.normal(size=(nu, d)) * scale
  i_vec = rng.normal(size=(ni, d)) * scale
  h_vec = rng.normal(size=(nh, d)) * (c["cross"] / (np.sqrt(d) * scale))
  b_user, b_item = rng.normal(size=nu) * c["bias_std"], rng.normal(size=ni) * c["bias_std"]
  b_hour, b_dev = rng.normal(size=nh) * c["bias_std"], rng.normal(size=nd) * c["bias_std"]
  n = c["num_train"] + c["num_valid"] + c["num_test"]
  pop = (np.arange(ni) + 1.0) ** -c["item_zipf"]
  user = rng.integers(0, nu, n)
  item = rng.choice(ni, size=n, p=pop / pop.sum())
  hour, dev = rng.integers(0, nh, n), rng.integers(0, nd, n)
  logit = (c["bias"] + b_user[user] + b_item[item] + np.einsum("nd,nd->n", u_vec[user], i_vec[item])
           + b_hour[hour] + b_dev[dev] + np.einsum("nd,nd->n", i_vec[item], h_vec[hour]))
  prob = 1.0 / (1.0 + np.exp(-logit))
  labels = (rng.random(n) < prob).astype(np.float32)
  bounds = np.cumsum([0, c["num_train"], c["num_valid"], c["num_test"]])
  splits = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(("train", "valid", "test"))}
  raw = [("user", user, "user"), ("item", item, "item"),
         ("hour", hour, "context"), ("device", dev, "context")]
  columns = {s: [r[1][idx] for r in raw] for s, idx in splits.items()}
  encoders: list = []
  ids, sizes = encode_fields([r[0] for r in raw], columns, opts, encoders)
  fields = [FieldSpec(name, v, side) for (name, _, side), v in zip(raw, sizes)]
  parts = {s: CTRSplit(ids[s], labels[idx], user[idx].astype(np.int64)) for s, idx in splits.items()}
  return CTRDataset("synthetic_ctr", fields, parts["train"], parts["valid"] if c["num_valid"] else None,
                    parts["test"], test_true_prob=prob[splits["test"]].astype(np.float32),
                    description=f"synthetic CTR ({nu} users x {ni} items, dim {d}, seed {seed}; "
                    f"{describe_features(opts)})",
                    encoders=encoders)


# ---------------------------------------------------------------------------------------------


def subset_train(split: CTRSplit, n: int, seed: int) -> CTRSplit:
  """A seeded random subset of ``n`` rows, kept in their original order (n <= 0: all)."""
  if n <= 0 or n >= len(split):
    return split
  idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(split))[:n])
  return split.take(idx)
