"""Training and evaluation: one jitted, pure train step and the loop around it.

``train_and_evaluate(config, workdir)`` is the whole job; ``rocket.main`` is
its command-line front end.  Outputs in ``workdir``:

* ``config.json``   -- the config of the run (an earlier, different one is
  kept as ``config.<time>.json``);
* ``metrics.jsonl`` -- one JSON object per evaluation;
* ``checkpoints/``  -- Orbax checkpoints; rerunning the same command resumes
  from the latest one and continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import pathlib
import signal
import socket
import sys
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rocket import checkpoint as ckpt_lib
from rocket import input_pipeline, losses, methods, objective, tasks
from rocket.config_util import BOOKKEEPING_FIELDS, ConfigError
from rocket.metric_writers import MetricWriter
from rocket.objective import owner_tree

SCHEDULES = ("step", "cosine", "constant")
OPTIMIZERS = ("sgd", "adam", "adagrad")
_global_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class NonFiniteLossError(RuntimeError):
  """The loss became NaN/Inf; the message names the step and the loss terms."""


class Interrupted(RuntimeError):
  """SIGINT/SIGTERM arrived; a checkpoint was written before raising."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


# --------------------------------------------------------------------------- config


def validate_config(config) -> None:
  """Raises :class:`ConfigError` (a ``ValueError``) with a readable message for a bad config."""
  try:
    _validate(config)
  except ConfigError:
    raise
  except ValueError as e:  # the checks of the specs, methods and tasks
    raise ConfigError(str(e)) from None


def _validate(config) -> None:
  task = tasks.get_task(config)
  method = methods.get_method(config.method)
  task.validate(config)
  objective.Objective.from_config(config)  # the objective's fields, checked where they are read
  if config.optim.get("reset_momentum", False) and config.optim.schedule != "step":
    raise ValueError("config.optim.reset_momentum resets the momentum at the step schedule's LR "
                     "drops; set config.optim.schedule='step' or turn it off")
  if config.get("compute_dtype", "float32") not in DTYPES:
    raise ValueError(f"config.compute_dtype must be one of {tuple(DTYPES)}, got {config.compute_dtype!r}")
  if config.optim.schedule not in SCHEDULES:
    raise ValueError(f"config.optim.schedule must be one of {SCHEDULES}, got {config.optim.schedule!r}")
  if config.optim.get("name", "sgd") not in OPTIMIZERS:
    raise ValueError(f"config.optim.name must be one of {OPTIMIZERS}, got {config.optim.name!r}")
  if config.teacher_workdir and not method.needs_teacher:
    raise ValueError(f"config.teacher_workdir is set but method {config.method!r} uses no teacher")
  if config.num_train_steps < 0:
    raise ValueError(f"config.num_train_steps must be >= 0 (0: use config.num_epochs), got "
                     f"{config.num_train_steps}")
  if config.optim.lr <= 0:
    raise ValueError(f"config.optim.lr must be > 0, got {config.optim.lr}")
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    raise ValueError("set config.num_epochs or config.num_train_steps to a positive number")
  data, _ = mesh_shape(config)
  b = config.batch_size
  if b <= 0 or b % data or b % jax.process_count():
    raise ValueError(f"config.batch_size={b} must be a positive multiple of the mesh's data axis "
                     f"({data} devices) and of the number of processes ({jax.process_count()}): "
                     f"each takes an equal share of the global batch")
  sel = config.get("select")
  if sel is not None and (sel.mode not in ("max", "min") or sel.patience < 0):
    raise ValueError(f"config.select.mode must be 'max' or 'min' and config.select.patience >= 0, "
                     f"got {sel.mode!r}, {sel.patience}")
  if sel is not None and sel.patience and not sel.metric:
    raise ValueError("config.select.patience stops a run early by config.select.metric: set the "
                     "metric too (e.g. 'valid/{net}_auc')")
  if sel is not None and sel.get("reduce_after", 0) and (
      not sel.metric or sel.reduce_after < 0 or not 0 < sel.reduce_factor < 1):
    raise ValueError(f"config.select.reduce_after > 0 reduces the learning rate when "
                     f"config.select.metric stops improving: it needs the metric and "
                     f"0 < config.select.reduce_factor < 1, got metric {sel.metric!r}, "
                     f"reduce_after {sel.reduce_after}, reduce_factor {sel.reduce_factor}")
  detach = sel.get("detach_booster_after", 0) if sel is not None else 0
  if detach and (detach < 0 or "{net}" not in sel.metric
                 or set(methods.get_method(config.method).nets) != {"light", "booster"}):
    raise ValueError(f"config.select.detach_booster_after > 0 cuts the booster's gradient into the "
                     f"shared layers when its own metric stops improving: it needs a method that "
                     f"trains both nets (rocket, rocket_kd) and a metric with '{{net}}' (e.g. "
                     f"'valid/{{net}}_auc'), got {detach}, method {config.method!r}, metric "
                     f"{sel.metric!r}")
  if config.eval_batch_size <= 0:  # rounded up to a multiple of the data axis (evaluation pads)
    raise ValueError(f"config.eval_batch_size must be positive, got {config.eval_batch_size}")


def arch_fingerprint(config, data) -> dict[str, Any]:
  """What a checkpoint must agree on to be resumed."""
  return tasks.get_task(config).arch(config, data)


@dataclasses.dataclass(frozen=True)
class RunSetup:
  """What a run of a config trains on its data, before any state exists: the one place where the
  model, optimizer, schedule and step counts are assembled (:func:`train_and_evaluate`,
  :mod:`rocket.stacked` and the benchmarks all start here)."""
  task: Any
  model: Any
  tx: optax.GradientTransformation
  schedule: Callable
  steps_per_epoch: int
  total_steps: int
  input_shape: tuple
  input_dtype: Any
  arch: dict

  def initializer(self) -> Callable:
    """``key -> TrainState`` (:func:`state_initializer`)."""
    return state_initializer(self.model, self.tx, self.input_shape, self.input_dtype)

  def train_step(self, config, data, teacher_model=None) -> Callable:
    """The pure train step (:func:`make_train_step`) with the task's batch preparation."""
    return make_train_step(config, self.model, self.tx, self.schedule,
                           self.task.prepare_fn(config, data), self.steps_per_epoch, teacher_model)


def run_setup(config, data, steps_per_epoch: int | None = None) -> RunSetup:
  """The :class:`RunSetup` of ``config`` on ``data`` (``steps_per_epoch``: given instead of the
  training set's size over the batch, e.g. by a benchmark that holds one batch)."""
  task = tasks.get_task(config)
  if steps_per_epoch is None:
    n_train = len(task.train_arrays(data)[1])
    if n_train < config.batch_size:
      raise ConfigError(f"the training set has {n_train} examples, fewer than batch_size="
                        f"{config.batch_size}")
    steps_per_epoch = n_train // config.batch_size
  total = config.num_train_steps if config.num_train_steps > 0 else config.num_epochs * steps_per_epoch
  tx, schedule = create_optimizer(config, total, steps_per_epoch)
  shape, dtype = task.input_spec(data)
  return RunSetup(task, task.build_model(config, data), tx, schedule, steps_per_epoch, total,
                  tuple(shape), dtype, arch_fingerprint(config, data))


def create_optimizer(config, total_steps: int, steps_per_epoch: int):
  """SGD (Nesterov; default), Adam or Adagrad, + L2 weight decay + optional clipping.

  Returns ``(tx, schedule)``.  Weight decay is added to the gradient (PyTorch's
  SGD convention), before the optimiser's own transformation.  With
  ``optim.reset_momentum`` the optimiser's state starts afresh at every drop of
  the step schedule, as the official code's re-created ``torch.optim.SGD`` does.
  ``optim.booster_lr_scale`` (not 1) multiplies the updates of the parameters under ``booster``
  (the booster's own layers; shared ones keep the schedule's rate): a separate learning rate.
  """
  o = config.optim
  bounds = {}
  if o.schedule == "step":
    bounds = {int(round(f * total_steps)): o.lr_decay for f in o.lr_boundaries}
    sched = optax.piecewise_constant_schedule(o.lr, bounds)
  elif o.schedule == "cosine":
    sched = optax.cosine_decay_schedule(o.lr, max(total_steps, 1))
  else:
    sched = optax.constant_schedule(o.lr)
  warm = int(round(o.warmup_epochs * steps_per_epoch))
  if warm > 0:
    main = sched  # join_schedules restarts the count at the boundary: shift it back
    sched = optax.join_schedules(
        [optax.linear_schedule(0.0, o.lr, warm), lambda s: main(s + warm)], [warm])
  parts = []
  if o.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
  if o.weight_decay > 0:
    parts.append(optax.add_decayed_weights(o.weight_decay))
  name = o.get("name", "sgd")
  if name == "adam":
    parts.append(optax.adam(sched))
  elif name == "adagrad":
    parts.append(optax.adagrad(sched, initial_accumulator_value=o.get("adagrad_init", 0.1)))
  elif o.momentum:  # optax.sgd, spelled out so that only the momentum can be reset
    trace = optax.trace(decay=o.momentum, nesterov=o.nesterov)
    if o.get("reset_momentum", False) and bounds:
      trace = reset_state_at(trace, tuple(sorted(bounds)))
    parts.append(optax.chain(trace, optax.scale_by_learning_rate(sched)))
  else:
    parts.append(optax.sgd(sched))
  booster_scale = float(o.get("booster_lr_scale", 1.0))
  if booster_scale < 0:
    raise ConfigError(f"config.optim.booster_lr_scale must be >= 0, got {booster_scale}")
  if booster_scale != 1.0:
    parts.append(optax.masked(optax.scale(booster_scale),
                              lambda params: {k: k == "booster" for k in params}))
  return float32_state(optax.chain(*parts)), sched


def reset_state_at(inner: optax.GradientTransformation, steps) -> optax.GradientTransformation:
  """``inner`` whose state is re-initialised just before the updates of the given step numbers."""
  steps = jnp.asarray(steps, jnp.int32)

  def init(params):
    return (jnp.zeros((), jnp.int32), inner.init(params))

  def update(updates, state, params=None):
    count, inner_state = state
    fresh = inner.init(updates)  # optimiser states are shaped like the updates
    reset = jnp.any(count == steps)
    inner_state = jax.tree.map(lambda f, s: jnp.where(reset, f, s), fresh, inner_state)
    updates, inner_state = inner.update(updates, inner_state, params)
    return updates, (count + 1, inner_state)

  return optax.GradientTransformation(init, update)


def float32_state(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Runs ``inner`` in float32 whatever the parameters' dtype (no-op for float32 params).

  Embedding tables stored in float16/bfloat16 (``embedding.dtype``) keep float32 optimizer
  moments and float32 update arithmetic; only the update added to the stored table is
  rounded.  (Adam in float16 would underflow: its epsilon 1e-8 is 0 in float16.)
  """
  f32 = lambda t: jax.tree.map(lambda x: x.astype(jnp.float32) if x is not None else None, t)  # noqa: E731

  def init(params):
    return inner.init(f32(params))

  def update(grads, state, params=None):
    updates, state = inner.update(f32(grads), state, None if params is None else f32(params))
    return jax.tree.map(lambda u, g: u.astype(g.dtype), updates, grads), state

  return optax.GradientTransformation(init, update)


# --------------------------------------------------------------------------- steps


def state_initializer(model, tx, input_shape, input_dtype=jnp.float32) -> Callable:
  """``key -> TrainState``: the step-0 state of ``model`` for inputs of per-example shape
  ``input_shape`` (pure; :func:`init_state` places it, :mod:`rocket.stacked` vmaps it)."""

  def init(key):
    variables = model.init(key, jnp.zeros((1, *input_shape), input_dtype), train=False)
    params = variables["params"]
    return TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                      tx.init(params))

  return init


def init_state(model, tx, input_shape, seed: int, mesh: Mesh, input_dtype=jnp.float32,
               row_sharded=None) -> TrainState:
  """Initial state for inputs of per-example shape ``input_shape``, placed on ``mesh``.

  Everything is replicated except the leaves ``row_sharded(keys, leaf)`` picks (a task's
  :meth:`rocket.tasks.Task.row_sharded`: CTR embedding tables), which are row-sharded over the
  mesh's ``model`` axis (:func:`state_shardings`).  The state is created directly in that
  layout (``jit`` with ``out_shardings``).
  """

  init = state_initializer(model, tx, input_shape, input_dtype)
  abstract = jax.eval_shape(init, jax.random.key(seed))
  return jax.jit(init, out_shardings=state_shardings(abstract, mesh, row_sharded))(
      jax.random.key(seed))


def state_shardings(tree, mesh: Mesh, row_sharded=None):
  """NamedShardings for a train state (or any tree holding params / optimizer state).

  A leaf for which ``row_sharded(keys, leaf)`` holds (``keys``: its path) and whose row count
  divides evenly over the ``model`` axis is row-sharded, ``P("model", None)``; the optimizer
  moments of a parameter follow it, as their paths contain the same names.  Everything else is
  replicated, and everything is when the ``model`` axis has size 1 (the default).
  """
  n_model = mesh.shape.get("model", 1)

  def one(path, leaf):
    keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    if (n_model > 1 and row_sharded is not None and len(leaf.shape) == 2
        and leaf.shape[0] % n_model == 0 and row_sharded(keys, leaf)):
      return NamedSharding(mesh, P("model", None))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(one, tree)


def make_train_step(config, model, tx, schedule, prepare: Callable, steps_per_epoch: int = 0,
                    teacher_model=None) -> Callable:
  """The pure train step ``(state, inputs, labels, teacher_vars) -> (state, metrics)``.

  ``prepare(key, inputs, train)`` turns the host batch into the model input
  inside the step (a task's ``prepare_fn``: for images augmentation and
  normalisation; CTR ids pass through).  The loss, its gradient and the
  gradient block come from the run's :class:`rocket.objective.Objective`.
  ``teacher_vars`` (``None`` unless the method has a teacher) are the frozen
  teacher's variables; it runs in inference mode on the same augmented batch.

  The keyword arguments are the numbers in which the runs of a stack may differ
  (:mod:`rocket.stacked`), traced: ``seed`` replaces ``config.seed``, ``objective``
  the config's objective (same structure, other weights), and ``lr_scale``
  multiplies the learning rate (every schedule and optimizer here is linear in it).
  ``booster_grad`` (traced; ``config.select.detach_booster_after``) goes to the model, which
  multiplies the booster's gradient into the shared layers by it (1, or 0 once detached).
  """
  config_objective = objective.Objective.from_config(config)
  method = config_objective.method
  base_key = jax.random.key(config.seed + 1)

  def train_step(state: TrainState, images, labels, teacher_vars=None, seed=None, objective=None,
                 lr_scale=None, booster_grad=None):
    key = jax.random.fold_in(base_key if seed is None else jax.random.key(seed + 1), state.step)
    obj = config_objective if objective is None else objective
    x = prepare(key, images, True)
    teacher = None
    if method.needs_teacher:
      t_out = teacher_model.apply(teacher_vars, x, train=False)
      (net,) = teacher_model.nets
      teacher = jax.lax.stop_gradient(
          {"logits": t_out["logits"][net], "features": t_out["features"].get(net)})

    # a model with dropout (it sets ``uses_dropout``) gets a "dropout" rng, per run, seed and step
    rngs = {"dropout": jax.random.fold_in(key, 1)} if getattr(model, "uses_dropout", False) else None
    extra = {} if booster_grad is None else {"booster_grad": booster_grad}

    def forward(params):
      out, mut = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                             train=True, mutable=["batch_stats"], rngs=rngs, **extra)
      return out, mut["batch_stats"]

    weights = obj.term_weights(state.step, steps_per_epoch)
    loss, terms, grads, out, batch_stats = obj.loss_and_grads(
        forward, state.params, labels, weights, teacher)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    if lr_scale is not None:
      updates = jax.tree.map(lambda u: u * lr_scale.astype(u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    lr = schedule(state.step) if lr_scale is None else schedule(state.step) * lr_scale
    metrics = {"loss": loss, **terms, "lr": lr, "grad_norm": _global_norm(grads), **extra}
    for n in method.nets:
      metrics[f"acc_{n}"] = losses.accuracy_count(out["logits"][n], labels) / labels.shape[0]
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


# --------------------------------------------------------------------------- loop


@contextlib.contextmanager
def _stop_signals():
  """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""
  received: list[int] = []

  def handler(signum, frame):
    del frame
    if received:  # a second signal: give up waiting
      raise KeyboardInterrupt
    received.append(signum)

  old = {}
  try:
    for s in (signal.SIGINT, signal.SIGTERM):
      old[s] = signal.signal(s, handler)
  except ValueError:  # not in the main thread: no handlers
    pass
  try:
    yield received
  finally:
    for s, h in old.items():
      signal.signal(s, h)


def _write_config(workdir: pathlib.Path, config) -> None:
  path = workdir / "config.json"
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if path.exists() and path.read_text() != text:
    path.rename(workdir / f"config.{time.strftime('%Y%m%d-%H%M%S')}.json")
  path.write_text(text)


def _truncate_metrics(path: pathlib.Path, last_step: int) -> None:
  """Drops records past the checkpoint we resume from (they will be redone)."""
  if not path.exists():
    return
  lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
  keep = []
  for i, ln in enumerate(lines):
    try:
      record = json.loads(ln)
    except json.JSONDecodeError:
      if i == len(lines) - 1:  # a crash while writing the last record: it is redone
        _say(f"warning: dropped a partial last line of {path} (a crash mid-write)")
        continue
      raise ckpt_lib.CheckpointError(
          f"{path} line {i + 1} is not JSON; fix or delete that line (records after the "
          f"checkpoint at step {last_step} are redone anyway)") from None
    if record.get("step", 0) <= last_step:
      keep.append(ln)
  path.write_text("".join(ln + "\n" for ln in keep))


def _last_good(step, ckdir) -> str:
  return (f"the last good checkpoint (step {step}) is kept in {ckdir}" if step is not None
          else "no checkpoint had been written yet")


def _check_finite(records: list[dict[str, float]], first_step: int, last_good: Any, ckdir) -> None:
  for i, m in enumerate(records):
    bad = sorted(k for k, v in m.items() if not math.isfinite(v))
    if not bad:
      continue
    where = _last_good(last_good, ckdir)
    terms = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if k in bad or k.startswith(("ce_", "hint")))
    what = "loss" if any(k == "loss" or k.startswith(("ce_", "hint")) for k in bad) else "gradient"
    raise NonFiniteLossError(
        f"non-finite {what} at step {first_step + i} (non-finite: {', '.join(bad)}; "
        f"terms: {terms}); training stopped and {where}. Lower config.optim.lr, set "
        f"config.optim.grad_clip_norm, or check the data.")


def _all_finite(state: TrainState) -> jax.Array:
  """Whether every floating-point leaf of the parameters, optimizer state and BN statistics is finite."""
  leaves = [x for x in jax.tree.leaves((state.params, state.opt_state, state.batch_stats))
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


@dataclasses.dataclass
class _Window:
  """Per-step train metrics since the last evaluation, fetched lazily."""
  pending: list = dataclasses.field(default_factory=list)
  first_pending_step: int = 0
  sums: dict = dataclasses.field(default_factory=dict)
  count: int = 0

  def flush(self, last_good, ckdir) -> dict[str, float] | None:
    if not self.pending:
      return None
    records = [{k: float(v) for k, v in m.items()} for m in jax.device_get(self.pending)]
    _check_finite(records, self.first_pending_step, last_good, ckdir)
    for m in records:
      for k, v in m.items():
        self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += len(records)
    self.pending = []
    return records[-1]

  def means(self) -> dict[str, float]:
    out = {f"train/{k}": v / max(self.count, 1) for k, v in self.sums.items()}
    self.sums, self.count = {}, 0
    return out


@dataclasses.dataclass
class Selection:
  """Model selection by an evaluation metric (``config.select``): the best evaluation so far and
  the evaluations since it (early stopping). Its state goes into every checkpoint's meta, so a
  resumed run selects as an uninterrupted one would."""
  key: str
  mode: str = "max"
  patience: int = 0
  reduce_after: int = 0  # reduce on plateau: evaluations without improvement before lr_scale drops
  reduce_factor: float = 0.1
  best: float | None = None
  since: int = 0
  record: dict = dataclasses.field(default_factory=dict)
  lr_scale: float = 1.0
  since_change: int = 0  # evaluations since the best one or the last reduction
  # detach_after > 0: the booster's own metric (booster_key) is followed too; after that many
  # evaluations without a better one, its gradient into the shared layers is cut for good.
  detach_after: int = 0
  booster_key: str = ""
  booster_best: float | None = None
  booster_since: int = 0
  detached_at: int | None = None  # the step of the evaluation that cut it

  @classmethod
  def from_config(cls, config) -> "Selection | None":
    sel = config.get("select")
    if sel is None or not sel.metric:
      return None
    nets = methods.get_method(config.method).nets
    served = "light" if "light" in nets else "booster"
    detach = int(sel.get("detach_booster_after", 0))
    return cls(sel.metric.replace("{net}", served), sel.mode, int(sel.patience),
               int(sel.get("reduce_after", 0)), float(sel.get("reduce_factor", 0.1)),
               detach_after=detach, booster_key=sel.metric.replace("{net}", "booster") if detach else "")

  @property
  def booster_grad(self) -> float:
    """What the booster's gradient into the shared layers is multiplied by: 1, or 0 once detached."""
    return 0.0 if self.detached_at is not None else 1.0

  def _better(self, v: float, best: float | None) -> bool:
    return best is None or (v > best if self.mode == "max" else v < best)

  def update(self, record: dict) -> bool:
    """Takes an evaluation; whether it is the best so far."""
    for key in filter(None, (self.key, self.booster_key)):  # the booster's: with detach_after
      if key not in record:
        keys = sorted(k for k in record if "/" in k and not k.startswith("train/"))
        raise ConfigError(f"config.select.metric: {key!r} is not an evaluation of this run; "
                          f"its evaluations: {', '.join(keys)}")
    if self.detach_after and self.detached_at is None:
      b = float(record[self.booster_key])
      if self._better(b, self.booster_best):
        self.booster_best, self.booster_since = b, 0
      else:
        self.booster_since += 1
        if self.booster_since >= self.detach_after:
          self.detached_at = int(record.get("step", 0))
    v = float(record[self.key])
    if self._better(v, self.best):
      self.best, self.since, self.since_change, self.record = v, 0, 0, dict(record)
      return True
    self.since += 1
    self.since_change += 1
    if self.reduce_after and self.since_change >= self.reduce_after:
      self.lr_scale, self.since_change = self.lr_scale * self.reduce_factor, 0
    return False

  @property
  def exhausted(self) -> bool:
    return self.patience > 0 and self.since >= self.patience

  def state(self) -> dict:
    out = {"best": self.best, "since": self.since, "record": self.record,
           "lr_scale": self.lr_scale, "since_change": self.since_change}
    if self.detach_after:
      out.update(booster_best=self.booster_best, booster_since=self.booster_since,
                 detached_at=self.detached_at)
    return out

  def restore(self, state: dict | None) -> None:
    if state:
      self.best, self.since, self.record = state["best"], int(state["since"]), dict(state["record"])
      self.lr_scale = float(state.get("lr_scale", 1.0))
      self.since_change = int(state.get("since_change", self.since))
      self.booster_best = state.get("booster_best")
      self.booster_since = int(state.get("booster_since", 0))
      self.detached_at = state.get("detached_at")


class _SpeedProbe:
  """Times a few steps after the compiled first one and, when the run would take hours on this
  CPU, says so once with the expected time and what to run instead."""

  def __init__(self, start_step: int, total_steps: int, hint: str, steps: int = 5,
               warn_after_s: float = 3600.0):
    self.first, self.last, self.total = start_step + 1, start_step + 1 + steps, total_steps
    self.hint, self.warn_after_s, self.t0 = hint, warn_after_s, 0.0

  def tick(self, done: int, metrics, bar=None) -> None:
    if done not in (self.first, self.last) or self.last > self.total:
      return
    jax.block_until_ready(metrics)
    if done == self.first:
      self.t0 = time.perf_counter()
      return
    per_step = (time.perf_counter() - self.t0) / (self.last - self.first)
    left = per_step * (self.total - done)
    if left > self.warn_after_s:
      _say(f"note: no accelerator found; at {per_step:.2f} s per step the remaining "
           f"{self.total - done} steps take about {left / 3600:.1f} h on this CPU. {self.hint}", bar)


def _say(msg: str, bar=None) -> None:
  """A progress message from process 0 (through tqdm when a bar is shown)."""
  if jax.process_index() != 0:
    return
  if bar is not None:
    bar.write(msg)
  else:
    print(msg, file=sys.stderr, flush=True)


def count_params(params) -> dict[str, int]:
  """Parameters each net uses (its own + shared), and the total held in training."""
  owners = jax.tree.leaves(owner_tree(params))
  sizes = [int(x.size) for x in jax.tree.leaves(params)]
  out = {"total": sum(sizes)}
  for net in sorted(params.keys() & {"light", "booster"}):
    out[net] = sum(n for n, o in zip(sizes, owners) if o in (net, "shared"))
  return out


def teacher_irrelevant_fields() -> frozenset[str]:
  """Config fields that do not change what a (booster-alone) teacher run computes: bookkeeping,
  and the method-dependent fields the ``booster`` method does not read."""
  return BOOKKEEPING_FIELDS | (methods.METHOD_FIELDS - methods.get_method("booster").config_fields())


def teacher_config(config):
  """The config of the teacher a kd/at/at_kd/rocket_kd ``config`` asks for: its booster, alone,
  with the same data and budget."""
  import ml_collections  # noqa: PLC0415

  t = ml_collections.ConfigDict(config.to_dict())
  t.method, t.teacher_workdir = "booster", ""
  return t


def train_teacher(config, teacher_dir) -> pathlib.Path:
  """Trains the teacher of ``config`` (:func:`teacher_config`) in ``teacher_dir``, as a run of its
  own; a finished run there with the same config is reused as it is.  Returns ``teacher_dir``."""
  tdir = pathlib.Path(teacher_dir)
  tconfig = teacher_config(config)
  if (tdir / "final.json").is_file():
    old = json.loads((tdir / "config.json").read_text())
    new = json.loads(tconfig.to_json_best_effort())
    diff = sorted(k for k in old.keys() | new.keys()
                  if k not in teacher_irrelevant_fields() and old.get(k) != new.get(k))
    if diff:
      raise ConfigError(
          f"the finished teacher in {tdir} was trained with a different config (fields differ: "
          f"{', '.join(diff)}). Delete that folder to retrain it, or pass "
          f"--config.teacher_workdir={tdir} to use it as it is.")
    _say(f"reusing the finished teacher in {tdir}")
  else:
    _say(f"training the teacher (a booster net alone) in {tdir}")
    train_and_evaluate(tconfig, tdir)
  return tdir


def train_with_teacher(config, workdir, callbacks=()) -> dict[str, Any]:
  """:func:`train_and_evaluate`, after training the teacher in ``<workdir>/teacher`` when the
  method needs one and ``config.teacher_workdir`` is empty (what ``rocket.main`` runs).

  The teacher is a finished run before the student starts; the student's ``config.json``
  records its ``teacher_workdir``.
  """
  from rocket.config_util import apply_overrides  # noqa: PLC0415

  validate_config(config)
  if methods.get_method(config.method).needs_teacher and not config.teacher_workdir:
    tdir = train_teacher(config, pathlib.Path(workdir) / "teacher")
    config = apply_overrides(config, {"teacher_workdir": str(tdir)})
  return train_and_evaluate(config, workdir, callbacks)


def load_teacher(config, ds, mesh: Mesh):
  """``(model, variables, summary)`` of the finished run in ``config.teacher_workdir``."""
  import ml_collections  # noqa: PLC0415

  if not config.teacher_workdir:
    raise ConfigError(
        f"method {config.method!r} learns from a finished teacher run: set "
        f"config.teacher_workdir to a finished booster run, or train both with "
        f"rocket.train.train_with_teacher (what rocket.main does: the teacher goes to "
        f"<workdir>/teacher first)")
  tdir = pathlib.Path(config.teacher_workdir)
  if not (tdir / "final.json").is_file() or not (tdir / "config.json").is_file():
    raise ConfigError(f"config.teacher_workdir={str(tdir)!r} holds no finished run (no final.json "
                      "and config.json); train the teacher first, e.g. with --config.method=booster")
  tconfig = ml_collections.ConfigDict(json.loads((tdir / "config.json").read_text()))
  if len(methods.get_method(tconfig.method).nets) != 1:
    raise ConfigError(f"the teacher in {tdir} was trained with method {tconfig.method!r}; "
                      "a teacher must be a single net (method booster or light)")
  summary = json.loads((tdir / "final.json").read_text())
  # the checkpoint its final.json reports: the selected one when the run selected (config.select)
  model, state, _ = restore_latest(tdir, tconfig, ds, mesh,
                                   "best" if summary.get("selected") else "checkpoints")
  if state is None:
    raise ConfigError(f"the teacher run in {tdir} has no checkpoint; delete it to retrain")
  return model, {"params": state.params, "batch_stats": state.batch_stats}, summary


def restore_latest(workdir, config, data, mesh: Mesh, folder: str = "checkpoints"):
  """``(model, state, meta)`` of the newest checkpoint in a run's ``folder`` (``checkpoints``, or
  ``best``: the selected one), laid out on ``mesh`` (state and meta None if there is none)."""
  task = tasks.get_task(config)
  model = task.build_model(config, data)
  tx, _ = create_optimizer(config, 1, 1)
  shape, dtype = task.input_spec(data)
  abstract = jax.eval_shape(lambda: init_state(model, tx, shape, 0, mesh, dtype, task.row_sharded))
  abstract = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                          abstract, state_shardings(abstract, mesh, task.row_sharded))
  ck = ckpt_lib.Checkpoints(pathlib.Path(workdir) / folder)
  try:
    state, meta = ck.restore(abstract, task.arch(config, data))
  finally:
    ck.close()
  return model, state, meta


def mesh_shape(config=None) -> tuple[int, int]:
  """``(data, model)`` sizes from ``config.mesh`` (``-1`` = the remaining devices)."""
  n = jax.device_count()
  m = config.get("mesh") if config is not None else None
  data = int(m.get("data", -1)) if m is not None else -1
  model = int(m.get("model", 1)) if m is not None else 1
  if data == -1 and model == -1:
    raise ValueError("config.mesh: at most one of data/model may be -1")
  if model == -1:
    model = n // max(data, 1)
  if data == -1:
    data = n // max(model, 1)
  if data < 1 or model < 1 or data * model != n:
    raise ValueError(f"config.mesh data={data} x model={model} must multiply to the number of devices "
                     f"({n} = {jax.devices()[0].platform} x {n}); use -1 for one axis to take the rest")
  return data, model


def make_mesh(config=None) -> Mesh:
  """The device mesh ``("data", "model")`` of a config (default: every device on ``data``).

  The global batch is split over ``data``; parameters are replicated, except
  CTR embedding tables, which are row-sharded over ``model``
  (:func:`state_shardings`).  With several processes (``jax.distributed``) the
  mesh spans the devices of all of them.
  """
  data, model = mesh_shape(config)
  return Mesh(np.asarray(jax.devices()).reshape(data, model), ("data", "model"))


def train_and_evaluate(config, workdir, callbacks=()) -> dict[str, Any]:
  """Trains per ``config``, writing into ``workdir``; returns the last evaluation.

  ``callbacks`` are called on the host as ``cb(step_done, state)`` after every
  step has been dispatched (they should not block on the device).
  """
  validate_config(config)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with run_lock(workdir):
    return _train_and_evaluate(config, workdir, callbacks)


class RunInUse(RuntimeError):
  """Another process is running in the same workdir."""


@contextlib.contextmanager
def run_lock(workdir: pathlib.Path):
  """Holds ``<workdir>/.lock`` (``flock``) while a run uses the directory; a second process gets
  :class:`RunInUse` naming the holder.  Only process 0 of a multi-process run takes it."""
  if jax.process_index() != 0:
    yield
    return
  f = open(workdir / ".lock", "a+")  # noqa: SIM115 -- held for the whole run
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or "another process"
    f.close()
    raise RunInUse(f"{workdir} is in use by another run ({holder}); wait for it to finish or "
                   f"use another --workdir") from None
  try:
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    yield
  finally:
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def _train_and_evaluate(config, workdir: pathlib.Path, callbacks) -> dict[str, Any]:
  task = tasks.get_task(config)
  ds = task.load(config)
  method = methods.get_method(config.method)
  train_inputs, train_labels = task.train_arrays(ds)
  setup = run_setup(config, ds)
  spe, total_steps, model, arch = setup.steps_per_epoch, setup.total_steps, setup.model, setup.arch
  eval_every = config.eval_every_steps or max(1, int(round(config.eval_every_epochs * spe)))

  mesh = make_mesh(config)
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  state = init_state(model, setup.tx, setup.input_shape, config.seed, mesh, setup.input_dtype,
                     task.row_sharded)
  n_params = count_params(state.params)
  teacher_model = teacher_vars = teacher_summary = None
  if method.needs_teacher:
    teacher_model, teacher_vars, teacher_summary = load_teacher(config, ds, mesh)

  ckpts = ckpt_lib.Checkpoints(workdir / "checkpoints", config.max_checkpoints)
  restored, meta = ckpts.restore(ckpt_lib.abstract_like(state), arch)
  elapsed0 = 0.0
  if restored is not None:
    state, elapsed0 = restored, float(meta.get("elapsed_s", 0.0))
    _say(f"resumed from step {int(state.step)} in {ckpts.directory}")
  start_step = int(state.step)
  final_path = workdir / "final.json"
  if restored is not None and final_path.is_file() and (
      start_step >= total_steps
      or json.loads(final_path.read_text()).get("stopped_early_at") == start_step):
    ckpts.close()  # a finished run: rerunning it changes nothing
    _say(f"{workdir} holds a finished run (step {start_step}); nothing to do")
    return json.loads(final_path.read_text())
  selection = Selection.from_config(config)
  best_ckpts = None
  if selection is not None:
    selection.restore(meta.get("select") if restored is not None else None)
    best_ckpts = ckpt_lib.Checkpoints(workdir / "best", 1)
  last_good = start_step if restored is not None else None
  metrics_path = workdir / "metrics.jsonl"
  writer = None
  if jax.process_index() == 0:
    _write_config(workdir, config)
    _truncate_metrics(metrics_path, start_step)
    writer = MetricWriter(workdir, config.get("tensorboard", True))

  state_sh = state_shardings(state, mesh, task.row_sharded)
  teacher_sh = None if teacher_vars is None else state_shardings(teacher_vars, mesh, task.row_sharded)
  step_fn = setup.train_step(config, ds, teacher_model)
  in_shardings = (state_sh, data_sharding, data_sharding, teacher_sh)
  # Numbers the selection changes during the run are arguments of the step, so that a change
  # does not recompile: the reduce-on-plateau LR scale, the booster's gradient into shared layers.
  knobs = {"lr_scale": lambda: selection.lr_scale} if selection and selection.reduce_after else {}
  if selection and selection.detach_after:
    knobs["booster_grad"] = lambda: selection.booster_grad
  if knobs:
    plain = step_fn
    step_fn = lambda s, x, y, t, *v: plain(s, x, y, t, **dict(zip(knobs, v)))  # noqa: E731
    in_shardings += (replicated,) * len(knobs)
  train_step = jax.jit(step_fn, in_shardings=in_shardings, out_shardings=(state_sh, replicated),
                       donate_argnums=0)
  evaluate_state = task.make_evaluator(config, model, ds, data_sharding)
  _say(f"{config.method} on {task.describe(ds, config)}, {total_steps} steps ({spe} per epoch), "
       f"params {n_params}, {jax.device_count()} x {jax.devices()[0].device_kind}")

  t0 = time.time()
  elapsed = lambda: elapsed0 + time.time() - t0  # noqa: E731
  window = _Window(first_pending_step=start_step)
  if restored is not None and meta.get("train_window"):  # the train/* averages in progress
    window.sums, window.count = dict(meta["train_window"]["sums"]), int(meta["train_window"]["count"])
  meta_now = lambda: {"arch": arch, "elapsed_s": elapsed(), "params": n_params,  # noqa: E731
                      "train_window": {"sums": window.sums, "count": window.count},
                      **({"select": selection.state()} if selection is not None else {})}
  last_eval: dict[str, Any] = {}
  bar = None
  if config.progress_bar and jax.process_index() == 0:
    from tqdm import tqdm
    bar = tqdm(total=total_steps, initial=start_step, desc=config.method, unit="step",
               dynamic_ncols=True)
  probe = _SpeedProbe(start_step, total_steps, task.cpu_hint) if jax.default_backend() == "cpu" else None
  batches = input_pipeline.train_batches(
      train_inputs, train_labels, seed=config.seed, batch_size=config.batch_size,
      start_step=start_step, num_steps=total_steps, sharding=data_sharding)
  state_is_finite = jax.jit(_all_finite, out_shardings=replicated)

  def save(step_done: int, record: dict | None = None, best: bool = False) -> None:
    """Checkpoints ``state`` only when it and its evaluation are finite (no diverged state is
    ever "the last good checkpoint"); ``best``: into ``<workdir>/best/`` too (checked and
    hashed once)."""
    bad = [] if bool(state_is_finite(state)) else ["parameters or optimizer state"]
    bad += sorted(k for k, v in (record or {}).items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
      where = _last_good(last_good, ckpts.directory)
      raise NonFiniteLossError(
          f"non-finite {', '.join(bad)} at step {step_done}: not checkpointed; training stopped "
          f"and {where}. Lower config.optim.lr, set config.optim.grad_clip_norm, or check the data.")
    meta = {**meta_now(), **({"record": record} if record else {})}
    digest = ckpt_lib.state_digest(state) if best else None
    ckpts.save(step_done, state, meta, digest)
    if best:
      best_ckpts.save(step_done, state, meta, digest)

  stopped_early_at = None
  try:
    with _stop_signals() as stop:
      for step, images, labels in batches:
        if stop:
          window.flush(last_good, ckpts.directory)
          if last_good != step:  # the signal may have come during the evaluation that saved it
            save(step)
          ckpts.wait()
          raise Interrupted(
              f"stopped by signal {stop[0]} at step {step}; checkpoint written to "
              f"{ckpts.directory}. Rerun the same command to resume.")
        state, m = train_step(state, images, labels, teacher_vars, *(np.float32(v()) for v in knobs.values()))
        window.pending.append(m)
        done = step + 1
        if probe is not None:
          probe.tick(done, m, bar)
        is_eval = done % eval_every == 0 or done == total_steps
        if done % config.log_every_steps == 0 or is_eval:
          last = window.flush(last_good, ckpts.directory)
          window.first_pending_step = done
          if bar is not None and last:
            bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['lr']:.3g}", refresh=False)
        if bar is not None:
          bar.update(1)
        for cb in callbacks:
          cb(done, state)
        if is_eval:
          record = {"step": done, "epoch": done / spe, "wall_time_s": round(elapsed(), 2),
                    **window.means(), **evaluate_state(state)}
          if writer is not None:
            writer.write(record)
          _say(f"step {done} epoch {done / spe:.2f}: {task.headline(record)}", bar)
          scale = selection.lr_scale if selection else 1.0
          attached = selection is not None and selection.detached_at is None
          improved = selection is not None and selection.update(record)
          if selection and selection.lr_scale != scale:
            _say(f"reduce on plateau: learning rate x{selection.reduce_factor:g} (now x"
                 f"{selection.lr_scale:.3g} of the schedule) after {selection.reduce_after} "
                 f"evaluations without a better {selection.key}", bar)
          if attached and selection.detached_at is not None:
            _say(f"booster detached from the shared layers at step {done}: no better "
                 f"{selection.booster_key} in {selection.detach_after} evaluations (best "
                 f"{selection.booster_best:.6g}); the light net alone trains them from here", bar)
          save(done, record, best=improved)
          last_good, last_eval = done, record
          if selection is not None and selection.exhausted and done < total_steps:
            stopped_early_at = done
            _say(f"early stop at step {done}: no better {selection.key} in {selection.patience} "
                 f"evaluations (best {selection.best:.6g} at step {selection.record['step']})", bar)
            break
        elif config.checkpoint_every_steps and done % config.checkpoint_every_steps == 0:
          window.flush(last_good, ckpts.directory)
          window.first_pending_step = done
          save(done)
          last_good = done
  finally:
    batches.close()  # stops the prefetch thread (an early stop leaves batches unread)
    if bar is not None:
      bar.close()
    ckpts.close()
    if best_ckpts is not None:
      best_ckpts.close()
    if writer is not None:
      writer.close()
  if not last_eval:  # resumed a finished run: evaluate the restored state
    last_eval = {"step": start_step, "epoch": start_step / spe, "wall_time_s": round(elapsed0, 2),
                 **evaluate_state(state)}
  if selection is not None and selection.record:
    # the selected evaluation is the run's result; its checkpoint is <workdir>/best/
    last_eval = dict(selection.record, selected={
        "metric": selection.key, "mode": selection.mode, "step": selection.record["step"],
        "last_step": last_eval["step"], "checkpoint": str(workdir / "best")})
  if stopped_early_at is not None:
    last_eval["stopped_early_at"] = stopped_early_at
  last_eval["params"] = n_params
  last_eval.update({f"bytes/{k}": v for k, v in task.sizes(state.params).items()})
  last_eval["params_fingerprint"] = params_fingerprint(state.params, mesh)
  if teacher_summary is not None:
    last_eval["teacher"] = {k: v for k, v in teacher_summary.items()
                            if k.startswith("test/booster_") or k in ("wall_time_s", "params")}
  last_eval["device"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  last_eval["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
  if jax.process_index() == 0:
    (workdir / "final.json").write_text(json.dumps(last_eval, indent=1, sort_keys=True) + "\n")
  elif jax.process_count() > 1:  # lets a user (and the tests) check that the processes agree
    (workdir / f"final.process{jax.process_index()}.json").write_text(
        json.dumps({"step": last_eval["step"], "params_fingerprint": last_eval["params_fingerprint"]}) + "\n")
  return last_eval


def params_fingerprint(params, mesh: Mesh) -> list[float]:
  """``[sum, sum of squares, sum of i-weighted values]`` over all parameters, in float64 on the host.

  Cheap to compare between runs and processes (works with sharded tables and on
  every process: the reduction is jitted with a replicated output).
  """
  def reduce(p):
    leaves = [x.astype(jnp.float32).ravel() for x in jax.tree.leaves(p)]
    out = []
    for x in leaves:
      w = jnp.arange(x.size, dtype=jnp.float32) / max(x.size, 1)
      out.append(jnp.stack([jnp.sum(x), jnp.sum(x * x), jnp.sum(x * w)]))
    return jnp.stack(out)

  per_leaf = jax.jit(reduce, out_shardings=NamedSharding(mesh, P()))(params)
  return [float(v) for v in np.asarray(jax.device_get(per_leaf), np.float64).sum(0)]


@dataclasses.dataclass
class Run:
  """A finished (or checkpointed) run, loaded back: see :func:`load_run`."""
  config: Any
  task: Any
  data: Any
  model: Any
  state: TrainState
  step: int
  checkpoint: str = "latest"  # which one: "latest" or "best" (config.select)
  record: dict = dataclasses.field(default_factory=dict)  # its evaluation, when saved with it


CHECKPOINT_CHOICES = ("auto", "best", "latest")


def load_run(workdir, config=None, checkpoint: str = "latest") -> Run:
  """Loads a run's config (``config.json``), data, model and a checkpoint.

  ``checkpoint``: ``latest``; ``best``, the one ``config.select`` kept (``<workdir>/best/``);
  ``auto``: best when the run kept one, else latest.  For notebooks, export and evaluation;
  ``config`` overrides the stored one.  The state is restored onto this process's devices
  (``data`` axis only), whatever mesh the run was trained on.
  """
  if checkpoint not in CHECKPOINT_CHOICES:
    raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES}, got {checkpoint!r}")
  import ml_collections  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  if config is None:
    path = workdir / "config.json"
    if not path.is_file():
      raise ValueError(f"{workdir} holds no config.json: is it the --workdir of a rocket run?")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
  task = tasks.get_task(config)
  data = task.load(config)
  # the local devices, whatever mesh the run was trained on
  if checkpoint == "auto":
    checkpoint = "best" if (workdir / "best").is_dir() and any((workdir / "best").iterdir()) else "latest"
  folder = "best" if checkpoint == "best" else "checkpoints"
  model, state, meta = restore_latest(workdir, config, data, make_mesh(), folder)
  if state is None:
    what = ("no best checkpoint: the run did not select one (config.select.metric was empty); "
            "load checkpoint='latest'" if checkpoint == "best" else "train the run first")
    raise ckpt_lib.CheckpointError(f"no checkpoint in {workdir / folder}; {what}")
  return Run(config, task, data, model, state, int(state.step), checkpoint,
             dict(meta.get("record", {})))
