"""Feature processing: per-field vocabularies, Criteo-style numeric bucketing, field specs, crosses.

Ids are int32 with 0 reserved for out-of-vocabulary (OOV) values in every field, so a
field with ``vocab_size`` V has ids in ``[0, V)`` and an embedding table of V rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from rocket.ctr import hashing

SIDES = ("user", "item", "context")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
  """One categorical field: its name, id range ``[0, vocab_size)`` and request side.

  ``side`` is "user" or "context" for fields known once per served request, "item" for
  fields that vary per candidate ad.
  """
  name: str
  vocab_size: int
  side: str

  def __post_init__(self):
    if self.side not in SIDES:
      raise ValueError(f"field {self.name!r}: side must be one of {SIDES}, got {self.side!r}")
    if self.vocab_size < 1:
      raise ValueError(f"field {self.name!r}: vocab_size must be >= 1, got {self.vocab_size}")


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
  """A multi-valued field: up to ``length`` values of base field ``field`` per example (e.g. the
  items a user rated before), stored as ``length`` id columns after the base fields, most recent
  first, padded with id 0. Its ids are ``field``'s (the same vocabulary and embedding table); id 0,
  the padding, is masked out, and so is an out-of-vocabulary value (it has the padding's id)."""
  name: str
  field: str
  length: int
  side: str = "user"

  def __post_init__(self):
    if self.side not in SIDES:
      raise ValueError(f"sequence {self.name!r}: side must be one of {SIDES}, got {self.side!r}")
    if self.length < 1:
      raise ValueError(f"sequence {self.name!r}: length must be >= 1, got {self.length}")

  def column_names(self) -> list[str]:
    return [f"{self.name}[{i}]" for i in range(self.length)]


def column_specs(fields, sequences=()) -> list[FieldSpec]:
  """One :class:`FieldSpec` per id column: the base fields, then each sequence's positions
  (named ``name[i]``, with the vocabulary of the field they hold)."""
  by_name = {f.name: f for f in fields}
  out = list(fields)
  for s in sequences:
    if s.field not in by_name:
      raise ValueError(f"sequence {s.name!r} holds values of {s.field!r}, which is not a field "
                       f"({sorted(by_name)})")
    out += [FieldSpec(n, by_name[s.field].vocab_size, s.side) for n in s.column_names()]
  return out


def _column(values) -> tuple[np.ndarray, str]:
  """A 1-D array of int64, str or bytes values and its kind ("int", "str" or "bytes")."""
  arr = np.asarray(values)
  if arr.ndim != 1:
    arr = arr.ravel()
  if arr.dtype.kind in "iub":
    return arr.astype(np.int64, copy=False), "int"
  if arr.dtype.kind == "U":
    return arr, "str"
  if arr.dtype.kind == "S":
    return arr, "bytes"
  if arr.dtype.kind == "O" or arr.size == 0:
    if arr.size == 0:
      return arr.astype(np.int64), "int"
    if all(isinstance(v, int | np.integer) for v in arr):
      return arr.astype(np.int64), "int"
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr]), "str"
  raise TypeError(f"vocabulary values must be integers or strings, got dtype {arr.dtype}")


class Vocab:
  """Value -> id map of one field (int, str or bytes values): id 0 is OOV, kept values get ids 1..V-1.

  A value is kept when it occurs at least ``min_count`` times in the fitted data; kept
  values are numbered by descending count, ties by ascending value, so the ids do not
  depend on the order of the data.  Fit at once (``Vocab.fit``) or stream
  (``update`` per chunk, then ``finalize``); both give the same vocabulary.
  """

  MERGE_EVERY = 1 << 20  # pending unique values before the per-chunk counts are merged

  def __init__(self):
    self.kind: str | None = None
    self.min_count: int | None = None
    self._keys = None  # merged counts so far: sorted unique values and their counts
    self._counts = np.zeros(0, np.int64)
    self._pending: list[tuple[np.ndarray, np.ndarray]] = []
    self._pending_size = 0
    self.values: np.ndarray | None = None  # kept values in id order (id = index + 1)
    self.counts: np.ndarray | None = None
    self._sorted = None  # kept values sorted, and their ids, for searchsorted lookups
    self._sorted_ids = None

  @classmethod
  def fit(cls, values, min_count: int = 1) -> Vocab:
    return cls().update(values).finalize(min_count)

  @property
  def finalized(self) -> bool:
    return self.values is not None

  def update(self, chunk) -> Vocab:
    """Counts the values of one chunk (any length, any order)."""
    if self.finalized:
      raise RuntimeError("Vocab.update after finalize")
    col, kind = _column(chunk)
    if col.size == 0:
      return self
    if self.kind is None:
      self.kind = kind
    elif kind != self.kind:
      raise TypeError(f"Vocab of {self.kind} values updated with {kind} values")
    uniq, counts = np.unique(col, return_counts=True)
    self._pending.append((uniq, counts.astype(np.int64)))
    self._pending_size += len(uniq)
    if self._pending_size > max(self.MERGE_EVERY, 0 if self._keys is None else len(self._keys)):
      self._merge()
    return self

  def _merge(self):
    parts = ([] if self._keys is None else [(self._keys, self._counts)]) + self._pending
    self._pending, self._pending_size = [], 0
    if not parts:
      return
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    self._keys, inv = np.unique(keys, return_inverse=True)
    self._counts = np.bincount(inv.ravel(), weights=counts, minlength=len(self._keys)).astype(np.int64)

  def finalize(self, min_count: int = 1) -> Vocab:
    """Drops values seen fewer than ``min_count`` times and numbers the rest."""
    self._merge()
    keys = self._keys if self._keys is not None else np.zeros(0, np.int64)
    keep = self._counts >= min_count
    keys, counts = keys[keep], self._counts[keep]
    order = np.argsort(-counts, kind="stable")  # keys are ascending: ties stay by value
    self._set(keys[order], counts[order], int(min_count))
    self._keys, self._counts = None, np.zeros(0, np.int64)
    return self

  def _set(self, values: np.ndarray, counts: np.ndarray, min_count: int):
    self.values, self.counts, self.min_count = values, counts, min_count
    if self.kind is None:
      self.kind = {"U": "str", "S": "bytes"}.get(values.dtype.kind, "int")
    order = np.argsort(values, kind="stable")
    self._sorted = values[order]
    self._sorted_ids = (order + 1).astype(np.int32)

  def __len__(self) -> int:
    if not self.finalized:
      raise RuntimeError("Vocab is not finalized")
    return len(self.values) + 1

  def transform(self, values) -> np.ndarray:
    """int32 ids of ``values`` (any shape); unknown values map to 0."""
    if not self.finalized:
      raise RuntimeError("Vocab.transform before finalize")
    arr = np.asarray(values)
    col, kind = _column(arr)
    if col.size and kind != self.kind:
      raise TypeError(f"Vocab of {self.kind} values asked to transform {kind} values")
    if len(self._sorted) == 0:
      return np.zeros(arr.shape, np.int32)
    pos = np.minimum(np.searchsorted(self._sorted, col), len(self._sorted) - 1)
    ids = np.where(self._sorted[pos] == col, self._sorted_ids[pos], 0).astype(np.int32)
    return ids.reshape(arr.shape)

  def to_dict(self) -> dict:
    """A JSON-able dict (bytes values as latin-1 str); ``Vocab.from_dict`` rebuilds the same vocabulary."""
    if not self.finalized:
      raise RuntimeError("Vocab.to_dict before finalize")
    values = self.values.tolist()
    if self.kind == "bytes":
      values = [v.decode("latin-1") for v in values]
    return {"kind": self.kind, "min_count": self.min_count, "values": values, "counts": self.counts.tolist()}

  @classmethod
  def from_dict(cls, d: dict) -> Vocab:
    v = cls()
    v.kind = d["kind"]
    values = d["values"]
    if v.kind == "bytes":
      values = [s.encode("latin-1") for s in values]
    dtype = {"int": np.int64, "str": str, "bytes": bytes}[v.kind]
    values = np.asarray(values, dtype=dtype) if values else np.zeros(0, dtype)
    v._set(values, np.asarray(d["counts"], np.int64), int(d["min_count"]))
    return v


def field_salt(name: str) -> int:
  """A stable 32-bit hashing salt per field name, so hashed ids do not depend on field order."""
  return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest(), "little")


def hash_column(values, hash_buckets: int, salt: int) -> np.ndarray:
  """Hashing-trick ids ``1 + hash % (hash_buckets - 1)`` in ``[1, hash_buckets)``; 0 stays free (OOV).

  Integers go through ``hashing.hash_ids``, strings through ``hashing.hash_strings``.
  """
  if hash_buckets < 2:
    raise ValueError(f"hash_buckets must be >= 2 (bucket 0 is reserved), got {hash_buckets}")
  arr = np.asarray(values)
  if arr.dtype.kind in "iub":
    return 1 + hashing.hash_ids(arr, hash_buckets - 1, salt)
  return 1 + hashing.hash_strings(arr, hash_buckets - 1, salt)


# Numeric fields: the transform of the Criteo winning solution (Juan et al., "3 Idiots"),
# with small values kept exact and large ones on a log-squared scale.
NUMERIC_CAP = 1e12
NUMERIC_VOCAB_SIZE = 7 + math.floor(math.log(NUMERIC_CAP) ** 2) + 1


def bucketize_log2(x) -> np.ndarray:
  """Bucket ids (int32, in ``[0, NUMERIC_VOCAB_SIZE)``) of a numeric field, Criteo practice.

  * missing (NaN, or "" in a str/bytes array) -> 0
  * x <= 2 -> ``floor(max(x, -3)) + 4``: -3 (or less) -> 1, -2 -> 2, -1 -> 3, 0 -> 4, 1 -> 5, 2 -> 6
  * x > 2 -> ``7 + floor(ln(x) ** 2)`` (x capped at 1e12): 3 -> 8, 10 -> 12, 100 -> 28, 1000 -> 54

  The log-squared scale (natural log, despite the name) is the one used by the Criteo
  challenge winners: ``int(log(x) ** 2)`` for x > 2.
  """
  arr = np.asarray(x)
  if arr.dtype.kind in "US":
    empty, nan = (b"", b"nan") if arr.dtype.kind == "S" else ("", "nan")
    arr = np.where(arr == empty, nan, arr).astype(np.float64)
  else:
    arr = arr.astype(np.float64)
  missing = np.isnan(arr)
  v = np.where(missing, 0.0, np.minimum(arr, NUMERIC_CAP))
  small = np.floor(np.maximum(v, -3.0)) + 4
  with np.errstate(divide="ignore", invalid="ignore"):
    large = 7 + np.floor(np.log(np.maximum(v, 2.0)) ** 2)
  ids = np.where(missing, 0, np.where(v <= 2, small, large))
  return ids.astype(np.int32)


def parse_crosses(spec: str, field_names=None) -> list[tuple[str, ...]]:
  """Parses ``"item*user_age,item*user_gender"`` into ``[("item", "user_age"), ("item", "user_gender")]``.

  Each comma-separated term names two or more fields joined by ``*`` (whitespace is
  ignored); "" gives ``[]``.  With ``field_names``, an unknown name is a ValueError that
  names it and lists the known fields.
  """
  crosses = []
  for term in (spec or "").split(","):
    term = term.strip()
    if not term:
      continue
    names = tuple(n.strip() for n in term.split("*"))
    if len(names) < 2 or any(not n for n in names):
      raise ValueError(f"cross {term!r} must join two or more field names with '*'")
    if len(set(names)) != len(names):
      raise ValueError(f"cross {term!r} repeats a field")
    if field_names is not None:
      known = list(field_names)
      for n in names:
        if n not in known:
          raise ValueError(f"unknown field {n!r} in cross {term!r}; known fields: {', '.join(known)}")
    crosses.append(names)
  return crosses
