"""What differs between the image (WRN) and the CTR side; the train loop is shared.

``rocket.train.train_and_evaluate`` is written once.  A task tells it how to
load the data, build the model, prepare a batch inside the jitted step and
evaluate.  ``config.task`` picks one (``image`` when absent):

* ``image``: CIFAR-10/100, SVHN or synthetic images; WRN light/booster
  (:mod:`rocket.models.rocket`); augmentation + normalisation on device;
  metrics: top-1 accuracy and cross-entropy per net.
* ``ctr``: Frappe, MovieLens, Criteo, Avazu or a synthetic click model; a
  light and a booster CTR net over a shared embedding layer
  (:mod:`rocket.ctr.models`); metrics: AUC, GAUC and logloss per net, on the
  validation and the test split.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from rocket import input_pipeline, methods
from rocket.config_util import ConfigError

TASKS = ("image", "ctr")
# Random-crop padding: zeros, numpy "reflect" (edge pixel not repeated) or numpy "symmetric"
# (edge repeated: cv2.BORDER_REFLECT, the official code's).
PAD_MODES = ("constant", "reflect", "symmetric")


def task_name(config) -> str:
  name = config.get("task", "image")
  if name not in TASKS:
    raise ValueError(f"config.task must be one of {TASKS}, got {name!r}")
  return name


def get_task(config) -> "Task":
  return {"image": ImageTask, "ctr": CTRTask}[task_name(config)]()


class Task:
  """Interface; see :class:`ImageTask` and :class:`CTRTask`."""

  name = ""

  def validate(self, config) -> None: ...
  def load(self, config) -> Any: ...
  def describe(self, data) -> str: ...
  def train_arrays(self, data) -> tuple[np.ndarray, np.ndarray]: ...
  def input_spec(self, data) -> tuple[tuple[int, ...], Any]: ...
  def build_model(self, config, data): ...
  def arch(self, config, data) -> dict: ...
  def prepare_fn(self, config, data) -> Callable: ...
  def make_evaluator(self, config, model, data, sharding) -> Callable: ...
  def headline(self, record: dict) -> str: ...

  def sizes(self, params) -> dict:
    """Extra size figures for final.json (bytes of what is served)."""
    del params
    return {}


def eval_batch_size(config, sharding) -> int:
  """``config.eval_batch_size`` rounded up to a multiple of the data axis and the process count
  (evaluation pads its last batch anyway, so any size works on any mesh)."""
  import math  # noqa: PLC0415

  m = math.lcm(sharding.mesh.shape["data"], jax.process_count())
  return -(-config.eval_batch_size // m) * m


# --------------------------------------------------------------------------- image


class ImageTask(Task):
  name = "image"

  def validate(self, config):
    from rocket import train  # noqa: PLC0415
    from rocket.models.rocket import check_share_name, check_sharing  # noqa: PLC0415
    from rocket.models.wrn import WRNSpec, check_init  # noqa: PLC0415

    method = methods.get_method(config.method)
    try:
      check_share_name(config.share)
    except ValueError as e:
      raise ValueError(f"config.share: {e}") from None
    for net in ("light", "booster"):
      try:
        WRNSpec(config[net].depth, config[net].width)
      except ValueError as e:
        raise ValueError(f"config.{net}: {e}") from None
    specs = train.wrn_specs(config)
    if len(method.nets) == 2:
      check_sharing(specs["light"], specs["booster"], config.share)
    if method.at and specs["light"].num_groups != 3:
      raise ValueError(f"method {config.method!r} transfers attention at the three WRN groups, but "
                       f"share='bottom' trains a two-group light net; use share='interval' or 'none' "
                       f"(the paper has no AT row for bottom)")
    if config.pad_mode not in PAD_MODES:
      raise ValueError(f"config.pad_mode must be one of {PAD_MODES}, got {config.pad_mode!r}")
    check_init(config.get("init", "he_fan_out"))

  def load(self, config):
    from rocket.data import load_dataset  # noqa: PLC0415

    return load_dataset(config)

  def describe(self, ds):
    return (f"{ds.description}: {len(ds.train_labels)} train / {len(ds.test_labels)} test images")

  def train_arrays(self, ds):
    return ds.train_images, ds.train_labels

  def input_spec(self, ds):
    return tuple(ds.image_shape), jnp.float32

  def build_model(self, config, ds):
    from rocket import train  # noqa: PLC0415

    return train.build_model(config, ds.num_classes)

  def arch(self, config, ds):
    from rocket import train  # noqa: PLC0415

    method = methods.get_method(config.method)
    arch = {"method": config.method, "num_classes": ds.num_classes,
            "image_shape": list(ds.image_shape)}
    for n, spec in train.wrn_specs(config).items():
      arch[n] = spec.name
    if len(method.nets) == 2:
      arch["share"] = config.share
    return arch

  def prepare_fn(self, config, ds):
    return image_prepare(config, ds.mean, ds.std)

  def make_evaluator(self, config, model, ds, sharding):
    from rocket import train  # noqa: PLC0415

    replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    step = jax.jit(train.make_eval_step(config, model, ds.mean, ds.std), out_shardings=replicated)
    bs = eval_batch_size(config, sharding)
    return lambda state: train.evaluate(step, state, ds, bs, sharding)

  def headline(self, record):
    return "  ".join(f"{k.split('/')[1]}={v:.4f}" for k, v in record.items()
                     if k.startswith("test/") and k.endswith("accuracy"))


def image_prepare(config, mean, std) -> Callable:
  """``(key, images_u8, train) -> normalised images``; crop+flip when training."""
  from rocket.train import DTYPES  # noqa: PLC0415

  dtype = DTYPES[config.compute_dtype]
  do_augment, pad_mode, flip = config.augment, config.pad_mode, config.get("augment_flip", True)

  def prepare(key, images, train):
    x = images
    if train and do_augment:
      x = input_pipeline.augment(key, x, pad=4, pad_mode=pad_mode, flip=flip)
    return input_pipeline.normalize(x, mean, std, dtype)

  return prepare


# --------------------------------------------------------------------------- CTR


class CTRTask(Task):
  name = "ctr"

  def validate(self, config):
    from rocket.ctr.models import SHARE_SCHEMES, NetSpec  # noqa: PLC0415

    method = methods.get_method(config.method)
    if method.at:
      raise ValueError(f"method {config.method!r} uses attention transfer, which needs feature maps; "
                       "CTR runs support light, booster, rocket, rocket_kd and kd")
    for net in method.nets + (("booster",) if method.needs_teacher else ()):
      try:
        NetSpec.from_config(config[net])
      except ValueError as e:
        raise ValueError(f"config.{net}: {e}") from None
    if config.share not in SHARE_SCHEMES:
      raise ValueError(f"config.share for CTR models must be one of {SHARE_SCHEMES}, got {config.share!r}")

  def load(self, config):
    from rocket.ctr import embeddings  # noqa: PLC0415
    from rocket.ctr.data import load_ctr_dataset  # noqa: PLC0415
    from rocket.ctr.features import parse_crosses  # noqa: PLC0415

    ds = load_ctr_dataset(config)
    names = [f.name for f in ds.fields]
    try:
      parse_crosses(config.features.get("crosses", ""), names)
    except ValueError as e:  # an unknown field name in the crosses
      raise ConfigError(f"config.features.crosses: {e}") from None
    sizes = [f.vocab_size for f in ds.fields]
    for split in (ds.train, ds.valid, ds.test):
      if split is not None:
        embeddings.check_ids(np.asarray(split.ids[:100_000]), sizes)
    return ds

  def describe(self, ds):
    n_valid = 0 if ds.valid is None else len(ds.valid.labels)
    return (f"{ds.description or ds.name}: {len(ds.train.labels)} train / {n_valid} valid / "
            f"{len(ds.test.labels)} test rows, {len(ds.fields)} fields, "
            f"positive rate {ds.positive_rate:.3f}")

  def train_arrays(self, ds):
    return ds.train.ids, ds.train.labels

  def input_spec(self, ds):
    return (len(ds.fields),), jnp.int32

  def build_model(self, config, ds):
    return build_ctr_model(config, ds)

  def arch(self, config, ds):
    method = methods.get_method(config.method)
    arch = {"method": config.method, "task": "ctr", "dataset": config.dataset,
            "vocab_sizes": [int(f.vocab_size) for f in ds.fields],
            "crosses": config.features.get("crosses", ""),
            "cross_buckets": int(config.features.get("cross_buckets", 0)),
            "embedding": config.embedding.to_dict()}
    for n in method.nets:
      arch[n] = config[n].to_dict()
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
    bs = eval_batch_size(config, sharding)

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


def build_ctr_model(config, ds):
  """The :class:`rocket.ctr.models.CTRRocketNet` a CTR config describes."""
  import ml_collections  # noqa: PLC0415

  from rocket.ctr.features import parse_crosses  # noqa: PLC0415
  from rocket.ctr.models import CTRRocketNet, NetSpec  # noqa: PLC0415

  method = methods.get_method(config.method)
  names = [f.name for f in ds.fields]
  crosses = tuple(tuple(names.index(f) for f in c)
                  for c in parse_crosses(config.features.get("crosses", ""), names))
  spec = lambda n: NetSpec.from_config(config[n]) if n in method.nets else None  # noqa: E731
  return CTRRocketNet(light=spec("light"), booster=spec("booster"),
                      base_vocab_sizes=tuple(int(f.vocab_size) for f in ds.fields),
                      emb_cfg=ml_collections.FrozenConfigDict(config.embedding), share=config.share,
                      crosses=crosses, cross_buckets=int(config.features.get("cross_buckets", 10_000)))

