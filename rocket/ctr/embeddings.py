"""Compressed per-field embedding tables of CTR models (Flax linen).

:class:`FieldEmbeddings` maps ids ``[B, F]`` (int32; column ``f`` an id in
``[0, vocab_sizes[f])``, 0 the OOV id) to ``[B, F, D]`` float32.  Three composable
compression axes are chosen by the ``config.embedding`` sub-config
(:func:`default_embedding_config`):

Rows (``rows``, ``buckets``), for a field whose vocabulary exceeds ``buckets``
(a field that fits keeps its full table):

* ``"full"``: one row per id.
* ``"hash"``: ``buckets`` rows; the id goes through a deterministic uint32 mix
  (:func:`hash_rows`, the murmur3 finaliser) and is taken modulo ``buckets``.
* ``"qr"``: quotient-remainder embeddings (Shi et al., KDD 2020,
  "Compositional Embeddings Using Complementary Partitions"): a remainder table
  ``[buckets, d]`` indexed by ``id % buckets`` and a quotient table
  ``[ceil(vocab / buckets), d]`` indexed by ``id // buckets``, combined by
  elementwise product (the paper's "mult" operation, the only one offered).
  Every id gets a distinct pair of rows.  The quotient table starts near 1
  (``1 + N(0, init_std)``) so that the product starts at the scale of a plain table.

Columns (``dims``, ``rank``):

* ``dims``: ``""`` gives every field width ``dim``; a comma list gives one width
  per field; ``"auto"`` gives mixed dimensions
  ``d_f = clip(round(dim * (vocab_f / max_f vocab_f) ** 0.25), min(2, dim), dim)``
  (the largest vocabulary gets ``dim``, one 10^4 times smaller gets ``dim / 10``).
  A field with ``d_f != dim`` is followed by its own linear projection
  ``d_f -> dim`` without bias (``field_{f}/proj``, float32).
* ``rank > 0``: a table ``[rows, width]`` is stored as the product of factors
  ``[rows, rank] @ [rank, width]`` wherever that has fewer parameters
  (``rank * (rows + width) < rows * width``); the row-indexed factor keeps the
  name ``embedding``, the small one is ``factor``.

Precision (``dtype``, ``qat``, ``int8``):

* ``dtype``: storage dtype of the tables and low-rank factors (float32,
  float16 or bfloat16, the ``param_dtype`` of those params); looked-up rows are
  upcast to float32 before any arithmetic.  Projections stay float32.
* ``qat``: int8 quantisation-aware training.  Looked-up rows of every table
  (the row-indexed factor, for a low-rank table) are fake-quantised to int8
  with a per-row symmetric scale ``max|row| / 127`` and a straight-through
  estimator ``x + stop_gradient(q(x) - x)``: the forward pass sees what the
  int8 export will serve, the backward pass is the float one.
* ``int8``: set only for a model that serves the output of post-training
  quantisation (:func:`quantize_int8`), not a training option: every
  ``embedding`` param is replaced by int8 ``q`` ``[rows, k]`` and float32
  ``scale`` ``[rows, 1]``, dequantised on lookup (``q * scale``).

Parameter layout.  The *plain* fields (:func:`is_plain`: one table of rows
``full`` or ``hash``, width ``dim``, no low-rank factor, no projection) share
one table, ``fields/embedding`` ``[sum of their rows, dim]``: plain field
``f``'s rows are ``[offset_f, offset_f + rows_f)``, the plain fields in field
order (:meth:`FieldEmbeddings.offsets`), and its id (hashed first, for a
``hash`` field) is looked up at ``id + offset_f``.  One gather, one
scatter-add and one optimizer update serve them all.  Every other field (qr,
a projected width, low rank) keeps its own submodule ``field_{f}`` (tables
``table``, or ``rem`` and ``quo``; ``proj``).  Int8 turns ``fields/embedding``
into ``fields/q`` and ``fields/scale`` like any other table.  With
``row_multiple`` > 1 the shared table ends in zero rows up to a multiple of it
(at most ``row_multiple - 1``, never looked up), so that it splits evenly over a
mesh's ``model`` axis; the other rows are drawn as without them.

Ids out of range are not checked inside the module (a jitted gather clamps
them); the host-side :func:`check_ids` raises on them and the model calls it
on its input data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

ROW_MODES = ("full", "hash", "qr")
STORAGE_DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
CONFIG_FIELDS = ("dim", "rows", "buckets", "dims", "rank", "dtype", "qat", "int8")
BUILD_FIELDS = ("row_multiple",)  # layout that the model builder adds from other config (the mesh)
AUTO_DIM_POWER = 0.25
AUTO_MIN_DIM = 2
INT8_MAX = 127
SHARED = "fields"  # the submodule holding the plain fields' shared table


def default_embedding_config() -> ml_collections.ConfigDict:
  """The ``config.embedding`` sub-config with its defaults (no compression)."""
  c = ml_collections.ConfigDict()
  c.dim = 16            # common output width D
  c.rows = "full"       # "full" | "hash" | "qr"
  c.buckets = 100_000   # rows of a hashed table / of a QR remainder table
  c.dims = ""           # "" (all `dim`) | "auto" | comma list of per-field widths
  c.rank = 0            # low-rank factorisation of the tables (0 = off)
  c.dtype = "float32"   # table storage: "float32" | "float16" | "bfloat16"
  c.qat = False         # int8 quantisation-aware training (fake-quant + STE)
  c.int8 = False        # int8 tables; set by post-training quantisation only
  c.l2 = 0.0            # L2 penalty on the rows a batch looks up (l2 * mean_b sum e^2); not layout
  return c


# ----------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True)
class TableSpec:
  """One row-indexed table ``[rows, width]`` (low-rank when ``rank > 0``)."""

  name: str
  rows: int
  width: int
  rank: int = 0
  init_mean: float = 0.0
  pad: int = 0  # of the rows, the last `pad` are padding: zero, never looked up


@dataclasses.dataclass(frozen=True)
class FieldTables:
  """The tables of one field: ``mode`` is the row scheme actually used."""

  vocab: int
  mode: str
  dim: int
  tables: tuple[TableSpec, ...]
  project: bool

  @property
  def rows(self) -> int:
    return sum(t.rows for t in self.tables)


def field_dims(dims: str, dim: int, vocab_sizes: Sequence[int]) -> tuple[int, ...]:
  """Per-field widths from the ``dims`` option (see the module docstring)."""
  n = len(vocab_sizes)
  spec = str(dims).strip()
  if spec == "":
    return (dim,) * n
  if spec == "auto":
    top = max(vocab_sizes)
    lo = min(AUTO_MIN_DIM, dim)
    return tuple(int(np.clip(round(dim * (v / top) ** AUTO_DIM_POWER), lo, dim)) for v in vocab_sizes)
  try:
    out = tuple(int(p) for p in spec.split(","))
  except ValueError:
    raise ValueError(f"embedding.dims must be '', 'auto' or a comma list of ints, got {dims!r}") from None
  if len(out) != n or min(out) < 1:
    raise ValueError(f"embedding.dims={dims!r} must list {n} positive widths, one per field")
  return out


def _table(name, rows, width, rank, init_mean=0.0) -> TableSpec:
  low_rank = 0 < rank and rank * (rows + width) < rows * width
  return TableSpec(name, rows, width, rank if low_rank else 0, init_mean)


def plan_fields(vocab_sizes: Sequence[int], dim: int = 16, rows: str = "full", buckets: int = 100_000,
                dims: str = "", rank: int = 0) -> tuple[FieldTables, ...]:
  """The table layout of every field; validates the options."""
  if not vocab_sizes or min(vocab_sizes) < 1:
    raise ValueError(f"vocab_sizes must be non-empty and positive, got {tuple(vocab_sizes)}")
  if dim < 1:
    raise ValueError(f"embedding.dim must be positive, got {dim}")
  if rows not in ROW_MODES:
    raise ValueError(f"unknown embedding.rows {rows!r}; choose one of {ROW_MODES}")
  if rows != "full" and buckets < 1:
    raise ValueError(f"embedding.buckets must be positive for rows={rows!r}, got {buckets}")
  if rank < 0:
    raise ValueError(f"embedding.rank must be >= 0, got {rank}")
  out = []
  for v, d in zip(vocab_sizes, field_dims(dims, dim, vocab_sizes), strict=True):
    mode = rows if rows != "full" and v > buckets else "full"
    if mode == "full":
      tables = (_table("table", v, d, rank),)
    elif mode == "hash":
      tables = (_table("table", buckets, d, rank),)
    else:
      tables = (_table("rem", buckets, d, rank), _table("quo", -(-v // buckets), d, rank, 1.0))
    out.append(FieldTables(int(v), mode, d, tables, d != dim))
  return tuple(out)


def is_plain(spec: FieldTables) -> bool:
  """Whether a field lives in the shared table: one table (``full`` or ``hash``), no factor,
  no projection."""
  t = spec.tables[0]
  return spec.mode in ("full", "hash") and not spec.project and t.rank == 0 and t.init_mean == 0


# ----------------------------------------------------------------------------- helpers


def hash_rows(ids, buckets: int):
  """Deterministic hash of non-negative ids into ``[0, buckets)`` (int32).

  The murmur3 32-bit finaliser (xor-shift / multiply rounds on uint32, which
  wrap modulo 2^32), then modulo ``buckets``.
  """
  h = jnp.asarray(ids).astype(jnp.uint32)
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  h = h ^ (h >> 16)
  return (h % jnp.uint32(buckets)).astype(jnp.int32)


def quantize_rows(x):
  """Symmetric per-row int8: ``(q int8, scale float32 [..., 1])`` with ``scale = max|row| / 127``.

  ``q * scale`` is within ``scale / 2`` of ``x`` elementwise; an all-zero row has scale 0.
  """
  x = jnp.asarray(x).astype(jnp.float32)
  scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True) / INT8_MAX
  safe = jnp.where(scale > 0, scale, 1.0)
  q = jnp.clip(jnp.round(x / safe), -INT8_MAX, INT8_MAX).astype(jnp.int8)
  return q, scale


def dequantize_rows(q, scale):
  return q.astype(jnp.float32) * scale


def fake_quant_int8(x):
  """Per-row int8 fake quantisation with a straight-through gradient."""
  q, scale = quantize_rows(x)
  return x + jax.lax.stop_gradient(dequantize_rows(q, scale) - x)


def check_ids(ids, vocab_sizes: Sequence[int], names: Sequence[str] | None = None) -> None:
  """Raises ``ValueError`` unless ``ids[..., f]`` are integers in ``[0, vocab_sizes[f])`` (numpy, host)."""
  ids = np.asarray(ids)
  n = len(vocab_sizes)
  if ids.ndim < 1 or ids.shape[-1] != n:
    raise ValueError(f"ids must have shape [..., {n}] (one column per field), got {ids.shape}")
  if not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
  flat = ids.reshape(-1, n)
  vocab = np.asarray(vocab_sizes, dtype=np.int64)
  bad = (flat < 0) | (flat >= vocab)
  if bad.any():
    f = int(np.flatnonzero(bad.any(axis=0))[0])
    wrong = flat[bad[:, f], f]
    label = f"field {f}" + (f" ({names[f]})" if names is not None else "")
    raise ValueError(f"{label}: ids must lie in [0, {vocab[f]}); {wrong.size} out of range "
                     f"(min {wrong.min()}, max {wrong.max()})")


def _normal(mean: float, std: float, pad: int = 0):
  """``mean + std * N(0, 1)``, and ``pad`` zero rows at the end (the draw does not depend on them)."""
  def init(key, shape, dtype):
    x = mean + std * jax.random.normal(key, (shape[0] - pad, *shape[1:]), jnp.float32)
    return jnp.pad(x, ((0, pad),) + ((0, 0),) * (len(shape) - 1)).astype(dtype)
  return init


# ----------------------------------------------------------------------------- modules


class Table(nn.Module):
  """One table: ``idx [...] -> [..., width]`` float32 (see the module docstring)."""

  spec: TableSpec
  param_dtype: Any = jnp.float32
  init_std: float = 0.01
  qat: bool = False
  int8: bool = False

  @nn.compact
  def __call__(self, idx):
    t = self.spec
    k = t.rank or t.width
    if t.rank and t.init_mean:   # factors whose product starts near `init_mean`
      mean_a = mean_b = math.sqrt(t.init_mean / t.rank)
      std_a = std_b = self.init_std
    else:
      mean_a, std_a, mean_b, std_b = t.init_mean, self.init_std, 0.0, 1.0 / math.sqrt(max(t.rank, 1))
    if self.int8:
      q = self.param("q", nn.initializers.zeros_init(), (t.rows, k), jnp.int8)
      scale = self.param("scale", nn.initializers.zeros_init(), (t.rows, 1), jnp.float32)
      x = dequantize_rows(q[idx], scale[idx])
    else:
      table = self.param("embedding", _normal(mean_a, std_a, t.pad), (t.rows, k), self.param_dtype)
      x = table[idx].astype(jnp.float32)
      if self.qat:
        x = fake_quant_int8(x)
    if t.rank:
      factor = self.param("factor", _normal(mean_b, std_b), (t.rank, t.width), self.param_dtype)
      x = x @ factor.astype(jnp.float32)
    return x


class FieldEmbedding(nn.Module):
  """The tables (and projection) of one field: ``ids [...] -> [..., out_dim]`` float32."""

  spec: FieldTables
  out_dim: int
  param_dtype: Any = jnp.float32
  init_std: float = 0.01
  qat: bool = False
  int8: bool = False

  @nn.compact
  def __call__(self, ids):
    s = self.spec
    table = lambda t: Table(t, self.param_dtype, self.init_std, self.qat, self.int8, name=t.name)  # noqa: E731
    if s.mode == "full":
      x = table(s.tables[0])(ids)
    elif s.mode == "hash":
      x = table(s.tables[0])(hash_rows(ids, s.tables[0].rows))
    else:
      b = s.tables[0].rows
      x = table(s.tables[0])(ids % b) * table(s.tables[1])(ids // b)
    if s.project:
      x = nn.Dense(self.out_dim, use_bias=False, dtype=jnp.float32, param_dtype=jnp.float32, name="proj")(x)
    return x


class FieldEmbeddings(nn.Module):
  """Per-field compressed embeddings: ``ids [B, F]`` int -> ``[B, F, dim]`` float32.

  The attributes other than ``vocab_sizes`` and ``init_std`` are the fields of
  :func:`default_embedding_config`; build from a config with :meth:`from_config`.
  Parameters: the plain fields' shared table ``fields`` and the other fields'
  ``field_{f}`` (see the module docstring).
  """

  vocab_sizes: tuple[int, ...]
  dim: int = 16
  rows: str = "full"
  buckets: int = 100_000
  dims: str = ""
  rank: int = 0
  dtype: str = "float32"
  qat: bool = False
  int8: bool = False
  init_std: float = 0.01
  # The shared table's rows are padded with zero rows up to a multiple of this (the mesh's model
  # axis, so that the table splits evenly over it; see rocket.ctr.task.row_multiple).
  row_multiple: int = 1

  @classmethod
  def from_config(cls, cfg, vocab_sizes: Sequence[int], **kwargs) -> FieldEmbeddings:
    """From an ``embedding`` ConfigDict (or mapping); missing fields take their defaults.

    ``kwargs`` go to the constructor (``name``, ``init_std``, ``row_multiple``, or overrides).
    """
    values = dict(cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else cfg)
    values.pop("l2", None)  # a training penalty (CTRRocketNet applies it), not the layout
    unknown = sorted(set(values) - set(CONFIG_FIELDS) - set(BUILD_FIELDS))
    if unknown:
      raise ValueError(f"unknown embedding config fields {unknown}; known: {CONFIG_FIELDS}")
    values.update(kwargs)
    return cls(vocab_sizes=tuple(int(v) for v in vocab_sizes), **values)

  def plan(self) -> tuple[FieldTables, ...]:
    """The table layout (validates the options)."""
    if self.dtype not in STORAGE_DTYPES:
      raise ValueError(f"unknown embedding.dtype {self.dtype!r}; choose one of {tuple(STORAGE_DTYPES)}")
    return plan_fields(tuple(self.vocab_sizes), self.dim, self.rows, self.buckets, self.dims, self.rank)

  def offsets(self) -> tuple[int | None, ...]:
    """Each field's first row in the shared table ``fields``; None for a field with its own tables."""
    out, row = [], 0
    for s in self.plan():
      out.append(row if is_plain(s) else None)
      row += s.rows if is_plain(s) else 0
    return tuple(out)

  def field_table(self, params, f: int):
    """Field ``f``'s float table ``[rows, width]`` in this module's ``params``: its rows of the
    shared table, or its own ``table`` (a low-rank field's row-indexed factor; not for qr)."""
    off = self.offsets()[f]
    if off is None:
      return params[f"field_{f}"]["table"]["embedding"]
    return params[SHARED]["embedding"][off:off + self.plan()[f].rows]

  @nn.compact
  def __call__(self, ids, sequences=()):
    """``[..., F, dim]``; with ``sequences`` (pairs ``(f, ids [..., L])`` of ids of field f, e.g.
    a user's past items), also a tuple of their ``[..., L, dim]`` rows from field f's tables."""
    specs, offsets = self.plan(), self.offsets()
    ids = jnp.asarray(ids)
    if ids.ndim < 1 or ids.shape[-1] != len(specs):
      raise ValueError(f"ids must have shape [..., {len(specs)}], got {ids.shape}")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(jnp.int32)
    dtype = STORAGE_DTYPES[self.dtype]
    plain = [f for f, off in enumerate(offsets) if off is not None]
    own = {f: FieldEmbedding(specs[f], self.dim, dtype, self.init_std, self.qat, self.int8, name=f"field_{f}")
           for f, off in enumerate(offsets) if off is None}
    if plain:
      rows = sum(specs[f].rows for f in plain)
      pad = -rows % max(self.row_multiple, 1)
      shared = Table(TableSpec(SHARED, rows + pad, self.dim, pad=pad), dtype, self.init_std,
                     self.qat, self.int8, name=SHARED)

    def shared_rows(fs, x):  # ids x [..., len(fs)] of plain fields fs (or [..., L] of one) -> rows
      hashed = np.asarray([specs[f].mode == "hash" for f in fs])
      if hashed.any():
        x = jnp.where(hashed, hash_rows(x, self.buckets), x)
      return x + np.asarray([offsets[f] for f in fs], np.int32)

    if not own:
      out = shared(shared_rows(plain, ids))
    else:
      cols = {f: m(ids[..., f]) for f, m in own.items()}
      if plain:
        x = shared(shared_rows(plain, ids[..., np.asarray(plain)]))
        cols.update({f: x[..., k, :] for k, f in enumerate(plain)})
      out = jnp.stack([cols[f] for f in range(len(specs))], axis=-2)
    if not sequences:
      return out
    seqs = []
    for f, seq in sequences:
      seq = jnp.asarray(seq).astype(jnp.int32)
      seqs.append(own[f](seq) if f in own else shared(shared_rows([f], seq)))
    return out, tuple(seqs)


# ----------------------------------------------------------------------------- export / accounting


def quantize_int8(emb_params):
  """Post-training int8: every ``embedding`` param becomes int8 ``q`` and float32 ``scale``.

  Takes the param subtree of a :class:`FieldEmbeddings` (e.g.
  ``params["embeddings"]`` of a bigger model) and returns a new nested dict of
  the layout that the same module built with ``int8=True`` consumes.  Other
  params (low-rank ``factor``, ``proj``) are kept as they are; an already
  converted tree comes back unchanged.
  """
  if not isinstance(emb_params, Mapping):
    return emb_params
  out = {}
  for key, value in emb_params.items():
    if key == "embedding" and not isinstance(value, Mapping):
      out["q"], out["scale"] = quantize_rows(value)
    else:
      out[key] = quantize_int8(value)
  return out


def embedding_bytes(emb_params) -> int:
  """Bytes of all leaves (arrays or ``ShapeDtypeStruct``) from their actual dtypes."""
  leaves = jax.tree_util.tree_leaves(emb_params)
  return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves))


def embedding_report(cfg, vocab_sizes: Sequence[int]) -> dict:
  """Sizes of the embeddings a config builds, from ``jax.eval_shape`` (nothing is run or allocated).

  Returns ``dict(rows, params, bytes, dims, field_rows, modes, full_params, full_bytes,
  compression)``: ``rows`` counts the rows of all tables (quotient tables
  included), ``params`` every scalar (tables, factors, projections, int8 scales),
  ``full_*`` the uncompressed float32 baseline ``sum(vocab) * dim`` and
  ``compression = full_bytes / bytes``.
  """
  module = FieldEmbeddings.from_config(cfg, vocab_sizes)
  specs = module.plan()
  ids = jax.ShapeDtypeStruct((1, len(specs)), jnp.int32)
  params = jax.eval_shape(module.init, jax.random.key(0), ids)["params"]
  n_bytes = embedding_bytes(params)
  full_params = sum(module.vocab_sizes) * module.dim
  return dict(
      rows=sum(s.rows for s in specs),
      params=int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(params))),
      bytes=n_bytes,
      dims=tuple(s.dim for s in specs),
      field_rows=tuple(s.rows for s in specs),
      modes=tuple(s.mode for s in specs),
      full_params=full_params,
      full_bytes=4 * full_params,
      compression=4 * full_params / n_bytes,
  )
