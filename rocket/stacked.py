"""Stacked runs: several runs of one config trained as one jitted program, an epoch per dispatch.

The runs differ in ``seed`` and, optionally, in the numbers of :data:`PER_RUN_FIELDS` (the hint's
weight and temperature, KD's alpha and temperature, AT's beta, the gradient block on/off, the
learning rate): those enter the program as traced values, one per run. Each run of a stack is the
run ``python -m rocket.main`` trains for its config: the same initial
state (``jax.random.key(seed)``), data order (:func:`rocket.input_pipeline.train_indices`),
augmentation keys and train step (:func:`rocket.train.make_train_step`). Only the program around
the step differs, so that a thin net keeps a GPU busy:

* the R train states carry a leading run axis (``jax.vmap``; convolutions become grouped ones);
* the uint8 training set lives on the device, and an epoch's steps run in one ``lax.scan``: the
  host sends one ``[R, steps, batch]`` index array per epoch and nothing per step;
* the test set is evaluated on the device too (:meth:`rocket.tasks.Task.device_evaluator`).

Every run writes its own workdir in the single-run format (``config.json``, ``metrics.jsonl``,
orbax checkpoints, ``final.json``): ``rocket.main`` resumes a stacked run's checkpoint and a stack
resumes single runs' ones, and ``rocket.report`` / ``paper_repro/compare.py`` read them unchanged.

Several devices (``devices=D``, R a multiple of D): the run axis is split over a one-axis mesh
``("runs",)``, so each device trains R / D whole runs with no communication between them; the
training and test sets are replicated on every device. A run is then exactly what it is on one
device, and each checkpoint holds one run, as before.

Limits: one process; the runs of a stack differ only in ``seed`` and :data:`PER_RUN_FIELDS`;
``eval_every_epochs`` and the run length are whole epochs. A run whose numbers differ from the
first run's is equal to its single run to float tolerance (a weight such as ``1 - kd.alpha`` is
then computed in float32 inside the program instead of folded in double precision, and the
learning rate is the first run's schedule scaled). Teachers (KD, AT, rocket+KD) are finished
runs: a ``{seed}`` in ``config.teacher_workdir`` (``.../booster/seed{seed}``) gives each seed its
own.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rocket import checkpoint as ckpt_lib
from rocket import input_pipeline, methods, tasks, train
from rocket.config_util import ConfigError, apply_overrides
from rocket.metric_writers import MetricWriter
from rocket.objective import PER_RUN_FIELDS as OBJECTIVE_FIELDS
from rocket.objective import Objective

# Config fields (dotted) whose values may differ between the runs of a stack, besides ``seed``:
# they are numbers the program takes per run, not its structure.
PER_RUN_FIELDS = OBJECTIVE_FIELDS + ("optim.lr", "teacher_workdir")


def stack_trees(trees: Sequence[Any]):
  """One tree whose leaves carry a leading run axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def run_slice(tree, r: int):
  """Run ``r`` of a stacked tree."""
  return jax.tree.map(lambda x: x[r], tree)


# How a stack's runs share the program: "vmap" batches them (a convolution becomes one grouped
# convolution over all runs: big kernels for a GPU); "unrolled" places R plain copies of the step
# in the program (XLA:CPU runs grouped convolutions ~4x slower than R plain ones).
RUN_AXES = ("auto", "vmap", "unrolled")


def default_run_axis() -> str:
  return "unrolled" if jax.default_backend() == "cpu" else "vmap"


def default_scan_epochs() -> bool:
  """Whether a whole epoch runs as one ``lax.scan``: yes, except on XLA:CPU, which runs the
  convolutions inside a loop ~40x slower (measured 2026-11-28: 8 WRN-10 rocket steps took 40 s
  scanned, 0.9 s unrolled); there each step is its own dispatch."""
  return jax.default_backend() != "cpu"


class Stack:
  """R runs (``config`` with each of ``seeds``, and each of ``per_run``'s overrides of
  :data:`PER_RUN_FIELDS` when given) in ``workdirs``, advanced an epoch at a time.

  ``dispatch()`` queues the next epoch (and its evaluation when one is due) on the device and
  returns at once; ``collect()`` waits for it and writes the metrics; ``save()`` checkpoints every
  run; ``finish()`` writes the ``final.json`` files. :func:`train_stack` drives one stack; the GPU
  campaign interleaves several so that one's host work overlaps another's device work.
  """

  def __init__(self, config, seeds: Sequence[int], workdirs: Sequence[pathlib.Path], *,
               per_run: Sequence[dict] | None = None, label: str = "", run_axis: str = "auto",
               scan_epochs: bool | None = None, devices: int = 1, log=print):
    if len(seeds) != len(workdirs) or not seeds:
      raise ConfigError("a stack needs one workdir per seed, and at least one seed")
    per_run = [dict(o) for o in per_run] if per_run is not None else [{} for _ in seeds]
    if len(per_run) != len(seeds):
      raise ConfigError(f"per_run has {len(per_run)} entries for {len(seeds)} seeds; give one "
                        f"(possibly empty) dict of overrides per run")
    fixed = sorted({k for o in per_run for k in o} - set(PER_RUN_FIELDS))
    if fixed:
      raise ConfigError(f"{fixed[0]} cannot differ between the runs of a stack (it changes the "
                        f"program); the fields that may: seed, {', '.join(PER_RUN_FIELDS)}")
    self.label, self.log = label or config.method, log
    if run_axis not in RUN_AXES:
      raise ConfigError(f"run_axis must be one of {RUN_AXES}, got {run_axis!r}")
    self.run_axis = default_run_axis() if run_axis == "auto" else run_axis
    self.scan_epochs = default_scan_epochs() if scan_epochs is None else scan_epochs
    # a "{seed}" in teacher_workdir gives each seed its own finished teacher run
    self.configs = []
    for s, o in zip(seeds, per_run):
      c = apply_overrides(config, {"seed": int(s), **o})
      if "{seed}" in c.get("teacher_workdir", ""):
        c.teacher_workdir = c.teacher_workdir.replace("{seed}", str(int(s)))
      train.validate_config(c)
      self.configs.append(c)
    # the program is the first run's; the numbers in which the others differ are traced
    objectives = [Objective.from_config(c) for c in self.configs]
    self.objective = (None if all(o == objectives[0] for o in objectives)
                      else Objective.stack(objectives))
    lrs = [float(c.optim.lr) for c in self.configs]
    self.lr_scales = (None if len(set(lrs)) == 1 else
                      jnp.asarray([lr / lrs[0] for lr in lrs], jnp.float32))
    self.seeds = [int(s) for s in seeds]
    if len(set(zip(self.seeds, map(str, per_run)))) != len(self.seeds):
      raise ConfigError(f"the runs of a stack must differ (in seed or per_run), got seeds "
                        f"{self.seeds} and per_run {per_run}")
    self.workdirs = [pathlib.Path(w) for w in workdirs]
    self.method = methods.get_method(config.method)
    if jax.process_count() > 1:
      raise ConfigError("stacked runs use one process; train multi-host runs with rocket.main")
    if config.get("select", {}).get("metric"):
      raise ConfigError("stacked runs report their last evaluation: set config.select.metric='' "
                        "or train runs that select a checkpoint with rocket.main")
    task = self.task = tasks.get_task(config)
    if len(self.seeds) > 1 and task.data_depends_on_seed(config):
      raise ConfigError("the runs of this stack would train on different data (train_subset or "
                        "synthetic images are drawn with the run's seed): set config.data_seed "
                        "to give them the same data, or train them one at a time")
    ds = self.ds = task.load(config)
    x_train, y_train = task.train_arrays(ds)
    self.n_train = len(y_train)
    setup = train.run_setup(self.configs[0], ds)
    spe = self.steps_per_epoch = setup.steps_per_epoch
    if setup.total_steps % spe:
      raise ConfigError(f"stacked runs train whole epochs: num_train_steps="
                        f"{config.num_train_steps} is not a multiple of {spe} steps per epoch")
    self.num_epochs = setup.total_steps // spe
    if config.eval_every_steps:
      if config.eval_every_steps % spe:
        raise ConfigError(f"stacked runs evaluate at epoch ends: eval_every_steps="
                          f"{config.eval_every_steps} is not a multiple of {spe}")
      self.eval_every = config.eval_every_steps // spe
    else:
      self.eval_every = max(1, int(round(config.eval_every_epochs)))
    device = jax.devices()[0]
    # a single run's mesh (teachers, fingerprints); the runs themselves live on self.run_mesh
    self.mesh = jax.sharding.Mesh(np.array([device]).reshape(1, 1), ("data", "model"))
    self._home = jax.sharding.SingleDeviceSharding(device)
    self._place_mesh(devices)
    model = self.model = setup.model
    init = setup.initializer()
    self.arch = setup.arch
    self.teacher_vars = self.teacher_summaries = teacher_model = None
    if self.method.needs_teacher:
      loaded = [train.load_teacher(c, ds, self.mesh) for c in self.configs]
      teacher_model = loaded[0][0]
      self.teacher_vars = self._split(stack_trees([t[1] for t in loaded]))
      self.teacher_summaries = [t[2] for t in loaded]
    step_fn = setup.train_step(self.configs[0], ds, teacher_model)
    try:
      self.test_arrays, eval_sums, self.to_record = task.device_evaluator(config, model, ds)
    except NotImplementedError as e:
      raise ConfigError(f"{e}: train its runs one at a time with rocket.main") from None

    self._step_fn, self._eval_sums = step_fn, eval_sums
    self._build_programs()
    self._finite = jax.jit(jax.vmap(train._all_finite))
    self.x_train = jax.device_put(x_train, self._replicated)
    self.y_train = jax.device_put(y_train, self._replicated)
    self.test_arrays = tuple(jax.device_put(a, self._replicated) for a in self.test_arrays)
    self.objective, self.lr_scales = self._split(self.objective), self._split(self.lr_scales)

    # resume: every run from its own latest checkpoint, all at the same step
    placed = jax.sharding.SingleDeviceSharding(device)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=placed),
                            jax.eval_shape(init, jax.random.key(0)))
    self._ckpts = [ckpt_lib.Checkpoints(w / "checkpoints", config.max_checkpoints)
                   for w in self.workdirs]
    restored = [ck.restore(abstract, self.arch) for ck in self._ckpts]
    steps = {None if s is None else int(s.step) for s, _ in restored}
    if len(steps) > 1:
      raise ConfigError(f"the runs of stack {self.label} stopped at different steps "
                        f"({sorted(steps, key=str)}); resume them one at a time with rocket.main")
    step0 = steps.pop()
    if step0 is None:
      self.states = jax.jit(jax.vmap(init), out_shardings=self._runs)(
          jax.vmap(jax.random.key)(jnp.asarray(self.seeds)))
      self.elapsed0, step0 = 0.0, 0
    else:
      if step0 % spe:
        raise ConfigError(f"stack {self.label}: the checkpoints are at step {step0}, inside an "
                          f"epoch; resume them one at a time with rocket.main")
      self.states = self._split(stack_trees([s for s, _ in restored]))
      self.elapsed0 = max(float(m.get("elapsed_s", 0.0)) for _, m in restored)
      self.log(f"{self.label}: resumed {len(self.seeds)} runs from step {step0}")
    self.epoch = step0 // spe
    self.n_params = train.count_params(run_slice(self.states.params, 0))
    for c, w in zip(self.configs, self.workdirs):
      w.mkdir(parents=True, exist_ok=True)
      train._write_config(w, c)
      train._truncate_metrics(w / "metrics.jsonl", step0)
    self._writers = [MetricWriter(w, c.get("tensorboard", True))
                     for c, w in zip(self.configs, self.workdirs)]
    self.t0 = time.time()
    self.epoch_seconds: list[float] = []
    self._pending: list = []  # (epoch, train metrics, eval sums or None, dispatch time)
    # per run, the train metrics summed over the steps since the last evaluation, and their count
    # (the single-run format, kept in each checkpoint's meta so that a resume averages the same)
    self._windows = [{"sums": dict(m.get("train_window", {}).get("sums", {})) if m else {},
                      "count": int(m.get("train_window", {}).get("count", 0)) if m else 0}
                     for _, m in restored]
    self.last_eval: list[dict] = [{} for _ in self.seeds]
    self.last_saved = step0 if step0 else None

  # ------------------------------------------------------------------ placement

  def _place_mesh(self, devices: int) -> None:
    """The mesh ``("runs",)`` of ``devices`` local devices over which the runs are split (0: the
    most of them that divide the number of runs)."""
    r, have = len(self.seeds), jax.local_device_count()
    if devices == 0:
      devices = max(d for d in range(1, min(r, have) + 1) if r % d == 0)
    if devices < 1 or devices > have or r % devices:
      raise ConfigError(f"a stack of {r} runs cannot be split over {devices} devices: give a "
                        f"divisor of {r} between 1 and the {have} local devices (0: the most)")
    self.run_mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:devices]), ("runs",))
    self._runs = jax.sharding.NamedSharding(self.run_mesh, jax.sharding.PartitionSpec("runs"))
    self._replicated = jax.sharding.NamedSharding(self.run_mesh, jax.sharding.PartitionSpec())
    self._seed_array = self._split(np.asarray(self.seeds, np.int32))  # a step argument, placed once

  @property
  def devices(self) -> int:
    return self.run_mesh.size

  def _split(self, tree):
    """``tree`` (leading run axis) split over the run mesh; None stays None."""
    return None if tree is None else jax.device_put(tree, self._runs)

  def _run_state(self, r: int):
    """Run ``r``'s state on the first device (checkpoints, fingerprints)."""
    return jax.device_put(run_slice(self.states, r), self._home)

  # ------------------------------------------------------------------ programs

  def _build_programs(self) -> None:
    step_fn, vmapped = self._step_fn, self.run_axis == "vmap"

    def runs_step(states, ix, seeds, x_all, y_all, tvars, objs, lrs):
      """One train step of every run; ``ix``: ``[R, batch]`` indices into the device-resident set;
      ``tvars`` / ``objs`` / ``lrs``: the runs' teachers, objectives and learning-rate scales
      (each None when not used or the same for every run)."""
      def one(state, ix_r, seed, tv, obj, lr):
        return step_fn(state, x_all[ix_r], y_all[ix_r], tv, seed=seed, objective=obj, lr_scale=lr)

      per_run = (tvars, objs, lrs)
      if vmapped:
        axes = (0, 0, 0, *(None if a is None else 0 for a in per_run))
        return jax.vmap(one, in_axes=axes)(states, ix, seeds, *per_run)
      outs = [one(run_slice(states, r), ix[r], seeds[r],
                  *(None if a is None else run_slice(a, r) for a in per_run))
              for r in range(ix.shape[0])]  # unrolled: R plain copies of the step
      return stack_trees([o[0] for o in outs]), stack_trees([o[1] for o in outs])

    def run_epoch(states, idx, seeds, x_all, y_all, tvars, objs, lrs):
      """A whole epoch (``idx``: ``[R, steps, batch]``) in one ``lax.scan``; metrics ``[R, steps]``."""
      states, m = jax.lax.scan(
          lambda st, ix: runs_step(st, ix, seeds, x_all, y_all, tvars, objs, lrs),
          states, jnp.swapaxes(idx, 0, 1))
      return states, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), m)

    self._run_epoch = jax.jit(run_epoch, donate_argnums=0)
    self._runs_step = jax.jit(runs_step, donate_argnums=0)
    self._evaluate = jax.jit(jax.vmap(self._eval_sums, in_axes=(0, None, None, None)))
    self._compiled: dict[str, Any] = {}

  def set_run_axis(self, run_axis: str) -> None:
    """Switches between "vmap" and "unrolled" (the state is kept; the programs are rebuilt)."""
    if run_axis not in RUN_AXES[1:]:
      raise ConfigError(f"run_axis must be one of {RUN_AXES[1:]}, got {run_axis!r}")
    if run_axis != self.run_axis:
      self.run_axis = run_axis
      self._build_programs()

  @property
  def runs_step(self):
    """The jitted train step of every run: ``runs_step(states, ix, *step_args())`` with ``ix``
    the ``[R, batch]`` indices of one step (for benchmarks; ``dispatch`` trains)."""
    return self._runs_step

  def step_args(self) -> tuple:
    """The arguments of :attr:`runs_step` after the states and the indices."""
    return self._args()

  def indices(self, epoch: int) -> np.ndarray:
    """``[R, steps, batch]``: each run's data order in ``epoch``."""
    return self._indices(epoch)

  def _args(self):
    return (self._seed_array, self.x_train, self.y_train, self.teacher_vars, self.objective,
            self.lr_scales)

  def compile(self) -> float:
    """Compiles the epoch (or step) and evaluation programs ahead of time (thread-safe: several
    stacks may compile side by side); returns the seconds it took."""
    t = time.time()
    if self.scan_epochs:
      idx = jax.ShapeDtypeStruct((len(self.seeds), self.steps_per_epoch, self.configs[0].batch_size),
                                 jnp.int32)
      self._compiled["epoch"] = self._run_epoch.lower(self.states, idx, *self._args()).compile()
    self._compiled["eval"] = self._evaluate.lower(self.states, *self.test_arrays).compile()
    return time.time() - t

  def time_steps(self, n: int = 5) -> float:
    """Seconds per train step of the whole stack (the mean of ``n`` after two), run on a
    copy of the state: training is not advanced. Compiles the one-step program if needed."""
    states = jax.tree.map(jnp.copy, self.states)
    ix = self._split(self._indices(self.epoch)[:, :n + 2])
    args = self._args()
    for i in range(2):  # the second call may compile again (its inputs are the first's outputs)
      states, m = self._runs_step(states, ix[:, i], *args)
      jax.block_until_ready(m)
    t = time.perf_counter()
    for i in range(2, n + 2):
      states, m = self._runs_step(states, ix[:, i], *args)
    jax.block_until_ready(m)
    return (time.perf_counter() - t) / n

  # ------------------------------------------------------------------ loop pieces

  @property
  def done(self) -> bool:
    return self.epoch >= self.num_epochs

  @property
  def step(self) -> int:
    return self.epoch * self.steps_per_epoch

  def elapsed(self) -> float:
    return self.elapsed0 + time.time() - self.t0

  def _indices(self, epoch: int) -> np.ndarray:
    bs = self.configs[0].batch_size
    return np.stack([input_pipeline.epoch_indices(epoch, s, self.n_train, bs)
                     for s in self.seeds]).astype(np.int32)

  def dispatch(self) -> None:
    """Queues the next epoch's training (and evaluation when due) on the device."""
    idx = self._split(self._indices(self.epoch))
    args = self._args()
    if self.scan_epochs:
      self.states, m = self._compiled.get("epoch", self._run_epoch)(self.states, idx, *args)
    else:
      ms = []
      for i in range(idx.shape[1]):
        self.states, mi = self._runs_step(self.states, idx[:, i], *args)
        ms.append(mi)
      m = jax.tree.map(lambda *a: jnp.stack(a, axis=1), *ms)
    self.epoch += 1
    due = self.epoch % self.eval_every == 0 or self.done
    sums = self._compiled.get("eval", self._evaluate)(self.states, *self.test_arrays) if due else None
    self._pending.append((self.epoch, m, sums, time.time()))

  def collect(self) -> None:
    """Waits for the dispatched epochs and appends their records to each run's metrics.jsonl."""
    for epoch, m, sums, t_dispatch in self._pending:
      m = jax.device_get(m)  # {name: [R, steps]}
      self.epoch_seconds.append(time.time() - t_dispatch)
      for r, wd in enumerate(self.workdirs):
        bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v[r])))
        if bad:
          where = train._last_good(self.last_saved, wd / "checkpoints")
          raise train.NonFiniteLossError(
              f"{wd}: non-finite {', '.join(bad)} in epoch {epoch}; training stopped and {where}. "
              f"Lower config.optim.lr, set config.optim.grad_clip_norm, or check the data.")
      for r, w in enumerate(self._windows):
        for k, v in m.items():
          w["sums"][k] = w["sums"].get(k, 0.0) + float(np.asarray(v[r], np.float64).sum())
        w["count"] += self.steps_per_epoch
      if sums is None:
        continue
      sums = jax.device_get(sums)
      step = epoch * self.steps_per_epoch
      for r in range(len(self.workdirs)):
        w = self._windows[r]
        record = {"step": step, "epoch": float(epoch), "wall_time_s": round(self.elapsed(), 2)}
        record.update({f"train/{k}": v / max(w["count"], 1) for k, v in w["sums"].items()})
        self._windows[r] = {"sums": {}, "count": 0}
        record.update(self.to_record(run_slice(sums, r)))
        self._writers[r].write(record)
        self.last_eval[r] = record
    self._pending = []

  def save(self) -> None:
    """Checkpoints every run (single-run format); refuses a non-finite state."""
    self.collect()
    if self.last_saved == self.step:
      return
    finite = np.asarray(jax.device_get(self._finite(self.states)))
    for r, (wd, ck) in enumerate(zip(self.workdirs, self._ckpts)):
      if not finite[r]:
        raise train.NonFiniteLossError(
            f"{wd}: non-finite parameters at step {self.step}: not checkpointed; "
            f"{train._last_good(self.last_saved, ck.directory)}")
      ck.save(self.step, self._run_state(r),
              {"arch": self.arch, "elapsed_s": self.elapsed(), "params": self.n_params,
               "stacked": len(self.seeds), "train_window": self._windows[r]})
    for ck in self._ckpts:
      ck.wait()
    self.last_saved = self.step

  def keep(self, n: int) -> None:
    """Keeps the first ``n`` runs in the stack (the others are checkpointed and left unfinished)."""
    if n >= len(self.seeds):
      return
    self.save()
    for ck in self._ckpts[n:]:
      ck.close()
    cut = lambda t: None if t is None else jax.device_get(jax.tree.map(lambda x: x[:n], t))  # noqa: E731
    trees = [cut(t) for t in (self.states, self.teacher_vars, self.objective, self.lr_scales)]
    self.seeds = self.seeds[:n]
    self._place_mesh(max(d for d in range(1, self.devices + 1) if n % d == 0))
    self.x_train, self.y_train = (jax.device_put(a, self._replicated) for a in (self.x_train, self.y_train))
    self.test_arrays = tuple(jax.device_put(a, self._replicated) for a in self.test_arrays)
    self.states, self.teacher_vars, self.objective, self.lr_scales = map(self._split, trees)
    self._compiled = {}  # new shapes: compiled again at the next dispatch
    for w in self._writers[n:]:
      w.close()
    for name in ("seeds", "workdirs", "configs", "_ckpts", "last_eval", "_windows", "_writers"):
      setattr(self, name, getattr(self, name)[:n])
    if self.teacher_summaries is not None:
      self.teacher_summaries = self.teacher_summaries[:n]
    self.epoch_seconds = []  # the smaller stack runs at its own speed

  def finish(self) -> list[dict]:
    """Writes each run's final.json (the single-run keys, plus ``stacked``: the stack size)."""
    self.save()
    out = []
    device = f"1 x {jax.devices()[0].device_kind}"  # each run trains on one device
    for r, wd in enumerate(self.workdirs):
      state = self._run_state(r)
      final = dict(self.last_eval[r]) or {"step": self.step, "epoch": float(self.epoch)}
      final["params"] = self.n_params
      final.update({f"bytes/{k}": v for k, v in self.task.sizes(state.params).items()})
      final["params_fingerprint"] = train.params_fingerprint(state.params, self.mesh)
      if self.teacher_summaries is not None:
        final["teacher"] = {k: v for k, v in self.teacher_summaries[r].items()
                            if k.startswith("test/booster_") or k in ("wall_time_s", "params")}
      final.update(device=device, stacked=len(self.seeds), stack_devices=self.devices,
                   finished_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
      (wd / "final.json").write_text(json.dumps(final, indent=1, sort_keys=True) + "\n")
      out.append(final)
    return out

  def close(self) -> None:
    for ck in self._ckpts:
      ck.close()
    for w in self._writers:
      w.close()


def train_stack(config, seeds: Sequence[int], workdirs: Sequence, *, per_run: Sequence[dict] | None = None,
                deadline: float | None = None, stop_after_epochs: int | None = None,
                checkpoint_every_epochs: int = 10, run_axis: str = "auto",
                scan_epochs: bool | None = None, devices: int = 1, log=print) -> list[dict] | None:
  """Trains ``config`` for each seed (with ``per_run``'s overrides of :data:`PER_RUN_FIELDS`, one
  dict per run, when given), stacked; returns the runs' final records, or None when
  ``deadline`` (a ``time.time()``; the next epoch would end after it), ``stop_after_epochs``
  (epochs trained by this call) or a signal stopped the stack first. A stopped stack is
  checkpointed: call again to resume. ``devices``: local devices the runs are split over (a
  divisor of the number of runs; 0: the most that divide it)."""
  workdirs = [pathlib.Path(w) for w in workdirs]
  finished = [(w / "final.json").is_file() for w in workdirs]
  if all(finished):
    return [json.loads((w / "final.json").read_text()) for w in workdirs]
  if any(finished):
    raise ConfigError("some runs of this stack are finished and some are not; stack the "
                      f"unfinished ones: {[str(w) for w, f in zip(workdirs, finished) if not f]}")
  with contextlib.ExitStack() as locks:
    for w in workdirs:
      w.mkdir(parents=True, exist_ok=True)
      locks.enter_context(train.run_lock(w))
    stack = Stack(config, seeds, workdirs, per_run=per_run, run_axis=run_axis,
                  scan_epochs=scan_epochs, devices=devices, log=log)
    try:
      with train._stop_signals() as stop:
        first = stack.epoch
        while not stack.done:
          per_epoch = stack.epoch_seconds[-1] if stack.epoch_seconds else 0.0
          why = ("signal" if stop else
                 "deadline" if deadline is not None and time.time() + per_epoch > deadline else
                 "stop_after_epochs" if stop_after_epochs is not None
                 and stack.epoch - first >= stop_after_epochs else "")
          if why:
            stack.save()
            log(f"{stack.label}: stopped at epoch {stack.epoch}/{stack.num_epochs} ({why}); "
                f"checkpointed, run again to resume")
            return None
          stack.dispatch()
          stack.collect()
          if checkpoint_every_epochs and stack.epoch % checkpoint_every_epochs == 0:
            stack.save()
          rec = stack.last_eval[0]
          if rec.get("epoch") == stack.epoch:
            log(f"{stack.label} epoch {stack.epoch}/{stack.num_epochs} "
                f"({stack.epoch_seconds[-1]:.1f} s): {stack.task.headline(rec)} (seed {stack.seeds[0]})")
      return stack.finish()
    finally:
      stack.close()
