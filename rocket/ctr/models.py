"""CTR light and booster nets sharing one embedding layer (Rocket Launching, paper Sec. 4.3).

``CTRRocketNet`` is one pure Flax module: ids in, one logit per example and net out::

    out = model.apply({"params": params}, ids)          # ids: int32 [B, F]
    out["logits"]["light"], out["logits"]["booster"]    # float32 [B]

Inputs are the base fields' ids (column ``f`` in ``[0, vocab_sizes[f])``, 0 = OOV).
Hashed feature crosses (``crosses``: tuples of base-field indices) are computed
*inside* the model with :func:`rocket.ctr.hashing.cross_ids`, so an exported
light net crosses a user's features with each candidate ad's at serving time,
and host and device agree on the ids bit for bit.

Parameter tree:

* ``shared/embedding`` -- the embedding tables, when two nets share them
  (``share="embedding"``, the paper's choice);
* ``light`` / ``booster`` -- each net's own layers (and its own embedding
  tables under ``share="none"`` or when the model holds a single net).

Nets (``NetSpec``):

* ``lr``: logistic regression -- a learned scalar per feature (a 1-wide
  embedding lookup summed over fields) plus a bias;
* ``fm``: factorisation machine -- ``lr`` plus the pairwise interactions
  ``sum_{i<j} <e_i, e_j>`` of the (shared) embeddings;
* ``deepfm``: DeepFM (Guo et al., 2017) -- ``fm`` plus an MLP (``hidden``, ``dropout``) over the
  same concatenated embeddings, their logits summed;
* ``autoint``: AutoInt (Song et al., 2019) -- ``attention_layers`` of multi-head self-attention
  (``heads``) over the field embeddings, each with a residual projection and a ReLU, then a
  linear logit over the flattened result (plus an MLP beside it when ``hidden`` is set: AutoInt+);
* ``mlp``: concatenated embeddings -> ReLU MLP (``hidden``, with ``dropout`` after each hidden
  layer in training) -> logit; ``cross_layers > 0`` puts DCN-v2 cross layers (Wang et al., 2021)
  in parallel with the MLP: ``x_{l+1} = x_0 * (W x_l + b) + x_l``, and the logit reads both;
* ``finalmlp``: FinalMLP (Mao et al., AAAI 2023): two MLP streams (both ``hidden``) over the
  concatenated embeddings, each behind its own feature-selection gate ``2 * sigmoid(MLP(c))``
  (``c`` a learned context vector, the paper's default), fused by a multi-head bilinear layer
  (``heads`` heads over the last hidden width): ``sum_h w1.a_h + w2.b_h + a_h' W_h b_h + b``;
* ``din``: DIN (Zhou et al., KDD 2018; the nets of the Rocket Launching paper's Table 5): ``mlp``
  whose behaviour-sequence vector is attention-pooled with the candidate as the query (below).

Sequences (``sequences``: ``(field, length)`` pairs, :class:`rocket.ctr.features.SequenceSpec`):
the id columns after the base fields hold, per sequence, ``length`` ids of base field ``field``
(e.g. a user's past items), looked up in that field's table; id 0 (padding, or out of
vocabulary) is masked. Each sequence becomes one more field vector, which every kind reads like
the others (the FM interactions, the MLP, the attention tokens; ``lr`` its mean 1-wide weight):

* the masked mean of its rows, for every kind but ``din``;
* for ``din``, DIN's local activation unit: a score per past row from an MLP (80, 40 sigmoid
  units, as in DIN) over ``[q, k, q - k, q * k]``, ``q`` the candidate's embedding of ``field``,
  masked, divided by sqrt(D) and soft-maxed over the sequence (as DIN's official code does), and
  the weighted sum of the rows (zero when the sequence is empty).

``batch_norm`` puts a BatchNorm (batch statistics in training, running averages in evaluation
and serving) between each hidden Dense layer and its ReLU, in the ``mlp``, ``deepfm``, ``din``,
``finalmlp`` and AutoInt+ MLPs.

Regularisation: ``dropout`` per net (``config.light.dropout`` / ``config.booster.dropout``; the
model then sets ``uses_dropout`` and the train step passes a ``dropout`` rng), and an L2 penalty on
the embedding rows a batch looks up (``config.embedding.l2``: ``l2 * mean_b sum_{f,d} e^2``),
returned in training as ``out["penalties"]["emb_l2"]``, which the objective adds to the loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from rocket import losses
from rocket.ctr import hashing
from rocket.ctr.embeddings import FieldEmbeddings
from rocket.objective import NETS


NET_KINDS = ("lr", "fm", "deepfm", "autoint", "mlp", "din", "finalmlp")
DIN_ATTENTION = (80, 40)  # DIN's activation unit: hidden sigmoid layers
CTR_SHARE_SCHEMES = ("embedding", "none")
_WIDE = 2**31 - 1  # intermediate bucket count when crossing three or more fields


@dataclasses.dataclass(frozen=True)
class NetSpec:
  kind: str = "mlp"
  hidden: tuple[int, ...] = (64,)
  cross_layers: int = 0
  dropout: float = 0.0  # after each hidden layer, in training
  attention_layers: int = 0  # autoint: self-attention layers over the fields (0: 3)
  heads: int = 2  # autoint: attention heads per layer; finalmlp: bilinear fusion heads
  batch_norm: bool = False  # between each hidden Dense and its ReLU

  def __post_init__(self):
    if self.kind not in NET_KINDS:
      raise ValueError(f"net kind must be one of {NET_KINDS}, got {self.kind!r}")
    if any(h <= 0 for h in self.hidden) or self.cross_layers < 0:
      raise ValueError(f"hidden sizes must be > 0 and cross_layers >= 0, got {self}")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
    if self.kind in ("lr", "fm") and (self.cross_layers or self.hidden):
      object.__setattr__(self, "hidden", ())
      object.__setattr__(self, "cross_layers", 0)
    if self.kind == "autoint":
      if self.cross_layers or self.attention_layers < 0 or self.heads < 1:
        raise ValueError(f"autoint takes attention_layers >= 0 (0: 3), heads >= 1 and no "
                         f"cross_layers, got {self}")
      object.__setattr__(self, "attention_layers", self.attention_layers or 3)
    if self.kind == "finalmlp" and (self.cross_layers or not self.hidden or self.heads < 1
                                    or self.hidden[-1] % self.heads):
      raise ValueError(f"finalmlp takes hidden layers whose last width divides into heads >= 1, and "
                       f"no cross_layers, got {self}")
    if self.kind == "deepfm" and self.cross_layers:
      raise ValueError("deepfm has no cross layers (cross_layers=0); DCN-v2 is kind='mlp' with "
                       "cross_layers > 0")

  @classmethod
  def from_config(cls, c) -> "NetSpec":
    hidden = c.get("hidden", "")
    if isinstance(hidden, int):
      hidden = (hidden,)
    if isinstance(hidden, str):
      try:
        hidden = tuple(int(h) for h in hidden.replace(" ", "").split(",") if h)
      except ValueError:
        raise ValueError(f"hidden must be a comma list of layer widths like '256,128', "
                         f"got {hidden!r}") from None
    return cls(kind=c.get("kind", "mlp"), hidden=tuple(hidden), cross_layers=int(c.get("cross_layers", 0)),
               dropout=float(c.get("dropout", 0.0)),
               attention_layers=int(c.get("attention_layers", 0)), heads=int(c.get("heads", 2)),
               batch_norm=bool(c.get("batch_norm", False)))

  @property
  def name(self) -> str:
    if self.kind in ("lr", "fm"):
      return self.kind.upper()
    if self.kind == "autoint":
      s = f"AutoInt-{self.attention_layers}x{self.heads}h"
      s += ("+MLP-" + "x".join(map(str, self.hidden))) if self.hidden else ""
    else:
      prefix = {"deepfm": "DeepFM-", "din": "DIN-", "finalmlp": "FinalMLP-"}.get(self.kind, "MLP-")
      s = prefix + "x".join(map(str, self.hidden)) if self.hidden else prefix + "linear"
      s += f"+{self.heads}h" if self.kind == "finalmlp" else ""
      s += f"+DCNv2x{self.cross_layers}" if self.cross_layers else ""
    s += "+BN" if self.batch_norm and self.hidden else ""
    return s + (f"+dropout{self.dropout:g}" if self.dropout else "")


def crossed_ids(ids, crosses: tuple[tuple[int, ...], ...], buckets, xp=jnp):
  """Hashed cross ids ``[B, len(crosses)]`` of the base ids ``[B, F]`` (numpy or jax);
  ``buckets``: one row count for every cross, or one per cross."""
  sizes = (buckets,) * len(crosses) if isinstance(buckets, int) else tuple(buckets)
  cols = []
  for k, fields in enumerate(crosses):
    h = ids[:, fields[0]]
    for j, f in enumerate(fields[1:]):
      last = j == len(fields) - 2
      h = hashing.cross_ids(h, ids[:, f], sizes[k] if last else _WIDE, salt=k + 1, xp=xp)
    cols.append(h)
  return xp.stack(cols, axis=1).astype(xp.int32)


def masked_mean(x, mask):
  """``x [B, L, D]`` averaged over the positions where ``mask [B, L]`` is set (0 where none is)."""
  m = mask.astype(x.dtype)[..., None]
  return jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


class DINAttention(nn.Module):
  """DIN's local activation unit: ``query [B, D]``, ``keys [B, L, D]``, ``mask [B, L]`` ->
  the attention-weighted sum of the keys ``[B, D]`` (see the module docstring)."""

  hidden: tuple[int, ...] = DIN_ATTENTION

  @nn.compact
  def __call__(self, query, keys, mask):
    q = jnp.broadcast_to(query[:, None, :], keys.shape)
    h = jnp.concatenate([q, keys, q - keys, q * keys], axis=-1)
    for i, width in enumerate(self.hidden):
      h = nn.sigmoid(nn.Dense(width, name=f"dense{i}")(h))
    score = nn.Dense(1, name="score")(h)[..., 0] / jnp.sqrt(keys.shape[-1])
    w = nn.softmax(jnp.where(mask, score, -1e9), axis=-1) * mask
    return jnp.einsum("bl,bld->bd", w, keys)


class _Head(nn.Module):
  spec: NetSpec
  vocab_sizes: tuple[int, ...]  # all fields, crosses included (for the lr/fm linear part)
  emb_cfg: Any

  @nn.compact
  def __call__(self, ids, emb, seqs=(), train: bool = False):
    """``seqs``: per sequence ``(field, ids [B, L], rows [B, L, D])``."""
    s = self.spec
    if seqs:  # each sequence becomes one more field vector
      pooled = [DINAttention(name=f"din{i}")(emb[:, f], rows, sid > 0) if s.kind == "din"
                else masked_mean(rows, sid > 0) for i, (f, sid, rows) in enumerate(seqs)]
      emb = jnp.concatenate([emb, jnp.stack(pooled, axis=1)], axis=1)
    if s.kind in ("lr", "fm", "deepfm"):
      # One scalar per feature: the embedding's row scheme and storage, width 1.
      linear = FieldEmbeddings.from_config(self.emb_cfg, self.vocab_sizes, dim=1, dims="", rank=0,
                                           name="linear")
      w, w_seq = lookup(linear, ids, tuple((f, sid) for f, sid, _ in seqs))  # [B, F, 1], [B, L, 1]
      z = jnp.sum(w[..., 0], axis=-1) + self.param("bias", nn.initializers.zeros, ())
      for (_, sid, _), ws in zip(seqs, w_seq):
        z = z + masked_mean(ws, sid > 0)[:, 0]
      if s.kind != "lr":
        sq_sum = jnp.square(jnp.sum(emb, axis=1))
        sum_sq = jnp.sum(jnp.square(emb), axis=1)
        z = z + 0.5 * jnp.sum(sq_sum - sum_sq, axis=-1)
      if s.kind != "deepfm":
        return z
      return z + self._mlp(emb, train)
    if s.kind == "autoint":
      return self._autoint(emb, train)
    if s.kind == "finalmlp":
      return self._finalmlp(emb, train)
    return self._mlp(emb, train)

  def _hidden(self, h, train: bool, prefix: str = "dense"):
    """The hidden layers: Dense (-> BatchNorm) -> ReLU (-> dropout), widths ``spec.hidden``."""
    s = self.spec
    for i, width in enumerate(s.hidden):
      h = nn.Dense(width, name=f"{prefix}{i}")(h)
      if s.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"{prefix}{i}_bn")(h)
      h = nn.relu(h)
      if s.dropout:
        h = nn.Dropout(s.dropout, deterministic=not train)(h)
    return h

  def _finalmlp(self, emb, train: bool):
    s, x = self.spec, emb.reshape(emb.shape[0], -1)
    streams = []
    for k in (1, 2):  # feature selection: a gate per stream from a learned context vector
      ctx = self.param(f"gate{k}_context", nn.initializers.zeros, (x.shape[-1],))
      g = nn.relu(nn.Dense(x.shape[-1], name=f"gate{k}_dense0")(ctx))
      g = 2.0 * nn.sigmoid(nn.Dense(x.shape[-1], name=f"gate{k}_dense1")(g))
      streams.append(self._hidden(x * g, train, prefix=f"stream{k}_dense"))
    a, b = (t.reshape(t.shape[0], s.heads, -1) for t in streams)  # [B, H, d]
    d = a.shape[-1]
    w = self.param("bilinear", nn.initializers.lecun_normal(), (s.heads, d, d))
    z = jnp.einsum("bhd,hde,bhe->b", a, w, b)
    return z + nn.Dense(1, name="linear_a")(a.reshape(a.shape[0], -1))[:, 0] + \
        nn.Dense(1, name="linear_b")(b.reshape(b.shape[0], -1))[:, 0]

  def _autoint(self, emb, train: bool):
    s, x = self.spec, emb  # [B, F, D]
    d = emb.shape[-1]
    for i in range(s.attention_layers):
      width = d * s.heads  # each head attends in the embedding width
      q, k, v = (nn.Dense(width, use_bias=False, name=f"att{i}_{n}")(x).reshape(*x.shape[:2], s.heads, d)
                 for n in ("q", "k", "v"))
      w = nn.softmax(jnp.einsum("bfhd,bghd->bhfg", q, k) / jnp.sqrt(d), axis=-1)
      att = jnp.einsum("bhfg,bghd->bfhd", w, v).reshape(*x.shape[:2], width)
      x = nn.relu(att + nn.Dense(width, use_bias=False, name=f"att{i}_res")(x))
    z = nn.Dense(1, name="att_out")(x.reshape(x.shape[0], -1))[:, 0]
    return z + self._mlp(emb, train) if s.hidden else z

  def _mlp(self, emb, train: bool):
    s = self.spec
    x0 = emb.reshape(emb.shape[0], -1)
    parts = [self._hidden(x0, train)]
    if s.cross_layers:
      x = x0
      for i in range(s.cross_layers):
        x = x0 * nn.Dense(x0.shape[-1], name=f"cross{i}")(x) + x
      parts.append(x)
    return nn.Dense(1, name="out")(jnp.concatenate(parts, -1))[:, 0]


class _Net(nn.Module):
  spec: NetSpec
  vocab_sizes: tuple[int, ...]
  emb_cfg: Any
  own_embedding: bool

  def setup(self):
    if self.own_embedding:
      self.embedding = FieldEmbeddings.from_config(self.emb_cfg, self.vocab_sizes)
    self.head = _Head(self.spec, self.vocab_sizes, self.emb_cfg)

  def __call__(self, ids, seq_ids=(), emb=None, train: bool = False):
    """``(logit, the embeddings it looked up itself or None)``; ``emb``: ``(fields [B, F, D],
    sequences' rows)`` from the shared layer; ``seq_ids``: ``(field, ids [B, L])`` pairs."""
    own = lookup(self.embedding, ids, seq_ids) if self.own_embedding else None
    fields, rows = emb if own is None else own
    seqs = tuple((f, sid, r) for (f, sid), r in zip(seq_ids, rows))
    return self.head(ids, fields, seqs, train), own


def lookup(embedding, ids, seq_ids):
  """``(fields [B, F, D], (sequence rows [B, L, D], ...))`` from one :class:`FieldEmbeddings`."""
  return embedding(ids, seq_ids) if seq_ids else (embedding(ids), ())


class _SharedEmbedding(nn.Module):
  vocab_sizes: tuple[int, ...]
  emb_cfg: Any

  def setup(self):
    self.embedding = FieldEmbeddings.from_config(self.emb_cfg, self.vocab_sizes)

  def __call__(self, ids, seq_ids=()):
    return lookup(self.embedding, ids, seq_ids)


class CTRRocketNet(nn.Module):
  """Light + booster CTR nets over a shared embedding layer (see module docstring)."""

  light: Optional[NetSpec]
  booster: Optional[NetSpec]
  base_vocab_sizes: tuple[int, ...]
  emb_cfg: Any  # the config.embedding ConfigDict, frozen (ml_collections.FrozenConfigDict)
  share: str = "embedding"
  crosses: tuple[tuple[int, ...], ...] = ()
  cross_buckets: Any = 10_000  # rows of each cross's table: one int, or a tuple (one per cross)
  sequences: tuple[tuple[int, int], ...] = ()  # (base field, length): id columns after the fields

  @property
  def nets(self) -> tuple[str, ...]:
    return tuple(n for n in NETS if getattr(self, n) is not None)

  @property
  def vocab_sizes(self) -> tuple[int, ...]:
    b = self.cross_buckets
    return tuple(self.base_vocab_sizes) + ((b,) * len(self.crosses) if isinstance(b, int) else tuple(b))

  @property
  def uses_dropout(self) -> bool:
    """The train step passes a ``dropout`` rng when set."""
    return any(getattr(self, n).dropout for n in self.nets)

  @property
  def shares_embedding(self) -> bool:
    return self.share == "embedding" and len(self.nets) == 2

  def setup(self):
    if not self.nets:
      raise ValueError("CTRRocketNet needs at least one of light/booster.")
    if self.share not in CTR_SHARE_SCHEMES:
      raise ValueError(f"share for CTR models must be one of {CTR_SHARE_SCHEMES}, got {self.share!r}")
    if any(getattr(self, n).kind == "din" for n in self.nets) and not self.sequences:
      raise ValueError("a din net attends over a behaviour sequence, and the data has none "
                       "(MovieLens: --config.features.history=20)")
    if self.shares_embedding:
      self.shared = _SharedEmbedding(self.vocab_sizes, self.emb_cfg)
    self.towers = {n: _Net(getattr(self, n), self.vocab_sizes, self.emb_cfg, not self.shares_embedding,
                           name=n) for n in self.nets}

  def all_ids(self, ids):
    ids = ids.astype(jnp.int32)
    if not self.crosses:
      return ids
    return jnp.concatenate([ids, crossed_ids(ids, self.crosses, self.cross_buckets)], axis=1)

  def split_columns(self, ids):
    """``(base ids [B, F], ((field, sequence ids [B, L]), ...))`` of the input columns."""
    ids = ids.astype(jnp.int32)
    n = len(self.base_vocab_sizes)
    want = n + sum(length for _, length in self.sequences)
    if ids.shape[-1] != want:
      raise ValueError(f"ids must have {want} columns ({n} fields + the sequences {self.sequences}), "
                       f"got shape {ids.shape}")
    seqs, start = [], n
    for f, length in self.sequences:
      seqs.append((f, ids[:, start:start + length]))
      start += length
    return ids[:, :n], tuple(seqs)

  def __call__(self, ids, train: bool = False, only: Optional[str] = None, booster_grad=None):
    """``only="light"`` runs the light net alone (serving); the booster is not touched.

    ``booster_grad`` (a traced scalar, or None = 1): multiplies the gradient that the booster's
    loss sends into the shared embedding; the forward pass is unchanged.
    """
    ids, seq_ids = self.split_columns(ids)
    ids = self.all_ids(ids)
    nets = (only,) if only else self.nets
    emb = self.shared(ids, seq_ids) if self.shares_embedding else None
    logits, looked_up = {}, [] if emb is None else [emb]
    for n in nets:
      net_emb = emb
      if n == "booster" and emb is not None and booster_grad is not None:
        net_emb = jax.tree.map(lambda e: losses.scale_gradient(e, booster_grad), emb)
      logits[n], own = self.towers[n](ids, seq_ids, net_emb, train)
      looked_up += [] if own is None else [own]
    out = {"logits": logits, "features": {}}
    l2 = float(self.emb_cfg.get("l2", 0.0))
    if train and l2 > 0:  # on the rows this batch looked up only (a sequence's unmasked rows)
      sq = 0.0
      for fields, rows in looked_up:
        sq += jnp.sum(jnp.square(fields.astype(jnp.float32)))
        for (_, sid), r in zip(seq_ids, rows):
          sq += jnp.sum(jnp.square(r.astype(jnp.float32)) * (sid > 0)[..., None])
      out["penalties"] = {"emb_l2": l2 * sq / ids.shape[0]}
    return out
