"""What differs between the image (WRN) and the CTR side; the train loop is shared.

``rocket.train.train_and_evaluate`` is written once.  A task tells it how to
load the data, build the model, prepare a batch inside the jitted step and
evaluate.  ``config.task`` picks one (``image`` when absent):

* ``image`` (:mod:`rocket.image_task`): CIFAR-10/100, SVHN or synthetic images, WRN nets;
* ``ctr`` (:mod:`rocket.ctr.task`): CTR datasets, embedding + MLP/FM nets.

This module is the core's side of that interface and imports neither: a task is found by name
(``TASKS``) and imported when a config asks for it, as big_vision finds its models.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import jax
import numpy as np

TASKS = {"image": "rocket.image_task:ImageTask", "ctr": "rocket.ctr.task:CTRTask"}


def task_name(config) -> str:
  name = config.get("task", "image")
  if name not in TASKS:
    raise ValueError(f"config.task must be one of {tuple(TASKS)}, got {name!r}")
  return name


def get_task(config) -> "Task":
  module, _, cls = TASKS[task_name(config)].partition(":")
  return getattr(importlib.import_module(module), cls)()


class Task:
  """Interface; see :class:`rocket.image_task.ImageTask` and :class:`rocket.ctr.task.CTRTask`."""

  name = ""
  # What to run instead when a config would take hours on a CPU.
  cpu_hint = "Use a GPU/TPU, or fewer steps (--config.num_train_steps)."

  def validate(self, config) -> None: ...
  def load(self, config) -> Any: ...
  def describe(self, data, config=None) -> str: ...
  def train_arrays(self, data) -> tuple[np.ndarray, np.ndarray]: ...
  def input_spec(self, data) -> tuple[tuple[int, ...], Any]: ...
  def build_model(self, config, data): ...
  def arch(self, config, data) -> dict: ...
  def prepare_fn(self, config, data) -> Callable: ...
  def make_evaluator(self, config, model, data, sharding) -> Callable: ...
  def headline(self, record: dict) -> str: ...

  def data_depends_on_seed(self, config) -> bool:
    """Whether runs that differ only in ``seed`` train on different data (then they cannot be
    stacked); default: no."""
    del config
    return False

  def device_evaluator(self, config, model, data):
    """``(test_arrays, sums_fn, to_record)`` for evaluation inside one jitted program (stacked
    runs, :mod:`rocket.stacked`); a task without one cannot be stacked."""
    raise NotImplementedError(f"the {self.name} task has no on-device evaluator")

  def row_sharded(self, keys: list, leaf) -> bool:
    """Whether a parameter (``keys``: its path) is row-sharded over the mesh's ``model`` axis
    (where its row count divides); default: every parameter is replicated."""
    del keys, leaf
    return False

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
