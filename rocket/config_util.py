"""Config files outside the command line: for notebooks, tests, benchmarks and sweeps.

    from rocket.config_util import load_config
    config = load_config("configs/cifar10.py:cpu", method="rocket", **{"hint.weight": 0.5})

The spec is what ``--config`` takes (``path[:arg]``, the argument going to ``get_config``);
the path is tried as given and then against the repository root, so a notebook or test finds
``configs/...`` from any working directory. Keyword overrides use dotted keys, like
``--config.hint.weight=0.5``; a field the config does not have is a :class:`ConfigError`.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any, Mapping

from ml_collections import ConfigDict

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
  """A config that cannot run; the message names the field and what to do.

  The command-line tools print it as one line and exit with status 2; any other exception is
  a bug and keeps its traceback.
  """


def core_config() -> ConfigDict:
  """The fields every task reads -- what trains, the objective, the optimiser, devices and
  bookkeeping -- with the image side's defaults (``configs/cifar10.py``; the CTR base,
  ``rocket/ctr/config.py``, changes some). A config file starts from it and adds its task's
  fields, so a shared field is defined, commented and defaulted here only."""
  c = ConfigDict()
  # What to train.
  c.method = "rocket"  # light | booster | rocket | rocket_kd | kd | at | at_kd
  c.hint = ConfigDict(dict(
      kind="mse_logits",  # mse_logits | kd_kl | l2_softmax
      weight=0.03,  # lambda
      temperature=1.0,  # only for kd_kl
      warmup_epochs=0.0,  # >0: lambda ramps up linearly from 0 over these epochs
  ))
  c.kd = ConfigDict(dict(alpha=0.9, temperature=4.0))  # kd, at_kd, rocket_kd
  c.at = ConfigDict(dict(beta=1e3))  # at, at_kd
  # Scales of the KD/AT terms: modern (Hinton's a*T^2*KL, beta/2) | paper (the official code's
  # 2a*T^2/C*KL, beta, and a full CE(light) in rocket_kd). The hint is the paper's in both.
  c.loss_convention = "modern"
  c.teacher_workdir = ""  # kd/at/at_kd/rocket_kd: a finished booster run to use as teacher;
  # "" = train one in <workdir>/teacher first (reused on rerun)
  c.gradient_block = "on"  # on | off | strict (see rocket/methods.py)
  c.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)

  # Optimisation.
  c.num_epochs = 200
  c.num_train_steps = 0  # >0 overrides num_epochs
  c.batch_size = 128  # global batch, split over all devices
  c.eval_batch_size = 500
  c.optim = ConfigDict(dict(
      name="sgd",  # sgd | adam | adagrad
      lr=0.1,
      momentum=0.9,
      nesterov=True,
      weight_decay=5e-4,  # L2 added to the gradient, as PyTorch's SGD does
      schedule="step",  # step | cosine | constant
      lr_boundaries=(0.3, 0.6, 0.8),  # fractions of training (epochs 60/120/160 of 200)
      lr_decay=0.2,  # step schedule factor
      reset_momentum=False,  # step schedule: restart the momentum at each drop (official code)
      warmup_epochs=0.0,
      grad_clip_norm=0.0,  # >0: clip by global norm
      booster_lr_scale=1.0,  # multiplies the updates of the booster's own parameters (not shared)
  ))
  c.seed = 0
  # Model selection: the evaluation with the best `metric` (an evaluation key; "{net}" = the served
  # net: light, or booster when it trains alone) has its checkpoint kept in <workdir>/best/ and is
  # what final.json reports; "" = the last evaluation. patience > 0: stop after that many
  # evaluations without improvement (early stopping). reduce_after > 0: reduce on plateau, the
  # learning rate is multiplied by reduce_factor after that many evaluations without a better
  # metric (counted again from each reduction); the step's LR (train/lr) shows it.
  # detach_booster_after > 0 (rocket with shared layers, CTR): after that many evaluations without
  # a better booster metric, the booster's gradient no longer reaches the shared layers (the light
  # net alone trains them; the booster's own layers go on learning); train/booster_grad shows it.
  c.select = ConfigDict(dict(metric="", mode="max", patience=0, reduce_after=0, reduce_factor=0.1,
                             detach_booster_after=0))

  # Devices: the global batch is split over `data`; CTR embedding tables are row-sharded over
  # `model` (when their row count divides). -1 = all remaining devices. See README "Running on
  # many devices".
  c.mesh = ConfigDict(dict(data=-1, model=1))

  # Bookkeeping (BOOKKEEPING_FIELDS: never changes what trains).
  c.eval_every_epochs = 1.0
  c.eval_every_steps = 0  # >0 overrides eval_every_epochs
  c.log_every_steps = 50
  c.checkpoint_every_steps = 0  # >0: also checkpoint between evaluations
  c.max_checkpoints = 2
  c.progress_bar = True
  c.tensorboard = True  # also write TensorBoard event files (<workdir>/tensorboard/)
  return c


# Fields that change how a run is shown, logged, evaluated or saved, never what it trains.
BOOKKEEPING_FIELDS = frozenset({"progress_bar", "tensorboard", "log_every_steps", "max_checkpoints",
                                "checkpoint_every_steps", "eval_every_epochs", "eval_every_steps",
                                "eval_batch_size"})


def resolve(path: str | pathlib.Path) -> pathlib.Path:
  """``path`` if it exists, else ``REPO_ROOT / path``; FileNotFoundError naming what exists."""
  p = pathlib.Path(path).expanduser()
  for candidate in (p, REPO_ROOT / p):
    if candidate.is_file():
      return candidate
  have = sorted(str(f.relative_to(REPO_ROOT)) for f in (REPO_ROOT / "configs").glob("*.py")
                if not f.name.startswith("_"))
  raise FileNotFoundError(f"config file {str(path)!r} not found (nor under {REPO_ROOT}); "
                          f"config files here: {', '.join(have) or 'none'}")


def load_config(spec: str, **overrides: Any) -> ConfigDict:
  """``get_config(arg)`` of the config file in ``spec`` (``path[:arg]``), with dotted overrides.

  A field the config lacks is a ValueError; so is a file without ``get_config``.
  """
  path, colon, arg = str(spec).partition(":")
  file = resolve(path)
  module_spec = importlib.util.spec_from_file_location(f"rocket_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{file} has no get_config(); is it a config file?")
  config = module.get_config(arg) if colon else module.get_config()
  set_overrides(config, overrides)
  return config


def set_overrides(config: ConfigDict, overrides: Mapping[str, Any]) -> ConfigDict:
  """Sets dotted-key ``overrides`` on ``config`` in place (ml_collections'
  ``update_from_flattened_dict`` on the locked config) and returns it; an unknown field or a value
  of the wrong type is a :class:`ConfigError` (with ml_collections' "did you mean")."""
  was_locked = config.is_locked
  config.lock()
  try:
    config.update_from_flattened_dict(dict(overrides))
  except (KeyError, AttributeError, TypeError) as e:
    message = str(e.args[0] if e.args else e).strip("'\"").replace("\\n", " ").replace("\n", " ")
    head, _, rest = message.partition(" Other fields present:")  # a dump of the whole config
    hint = rest[rest.find("Did you mean"):] if "Did you mean" in rest else ""
    if isinstance(e, TypeError):
      raise ConfigError(f"override: {head}") from None
    raise ConfigError(f"override: no such config field ({head}){' ' + hint if hint else ''}") from None
  finally:
    if not was_locked:
      config.unlock()
  return config


def apply_overrides(base: ConfigDict, overrides: Mapping[str, Any]) -> ConfigDict:
  """A copy of ``base`` with dotted-key ``overrides``; ``base`` is left as it was."""
  return set_overrides(ConfigDict(base.to_dict()), overrides)
