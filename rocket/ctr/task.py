"""The CTR task: Frappe, MovieLens, Criteo, Avazu or a synthetic click model; a light and a
booster CTR net over a shared embedding layer (:mod:`rocket.ctr.models`); AUC, GAUC and logloss per
net on the validation and test splits.  Everything CTR-specific the trainer needs, behind
:class:`rocket.tasks.Task`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rocket import input_pipeline, methods, tasks
from rocket.config_util import ConfigError

# Leaves of an embedding table (``embedding``, its int8 ``q`` and ``scale``, under the shared table
# ``fields`` or a ``field_<f>`` module) that may be row-sharded over the mesh's ``model`` axis.
TABLE_LEAVES = ("embedding", "q", "scale")
# The parameter layout of the embeddings (rocket.ctr.embeddings): checkpoints of an older one (one
# table per field, no such key) are refused with this line instead of failing to restore.
EMBEDDING_LAYOUT = "plain fields in one table"


class CTRTask(tasks.Task):
  name = "ctr"

  def validate(self, config):
    from rocket.ctr.models import CTR_SHARE_SCHEMES, NetSpec  # noqa: PLC0415

    method = methods.get_method(config.method)
    if method.at:
      raise ValueError(f"method {config.method!r} uses attention transfer, which needs feature maps; "
                       "CTR runs support light, booster, rocket, rocket_kd and kd")
    for net in method.nets + (("booster",) if method.needs_teacher else ()):
      try:
        NetSpec.from_config(config[net])
      except ValueError as e:
        raise ValueError(f"config.{net}: {e}") from None
    din = [n for n in method.nets if config[n].get("kind") == "din"]
    if din and not config.features.get("history", 0):
      raise ValueError(f"config.{din[0]}.kind='din' attends over a behaviour sequence: set "
                       f"--config.features.history=L (MovieLens: each user's L most recent earlier "
                       f"items), or choose another kind")
    if config.embedding.get("l2", 0.0) < 0:
      raise ValueError(f"config.embedding.l2 must be >= 0 (an L2 penalty), got {config.embedding.l2}")
    if config.get("select", {}).get("detach_booster_after", 0) and config.share != "embedding":
      raise ValueError(f"config.select.detach_booster_after cuts the booster's gradient into the "
                       f"shared embedding: it needs share='embedding', got {config.share!r}")
    if config.share not in CTR_SHARE_SCHEMES:
      raise ValueError(f"config.share for CTR models must be one of {CTR_SHARE_SCHEMES}, "
                       f"got {config.share!r}")

  def load(self, config):
    from rocket.ctr import embeddings  # noqa: PLC0415
    from rocket.ctr.loaders import load_ctr_dataset  # noqa: PLC0415
    from rocket.ctr.features import parse_crosses  # noqa: PLC0415

    ds = load_ctr_dataset(config)
    names = [f.name for f in ds.fields]
    try:
      parse_crosses(config.features.get("crosses", ""), names)
    except ValueError as e:  # an unknown field name in the crosses
      raise ConfigError(f"config.features.crosses: {e}") from None
    columns = ds.columns
    for split in (ds.train, ds.valid, ds.test):
      if split is not None:
        embeddings.check_ids(np.asarray(split.ids[:100_000]), [c.vocab_size for c in columns],
                             [c.name for c in columns])
    return ds

  def describe(self, ds, config=None):
    n_valid = 0 if ds.valid is None else len(ds.valid.labels)
    crosses = "" if config is None else cross_report(config, ds)
    return (f"{ds.description or ds.name}: {len(ds.train.labels)} train / {n_valid} valid / "
            f"{len(ds.test.labels)} test rows, {len(ds.fields)} fields"
            + "".join(f" + sequence {s.name} ({s.length} x {s.field})" for s in ds.sequences) + ", "
            f"positive rate {ds.positive_rate:.3f}" + (f"; {crosses}" if crosses else ""))

  def train_arrays(self, ds):
    return ds.train.ids, ds.train.labels

  def input_spec(self, ds):
    return (len(ds.columns),), jnp.int32

  def build_model(self, config, ds):
    return build_ctr_model(config, ds)

  def arch(self, config, ds):
    method = methods.get_method(config.method)
    arch = {"method": config.method, "task": "ctr", "dataset": config.dataset,
            "vocab_sizes": [int(f.vocab_size) for f in ds.fields],
            "crosses": config.features.get("crosses", ""),
            "cross_buckets": _as_json(cross_buckets(config, ds)),
            **({"sequences": [[s.name, s.field, s.length] for s in ds.sequences]}
               if ds.sequences else {}),
            # regularisation (embedding.l2, <net>.dropout) changes no parameter: not part of it
            "embedding": {k: v for k, v in config.embedding.to_dict().items() if k != "l2"},
            "embedding_layout": EMBEDDING_LAYOUT,
            **({"row_multiple": row_multiple(config)} if row_multiple(config) > 1 else {})}
    for n in method.nets:  # (batch_norm listed when on: runs from before it existed still match)
      arch[n] = {k: v for k, v in config[n].to_dict().items()
                 if k != "dropout" and not (k == "batch_norm" and not v)}
    if len(method.nets) == 2:
      arch["share"] = config.share
    return arch

  def prepare_fn(self, config, ds):
    return lambda key, ids, train: ids

  def make_evaluator(self, config, model, ds, sharding):
    from rocket.ctr import metrics  # noqa: PLC0415

    nets = model.nets

    replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())

    @functools.partial(jax.jit, out_shardings=replicated)  # every process gets all logits
    def logits_step(state, ids):
      out = model.apply({"params": state.params, "batch_stats": state.batch_stats}, ids, train=False)
      return {n: out["logits"][n].astype(jnp.float32) for n in nets}

    splits = {"test": ds.test}
    if ds.valid is not None:
      splits = {"valid": ds.valid, "test": ds.test}
    bs = tasks.eval_batch_size(config, sharding)

    def evaluate(state):
      out = {}
      for split_name, split in splits.items():
        chunks = {n: [] for n in nets}
        for ids, _, _ in input_pipeline.eval_batches(split.ids, split.labels, bs, sharding):
          z = jax.device_get(logits_step(state, ids))
          for n in nets:
            chunks[n].append(np.asarray(z[n]))
        labels = np.asarray(split.labels, np.float32)
        for n in nets:  # only the last batch is padded: its padding sits at the very end
          z = np.concatenate(chunks[n])[:len(labels)]
          m = metrics.ctr_metrics(labels, z, np.asarray(split.users))
          for k in ("auc", "gauc", "logloss"):
            out[f"{split_name}/{n}_{k}"] = float(m[k])
      return out

    return evaluate

  def headline(self, record):
    return "  ".join(f"{k.split('/')[1]}={v:.4f}" for k, v in record.items()
                     if k.startswith("test/") and k.endswith(("auc", "gauc")))

  def row_sharded(self, keys, leaf):
    """Embedding tables (a ``TABLE_LEAVES`` leaf of the shared table or of a ``field_<f>`` module)
    split by rows."""
    from rocket.ctr.embeddings import SHARED  # noqa: PLC0415

    del leaf
    return bool(keys) and keys[-1] in TABLE_LEAVES and any(
        isinstance(k, str) and (k == SHARED or k.startswith("field_")) for k in keys)

  def sizes(self, params):
    """Bytes each net needs at serving time, and the bytes of the embedding tables it reads."""
    from rocket.ctr.embeddings import embedding_bytes  # noqa: PLC0415

    out = {}
    for net in ("light", "booster"):
      if net not in params:
        continue
      emb = params["shared"]["embedding"] if "shared" in params else params[net]["embedding"]
      own = {k: v for k, v in params[net].items() if k != "embedding"}
      out[f"{net}_embedding_bytes"] = embedding_bytes(emb)
      out[f"{net}_bytes"] = embedding_bytes(emb) + embedding_bytes(own)
    return out


STATS_ROWS = 2_000_000  # cross sizes and collisions are counted on at most this many train rows


def _as_json(buckets):
  return buckets if isinstance(buckets, int) else list(buckets)


def cross_fields(config, ds) -> tuple[tuple[int, ...], ...]:
  """The crosses of ``features.crosses`` as tuples of field indices."""
  from rocket.ctr.features import parse_crosses  # noqa: PLC0415

  names = [f.name for f in ds.fields]
  return tuple(tuple(names.index(f) for f in c)
               for c in parse_crosses(config.features.get("crosses", ""), names))


def cross_buckets(config, ds=None):
  """Rows of each hashed cross's table: ``features.cross_buckets`` (the model's default when
  unset) for every cross, or, when it is 0, one count per cross from the training data: its
  distinct training values over ``features.cross_load`` (an int when all are configured, else a
  tuple)."""
  from rocket.ctr.models import CTRRocketNet  # noqa: PLC0415

  n = int(config.features.get("cross_buckets", CTRRocketNet.cross_buckets))
  if n > 0:
    return n
  if n < 0 or ds is None or config.features.get("cross_load", 0.25) <= 0:
    raise ConfigError(f"config.features.cross_buckets must be > 0, or 0 (sized from the data with "
                      f"config.features.cross_load > 0), got {n}")
  load = float(config.features.cross_load)
  return tuple(max(16, int(np.ceil(len(cross_values(ds, c)[0]) / load)))
               for c in cross_fields(config, ds))


def cross_values(ds, cross: tuple[int, ...]):
  """``(values, first)``: the distinct training values of a cross (rows of its fields' ids, on at
  most ``STATS_ROWS`` train rows) and the index of a row holding each. Kept on ``ds``: the model,
  its checkpoint fingerprint and the run's first line all ask."""
  cache = ds.__dict__.setdefault("_cross_values", {})
  if cross not in cache:
    ids = np.asarray(ds.train.ids[:STATS_ROWS])
    cache[cross] = np.unique(ids[:, list(cross)], axis=0, return_index=True)
  return cache[cross]


def cross_report(config, ds) -> str:
  """One line per cross: distinct training values, buckets, and the share of those values that
  share a bucket with another (hash collisions), counted on the training rows."""
  from rocket.ctr.models import crossed_ids  # noqa: PLC0415

  crosses = cross_fields(config, ds)
  if not crosses:
    return ""
  sizes = cross_buckets(config, ds)
  sizes = (sizes,) * len(crosses) if isinstance(sizes, int) else sizes
  ids = np.asarray(ds.train.ids[:STATS_ROWS])
  names = [f.name for f in ds.fields]
  parts = []
  for k, (c, b) in enumerate(zip(crosses, sizes)):
    values, first = cross_values(ds, c)
    hashed = crossed_ids(ids[first], crosses, sizes, xp=np)[:, k]  # the model's hash of each value
    _, counts = np.unique(hashed, return_counts=True)
    shared = float(counts[counts > 1].sum()) / len(values)
    parts.append(f"{'*'.join(names[f] for f in c)}: {len(values):,} distinct in {b:,} buckets, "
                 f"{100 * shared:.1f}% share one")
  return "crosses (train rows): " + "; ".join(parts)


def row_multiple(config) -> int:
  """What the shared embedding table's rows are padded to a multiple of: ``config.mesh.model``
  when it names a size > 1 (the table is row-sharded over that axis), else 1.  From the config
  alone, so that an export or a resume on other devices builds the same parameters; with
  ``mesh.model=-1`` the table is split only where its rows happen to divide."""
  model = int(config.get("mesh", {}).get("model", 1))
  return model if model > 1 else 1


def build_ctr_model(config, ds):
  """The :class:`rocket.ctr.models.CTRRocketNet` a CTR config describes."""
  import ml_collections  # noqa: PLC0415

  from rocket.ctr.models import CTRRocketNet, NetSpec  # noqa: PLC0415

  method = methods.get_method(config.method)
  crosses = cross_fields(config, ds)
  names = [f.name for f in ds.fields]
  sequences = tuple((names.index(s.field), s.length) for s in ds.sequences)
  spec = lambda n: NetSpec.from_config(config[n]) if n in method.nets else None  # noqa: E731
  emb_cfg = config.embedding.to_dict()
  if row_multiple(config) > 1:  # embeddings.BUILD_FIELDS: layout from the mesh, not config.embedding
    emb_cfg["row_multiple"] = row_multiple(config)
  return CTRRocketNet(light=spec("light"), booster=spec("booster"),
                      base_vocab_sizes=tuple(int(f.vocab_size) for f in ds.fields),
                      emb_cfg=ml_collections.FrozenConfigDict(emb_cfg), share=config.share,
                      crosses=crosses, cross_buckets=cross_buckets(config, ds), sequences=sequences)

