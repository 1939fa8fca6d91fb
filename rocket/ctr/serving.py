"""Loading and calling an exported light net -- no training code needed.

An artifact written by :mod:`rocket.ctr.export` is a folder with

* ``scorer.jaxexport`` -- the serialized ``jax.export`` module (StableHLO) of
  ``score(*params, request_ids, candidate_ids) -> p(click)``, with a symbolic
  number of candidates ``n``;
* ``params.npz``       -- the parameters (``leaf_0``, ``leaf_1``, ... in call order;
  int8 tables when exported with ``--int8``) and ``layout_sha256``, the digest of the
  field layout the module was exported for;
* ``manifest.json``    -- which fields make up a request (user and context
  fields, known once per request) and a candidate (the ad's fields), their
  vocabulary sizes, how each field's raw values become ids (``encoders``), the sha256
  of the other files, and the metrics measured at export time;
* ``vocab.npz``        -- the vocabularies (one array per vocabulary field: the kept
  raw values in id order), when the training data had them.

This module imports only numpy and jax, so it can be copied next to a server
and used on its own::

    scorer = Scorer.load("/models/frappe_light")
    ctr = scorer.score(request_ids, candidate_ids)   # [F_request], [N, F_candidate] -> [N]
    ctr = scorer.score_raw({"user": 17, "daytime": 3, ...}, {"item": [5, 9, 12], ...})
    ctr = scorer.score_raw({"user": 17, ..., "history": [50, 181, 7]}, {"item": [5, 9], ...})

Ids are the per-field ids the training data used (the manifest lists the
fields in order); hashed feature crosses are computed inside the module. ``score_raw``
takes raw feature values by field name and maps them with the exported vocabularies
(a value training never kept is the out-of-vocabulary id 0; hashed fields are hashed
as in training, with ``rocket.ctr.features.hash_column``). A sequence field (``manifest
["sequences"]``, e.g. a user's past items) is the request columns ``name[0]``..``name[L-1]`` for
``score``, and one list of raw values, most recent first, for ``score_raw`` (cut to L, padded
with id 0, which the model masks).

What is checked, so that nothing is scored silently wrong:

* ``load`` verifies each file's sha256 against the manifest and the manifest's field
  layout against the digest stored with the parameters, refuses non-finite
  parameters, and runs a test score (which also compiles the usual candidate counts);
  a failure is an :class:`ExportError` that names the file.
* ``score`` takes integer ids only, of the documented shapes. An id at or above its
  field's vocabulary size is unknown: it is scored as the out-of-vocabulary id 0 (the
  row training used for values it never saw), or rejected with ``unknown_ids="reject"``.
  A negative id is always rejected. A rejected request raises :class:`RequestError`
  naming the field and the value. An empty candidate list returns an empty result.
* Candidate counts are padded up to a few compiled sizes (:data:`CANDIDATE_BUCKETS`), so
  after ``load`` no usual request pays a compile.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import warnings

import jax
import numpy as np

SCORER_FILE, PARAMS_FILE, MANIFEST_FILE = "scorer.jaxexport", "params.npz", "manifest.json"
VOCAB_FILE = "vocab.npz"
LAYOUT_KEY = "layout_sha256"
OOV_ID = 0
UNKNOWN_IDS = ("oov", "reject")
# Candidate counts are padded up to one of these (beyond the last: to a multiple of it).
CANDIDATE_BUCKETS = (8, 32, 128, 512, 2048)


class ExportError(ValueError):
  """An exported scorer that cannot be trusted or used; the message names the file."""


class RequestError(ValueError):
  """A request the scorer refuses; the message names the field and the value."""


def file_sha256(path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def layout_digest(manifest: dict) -> str:
  """sha256 of what the exported module assumes about its inputs: the fields in call order,
  their vocabularies, the crosses and the number of parameter leaves."""
  keys = ("request_fields", "candidate_fields", "vocab_sizes", "crosses", "num_leaves")
  return hashlib.sha256(json.dumps({k: manifest.get(k) for k in keys}, sort_keys=True)
                        .encode()).hexdigest()


def padded_count(n: int) -> int:
  for b in CANDIDATE_BUCKETS:
    if n <= b:
      return b
  last = CANDIDATE_BUCKETS[-1]
  return -(-n // last) * last


class Scorer:
  """A reloaded light net: ``score(request_ids [F_r], candidate_ids [N, F_c]) -> ctr [N]``."""

  def __init__(self, exported, leaves, manifest: dict, unknown_ids: str = "oov"):
    if unknown_ids not in UNKNOWN_IDS:
      raise ValueError(f"unknown_ids must be one of {UNKNOWN_IDS}, got {unknown_ids!r}")
    self.exported = exported
    self.leaves = [jax.device_put(x) for x in leaves]
    self.manifest = manifest
    self.vocabularies: dict[str, np.ndarray] = {}  # vocab.npz, when exported with encoders
    self._sorted_vocab: dict[str, tuple] = {}  # field -> (values sorted, their ids), for lookups
    self.unknown_ids = unknown_ids
    self.request_fields = manifest["request_fields"]
    self.candidate_fields = manifest["candidate_fields"]
    vocab = manifest["vocab_sizes"]
    self._request_vocab = np.array([vocab[f] for f in self.request_fields], np.int64)
    self._candidate_vocab = np.array([vocab[f] for f in self.candidate_fields], np.int64)

  @classmethod
  def load(cls, path, unknown_ids: str = "oov", warm=(8, 32, 128)) -> "Scorer":
    """Loads and verifies an export (see the module docstring); compiles the candidate
    counts of ``warm`` (padded) with a test score."""
    path = pathlib.Path(path)
    missing = [f for f in (SCORER_FILE, PARAMS_FILE, MANIFEST_FILE) if not (path / f).is_file()]
    if missing:
      raise FileNotFoundError(f"{path} is not a complete exported scorer (missing {missing}); "
                              "write one with `python -m rocket.ctr.export`")
    redo = "re-export it with `python -m rocket.ctr.export`"
    try:
      manifest = json.loads((path / MANIFEST_FILE).read_text())
      for k in ("request_fields", "candidate_fields", "vocab_sizes", "num_leaves"):
        manifest[k]  # noqa: B018 -- presence check
    except (ValueError, KeyError, TypeError) as e:
      raise ExportError(f"{path / MANIFEST_FILE} is not a scorer manifest ({type(e).__name__}: "
                        f"{e}); {redo}") from None
    digests = manifest.get("sha256")
    if digests is None:
      warnings.warn(f"{path} was exported before exports carried checksums: its files cannot be "
                    f"verified; {redo}", stacklevel=2)
    else:
      for name in (SCORER_FILE, PARAMS_FILE) + ((VOCAB_FILE,) if "encoders" in manifest else ()):
        if not (path / name).is_file() or file_sha256(path / name) != digests.get(name):
          raise ExportError(f"{path / name} does not match the sha256 in {MANIFEST_FILE}: the file "
                            f"changed after export; {redo}")
    try:
      exported = jax.export.deserialize(bytearray((path / SCORER_FILE).read_bytes()))
      with np.load(path / PARAMS_FILE) as z:
        leaves = [z[f"leaf_{i}"] for i in range(manifest["num_leaves"])]
        stored_layout = bytes(z[LAYOUT_KEY]).decode() if LAYOUT_KEY in z.files else None
    except Exception as e:  # noqa: BLE001 -- any unreadable file gets the same advice
      raise ExportError(f"cannot read the scorer in {path} ({type(e).__name__}: {e}); {redo}") from None
    if stored_layout is not None and stored_layout != layout_digest(manifest):
      raise ExportError(f"{path / MANIFEST_FILE} does not describe the exported module (its fields, "
                        f"their order or vocabularies changed after export); {redo}")
    for i, x in enumerate(leaves):
      if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ExportError(f"{path / PARAMS_FILE}: parameter leaf_{i} holds NaN or inf; {redo}")
    scorer = cls(exported, leaves, manifest, unknown_ids)
    if "encoders" in manifest:
      with np.load(path / VOCAB_FILE) as z:
        scorer.vocabularies = {name: z[name] for name in z.files}
      # rocket.ctr.features.Vocab's lookup, kept here: this module runs without the rocket package
      for name, vocab in scorer.vocabularies.items():
        order = np.argsort(vocab, kind="stable")
        scorer._sorted_vocab[name] = (vocab[order], order + 1)
    request = np.zeros(len(scorer.request_fields), np.int32)
    for n in warm:
      p = scorer.score(request, np.zeros((n, len(scorer.candidate_fields)), np.int32))
      if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ExportError(f"{path}: a test score of out-of-vocabulary ids gave {p[:3]}..., not "
                          f"probabilities; {redo}")
    return scorer

  def _ids(self, ids, what: str, fields, vocab, shape, shape_text: str) -> np.ndarray:
    a = np.asarray(ids)
    if a.dtype.kind not in "iu":
      raise RequestError(f"{what} must hold integer ids, got dtype {a.dtype} (ids are per-field "
                         f"integers in [0, vocabulary size), {OOV_ID} = out of vocabulary)")
    if a.shape != shape:
      raise RequestError(f"{what} must have shape {shape_text} (fields {fields}), got {a.shape}")
    if a.size == 0:
      return a.astype(np.int32)
    if a.dtype == np.uint64:  # beyond int64: out of every vocabulary anyway
      a = np.minimum(a, np.iinfo(np.int64).max)
    a64 = a.astype(np.int64)  # no int32 wrap-around before the range checks
    over = a64 >= vocab
    for bad, why in ((a64 < 0, "a negative id"),
                     (over if self.unknown_ids == "reject" else None, "an id outside its vocabulary")):
      if bad is not None and bad.any():
        col = int(np.argwhere(bad)[0][-1])
        raise RequestError(f"{what}: field {fields[col]!r} has {why}: {int(a64[bad][0])} "
                           f"(vocabulary [0, {int(vocab[col])}), {OOV_ID} = out of vocabulary)")
    return np.where(over, OOV_ID, a64).astype(np.int32)

  def score(self, request_ids, candidate_ids) -> np.ndarray:
    """p(click) of each candidate for one request (see the module docstring for the checks)."""
    nr, nc = len(self.request_fields), len(self.candidate_fields)
    r = self._ids(request_ids, "request_ids", self.request_fields, self._request_vocab, (nr,),
                  f"[{nr}]")
    c = np.asarray(candidate_ids)
    shape = (c.shape[0] if c.ndim == 2 else -1, nc)
    c = self._ids(c, "candidate_ids", self.candidate_fields, self._candidate_vocab, shape,
                  f"[N, {nc}]")
    n = c.shape[0]
    if n == 0:
      return np.zeros(0, np.float32)
    padded = np.zeros((padded_count(n), c.shape[1]), np.int32)
    padded[:n] = c
    return np.asarray(self.score_async(r, padded))[:n]

  def encode(self, field: str, values) -> np.ndarray:
    """Ids of raw ``values`` of ``field`` (the training vocabulary's; unknown values: OOV 0, or a
    :class:`RequestError` with ``unknown_ids="reject"``)."""
    enc = (self.manifest.get("encoders") or {}).get(field)
    if enc is None:
      raise RequestError(f"this export has no encoder for field {field!r} (exported without its "
                         f"vocabularies, or not a field: {list(self.manifest['vocab_sizes'])}); "
                         f"score ids with score()")
    values = np.asarray(values)
    if enc["kind"] == "hash":
      from rocket.ctr.features import hash_column  # noqa: PLC0415 -- numpy only

      return hash_column(values, enc["buckets"], enc["salt"]).astype(np.int32)
    keys, ids = self._sorted_vocab[field]
    pos = np.clip(np.searchsorted(keys, values), 0, max(len(keys) - 1, 0))
    found = (keys[pos] == values) if len(keys) else np.zeros(values.shape, bool)
    if self.unknown_ids == "reject" and not np.all(found):
      bad = values[~found].ravel()[0].item()
      raise RequestError(f"field {field!r}: value {bad!r} is not in the training vocabulary "
                         f"(Scorer.load(..., unknown_ids='oov') scores it as out of vocabulary)")
    return np.where(found, ids[pos] if len(keys) else OOV_ID, OOV_ID).astype(np.int32)

  def score_raw(self, request: dict, candidates: dict) -> np.ndarray:
    """p(click) of each candidate from raw feature values: ``request`` maps each request field
    to one value (a sequence: a list of values, most recent first; absent = empty), ``candidates``
    each candidate field to N values (see :meth:`encode`)."""
    request, encoded = dict(request), {}  # encoded: the sequences' columns, as ids
    for seq in self.manifest.get("sequences", ()):  # one list of raw values -> L id columns
      values = list(request.pop(seq["name"], ()))[:seq["length"]]
      ids = self.encode(seq["field"], np.asarray(values)) if values else np.zeros(0, np.int32)
      ids = np.concatenate([ids, np.zeros(seq["length"] - len(ids), np.int32)])
      encoded.update({f"{seq['name']}[{i}]": v for i, v in enumerate(ids)})
    request_fields = [f for f in self.request_fields if f not in encoded]
    for what, given, want in (("request", request, request_fields),
                              ("candidates", candidates, self.candidate_fields)):
      if set(given) != set(want):
        raise RequestError(f"{what} must give exactly the fields {want}; missing "
                           f"{sorted(set(want) - set(given))}, unknown {sorted(set(given) - set(want))}")
    r = np.array([encoded[f] if f in encoded else self.encode(f, np.asarray([request[f]]))[0]
                  for f in self.request_fields], np.int32)
    cols = [self.encode(f, np.asarray(candidates[f]).reshape(-1)) for f in self.candidate_fields]
    if len({len(c) for c in cols}) > 1:
      raise RequestError(f"candidates: every field needs the same number of values, got "
                         f"{ {f: len(c) for f, c in zip(self.candidate_fields, cols)} }")
    c = np.stack(cols, axis=1) if cols else np.zeros((0, 0), np.int32)
    return self.score(r, c)

  def score_async(self, request_ids, candidate_ids):
    """The module's raw call: no checks, no padding, returns without waiting (for benchmarks)."""
    return self.exported.call(*self.leaves, request_ids, candidate_ids)

  @property
  def num_bytes(self) -> int:
    return int(sum(x.size * x.dtype.itemsize for x in self.leaves))
