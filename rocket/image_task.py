"""The image task: CIFAR-10/100, SVHN or synthetic images, WRN light/booster nets
(:mod:`rocket.models.rocket`), augmentation and normalisation on the device, top-1 accuracy and
cross-entropy per net.  Everything image-specific the trainer needs, behind :class:`rocket.tasks.Task`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rocket import input_pipeline, losses, methods, tasks
from rocket.data import Dataset, load_dataset
from rocket.data.loaders import data_depends_on_seed
from rocket.models.rocket import RocketNet, check_share_name, check_sharing, light_spec
from rocket.models.wrn import WRNSpec, check_init
from rocket.train import DTYPES, TrainState

# Random-crop padding: zeros, numpy "reflect" (edge pixel not repeated) or numpy "symmetric"
# (edge repeated: cv2.BORDER_REFLECT, the official code's).
PAD_MODES = ("constant", "reflect", "symmetric")


def wrn_specs(config) -> dict[str, WRNSpec]:
  """The WRN of each net an image config trains (under ``share=bottom`` the light net is the
  booster's first two groups, :func:`rocket.models.rocket.light_spec`)."""
  method = methods.get_method(config.method)
  booster = WRNSpec(config.booster.depth, config.booster.width)
  specs = {"light": light_spec(config.share, WRNSpec(config.light.depth, config.light.width), booster),
           "booster": booster}
  return {n: specs[n] for n in method.nets}


def build_model(config, num_classes: int) -> RocketNet:
  """The WRN light/booster model of an image config (CTR: :func:`rocket.ctr.task.build_ctr_model`)."""
  specs = wrn_specs(config)
  return RocketNet(light=specs.get("light"), booster=specs.get("booster"), share=config.share,
                   num_classes=num_classes, bn_momentum=config.bn_momentum,
                   dtype=DTYPES[config.compute_dtype], init_scheme=config.get("init", "he_fan_out"))


class ImageTask(tasks.Task):
  name = "image"
  cpu_hint = ("For a CPU-sized run (minutes) use --config=configs/cifar10.py:cpu; the full "
              "schedule is for a GPU.")

  def validate(self, config):
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
    specs = wrn_specs(config)
    if len(method.nets) == 2:
      check_sharing(specs["light"], specs["booster"], config.share)
    if method.at and specs["light"].num_groups != 3:
      raise ValueError(f"method {config.method!r} transfers attention at the three WRN groups, but "
                       f"share='bottom' trains a two-group light net; use share='interval' or 'none' "
                       f"(the paper has no AT row for bottom)")
    if config.pad_mode not in PAD_MODES:
      raise ValueError(f"config.pad_mode must be one of {PAD_MODES}, got {config.pad_mode!r}")
    check_init(config.get("init", "he_fan_out"))
    if config.get("select", {}).get("detach_booster_after", 0):
      raise ValueError("config.select.detach_booster_after is for CTR runs (a shared embedding); "
                       "image nets share convolutions, whose booster gradient it does not cut")

  def load(self, config):
    return load_dataset(config)

  def describe(self, ds, config=None):
    return (f"{ds.description}: {len(ds.train_labels)} train / {len(ds.test_labels)} test images")

  def train_arrays(self, ds):
    return ds.train_images, ds.train_labels

  def input_spec(self, ds):
    return tuple(ds.image_shape), jnp.float32

  def build_model(self, config, ds):
    return build_model(config, ds.num_classes)

  def arch(self, config, ds):
    method = methods.get_method(config.method)
    arch = {"method": config.method, "num_classes": ds.num_classes,
            "image_shape": list(ds.image_shape)}
    for n, spec in wrn_specs(config).items():
      arch[n] = spec.name
    if len(method.nets) == 2:
      arch["share"] = config.share
    return arch

  def prepare_fn(self, config, ds):
    return image_prepare(config, ds.mean, ds.std)

  def make_evaluator(self, config, model, ds, sharding):
    replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    step = jax.jit(make_eval_step(config, model, ds.mean, ds.std), out_shardings=replicated)
    bs = tasks.eval_batch_size(config, sharding)
    return lambda state: evaluate_test_set(step, state, ds, bs, sharding)

  def data_depends_on_seed(self, config):
    return data_depends_on_seed(config)

  def device_evaluator(self, config, model, ds):
    """``(test_arrays, sums_fn, to_record)``: ``sums_fn(state, *test_arrays)`` evaluates the whole
    test set inside a jitted program (a ``lax.scan`` over :func:`device_test_set`'s batches), and
    ``to_record`` turns its sums into the ``test/*`` entries :meth:`make_evaluator` gives."""
    step = make_eval_step(config, model, ds.mean, ds.std)

    def sums_fn(state, images, labels, weights):
      def body(acc, batch):
        return jax.tree.map(jnp.add, acc, step(state, *batch)), None

      zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                          jax.eval_shape(step, state, images[0], labels[0], weights[0]))
      # XLA:CPU runs convolutions inside a loop ~40x slower: unrolled there (rocket.stacked)
      return jax.lax.scan(body, zero, (images, labels, weights),
                          unroll=jax.default_backend() == "cpu")[0]

    return device_test_set(ds, config.eval_batch_size), sums_fn, test_record

  def headline(self, record):
    return "  ".join(f"{k.split('/')[1]}={v:.4f}" for k, v in record.items()
                     if k.startswith("test/") and k.endswith("accuracy"))


def image_prepare(config, mean, std) -> Callable:
  """``(key, images_u8, train) -> normalised images``; crop+flip when training."""
  dtype = DTYPES[config.compute_dtype]
  do_augment, pad_mode, flip = config.augment, config.pad_mode, config.get("augment_flip", True)

  def prepare(key, images, train):
    x = images
    if train and do_augment:
      x = input_pipeline.augment(key, x, pad=4, pad_mode=pad_mode, flip=flip)
    return input_pipeline.normalize(x, mean, std, dtype)

  return prepare


def make_eval_step(config, model: RocketNet, mean, std) -> Callable:
  """``(state, images_u8, labels, weights) -> sums``: correct counts and CE sums."""
  method = methods.get_method(config.method)
  dtype = DTYPES[config.compute_dtype]

  def eval_step(state: TrainState, images, labels, weights):
    x = input_pipeline.normalize(images, mean, std, dtype)
    out = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
    sums = {"count": jnp.sum(weights)}
    for n in method.nets:
      logits = out["logits"][n].astype(jnp.float32)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      sums[f"{n}_correct"] = losses.accuracy_count(logits, labels, weights)
      sums[f"{n}_loss"] = jnp.sum(ce * weights)
    return sums

  return eval_step


def evaluate_test_set(eval_step, state, ds: Dataset, batch_size: int, sharding) -> dict[str, float]:
  total = None
  for x, y, w in input_pipeline.eval_batches(ds.test_images, ds.test_labels, batch_size, sharding):
    sums = eval_step(state, x, y, w)
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  return test_record(total)


def test_record(sums) -> dict[str, float]:
  """``test/<net>_accuracy`` and ``test/<net>_loss`` from an eval step's summed counts."""
  sums = dict(jax.device_get(sums))
  count = float(sums.pop("count"))
  out = {}
  for k, v in sums.items():
    net, what = k.split("_")
    out[f"test/{net}_{'accuracy' if what == 'correct' else 'loss'}"] = float(v) / count
  return out


def device_test_set(ds: Dataset, batch_size: int):
  """The test set as ``[num_batches, batch_size, ...]`` arrays ``(images, labels, weights)``,
  the last batch padded with weight 0 (for evaluation inside one jitted program)."""
  n = len(ds.test_labels)
  nb = -(-n // batch_size)
  pad = nb * batch_size - n
  x = np.concatenate([ds.test_images, np.zeros((pad, *ds.test_images.shape[1:]), ds.test_images.dtype)])
  y = np.concatenate([ds.test_labels, np.zeros(pad, ds.test_labels.dtype)])
  w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  return (x.reshape(nb, batch_size, *x.shape[1:]), y.reshape(nb, batch_size),
          w.reshape(nb, batch_size))
