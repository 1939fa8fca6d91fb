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
