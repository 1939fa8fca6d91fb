r"""Turns one GPU window into finished full-scale paper runs.

    python -m paper_repro.gpu_campaign --budget_s=480 --out=$OUT

What it runs: the runs of ``--sweep`` (default: Table 1 at full scale,
``paper_repro/sweeps/cifar10_methods_full.py`` on ``paper_repro/configs/paper.py:cifar10``) named by
``--runs`` (default: the interval WRN-16-1 + WRN-40-1 row's light alone and rocket), every seed of
``--seeds``, skipping the ones already finished in ``--results`` (results accumulate across GPU
windows). Each run is one seed of a :class:`rocket.stacked.Stack` (all seeds of a run name train as
one jitted program, an epoch per dispatch); the stacks advance an epoch each in turn.

How it fits the budget: it first times a train step of the costliest stack with its runs vmapped
and unrolled and keeps the faster; after two epochs it projects the finish time and, when the runs
would not finish inside ``--budget_s``, keeps fewer seeds (the same number in every stack; the
others stay checkpointed at that epoch). At the deadline everything is checkpointed.

Runs with a teacher (KD, AT, rocket+KD) learn from finished booster-alone runs of the same seed:
``teacher_<run>_seed<s>.tar`` files (a finished run's small files and its final checkpoint) that a
window writes for every finished run another run of the sweep names as its teacher, and that
``--teachers_from`` unpacks on the next, bare machine. A teacher run's seeds without one are
skipped, with a line saying what to pass.

What it writes: ``--workdir`` holds the sweep layout (``sweep.json``, ``<run>/seed<s>/``) that
``rocket.report`` and ``paper_repro/compare.py`` read; ``--out`` gets ``results.tar.gz`` (the
finished and unfinished runs' ``config.json``, ``metrics.jsonl``, ``final.json``, no checkpoints,
plus ``campaign.json``: device, versions, date, budget, the probe, epoch times, what finished) and
``campaign.json`` beside it. Unpack the tarball into ``paper_repro/results/<name>/`` and commit it.

Tested end to end on CPU with a tiny budget (tests/gpu_campaign_test.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import platform
import shutil
import sys
import tarfile
import time

from absl import app, flags, logging

ROOT = pathlib.Path(__file__).resolve().parents[1]

DEFAULT_RUNS = ("wrn16-1_40-1__light", "wrn16-1_40-1__rocket")
_F = None


def define_flags():
  global _F
  from ml_collections import config_flags  # noqa: PLC0415

  _F = {
      "config": config_flags.DEFINE_config_file(
          "config", str(ROOT / "paper_repro/configs/paper.py") + ":cifar10", "Base config.",
          lock_config=True),
      "sweep": flags.DEFINE_string("sweep", str(ROOT / "paper_repro/sweeps/cifar10_methods_full.py"),
                                   "Sweep file naming the runs."),
      "runs": flags.DEFINE_list("runs", list(DEFAULT_RUNS), "Run names of the sweep, in priority order."),
      "seeds": flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run."),
      "budget_s": flags.DEFINE_float("budget_s", 480, "Seconds from start to the last checkpoint."),
      "out": flags.DEFINE_string("out", "", "Folder for results.tar.gz and campaign.json."),
      "workdir": flags.DEFINE_string("workdir", "/tmp/gpu_campaign", "Where the runs train."),
      "results": flags.DEFINE_string("results", "", "Finished runs of earlier windows (sweep "
                                     "layout): skipped here."),
      "resume_from": flags.DEFINE_string(
          "resume_from", "", "A folder holding an earlier window's resume_<run>.tar files: their "
          "runs continue from those checkpoints (and only their seeds are trained)."),
      "teachers_from": flags.DEFINE_string(
          "teachers_from", "", "A folder holding teacher_<run>_seed<s>.tar files (finished "
          "booster runs with their final checkpoint, written by an earlier window): the runs "
          "that learn from them can train."),
      "max_stacks": flags.DEFINE_integer("max_stacks", 2, "Run names trained side by side."),
      "devices": flags.DEFINE_integer("devices", 0, "Local devices each stack's runs are split "
                                      "over (a divisor of its seeds); 0: the most that divide."),
      "run_axis": flags.DEFINE_enum("run_axis", "probe", ["probe", "vmap", "unrolled"],
                                    "How a stack holds its runs; probe: time both, keep the faster."),
      "max_epochs": flags.DEFINE_integer("max_epochs", 0, "Stop (checkpointed) after this many "
                                         "epochs in this window; 0: only the budget stops it."),
      "checkpoint_every_epochs": flags.DEFINE_integer("checkpoint_every_epochs", 25,
                                                      "Checkpoint cadence (and at the end)."),
  }


def say(msg: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pick_runs(sweep: dict, names, seeds, results: pathlib.Path | None, resumable=None,
              teachers=None):
  """``[(run, [seeds still to train])]`` in priority order. A run with seeds in ``resumable``
  (``{run: [seeds]}`` with checkpoints) trains only those; a run with a teacher trains only the
  seeds ``teachers`` (``{teacher run: [seeds finished here]}``) has."""
  resumable, teachers = resumable or {}, teachers or {}
  by_name = {r["name"]: r for r in sweep["runs"]}
  todo = []
  for name in names:
    if name not in by_name:
      raise app.UsageError(f"--runs: {name!r} is not a run of the sweep; choose from "
                           f"{sorted(by_name)}")
    run = by_name[name]
    left = [s for s in seeds
            if results is None or not (results / name / f"seed{s}" / "final.json").is_file()]
    teacher = run.get("teacher")
    if teacher:
      missing = [s for s in left if s not in teachers.get(teacher, ())]
      if missing:
        say(f"{name}: its teacher {teacher} has no finished run here for seeds {missing}: skipped "
            f"(train {teacher} first; pass --teachers_from=<folder with "
            f"teacher_{teacher}_seed<s>.tar>)")
      left = [s for s in left if s not in missing]
    started = [s for s in left if s in resumable.get(name, ())]
    if started:  # finish what an earlier window started before starting anything new
      left = started
    if left:
      todo.append((run, left))
  return todo


def fewer_seeds(stacks, need: float, have: float, dropped: dict, why: str) -> bool:
  """Keeps ``floor(R * have / need)`` (at least 1) seeds in every stack when ``need`` seconds
  exceed ``have``; the others stay checkpointed (recorded in ``dropped``). Whether it cut."""
  n = len(stacks[0].seeds)
  if need <= have or n <= 1:
    return False
  keep = max(1, int(n * have / need))
  say(f"{why}, {have:.0f} s left: keeping {keep} of {n} seeds per stack (the rest stay "
      f"checkpointed at epoch {stacks[0].epoch})")
  for s in stacks:
    dropped.update({f"{s.label}/seed{x}": s.epoch for x in s.seeds[keep:]})
    s.keep(keep)
  return True


def unpack_resume(folder: pathlib.Path, workdir: pathlib.Path) -> dict[str, list[int]]:
  """Extracts every ``resume_<run>.tar`` of ``folder`` into ``workdir``; ``{run: [seeds]}``."""
  found: dict[str, list[int]] = {}
  for tar_path in sorted(folder.glob("resume_*.tar")):
    with tarfile.open(tar_path) as tar:
      tar.extractall(workdir, filter="data")
      for name in tar.getnames():
        parts = pathlib.PurePosixPath(name).parts
        if len(parts) >= 2 and parts[1].startswith("seed") and parts[1][4:].isdigit():
          found.setdefault(parts[0], [])
          if int(parts[1][4:]) not in found[parts[0]]:
            found[parts[0]].append(int(parts[1][4:]))
  return found


def pack_resume(workdir: pathlib.Path, out: pathlib.Path, stacks, limit_mb: float = 15.0) -> dict:
  """``resume_<run>.tar`` per unfinished stack: each seed's newest checkpoint and its small files
  (a GPU machine starts bare: these are what lets the next window continue). Returns sizes (MB)."""
  sizes = {}
  for s in stacks:
    if not s.done:
      sizes[s.label] = tar_runs(out / f"resume_{s.label}.tar", workdir, s.workdirs,
                                ("config.json", "metrics.jsonl"), limit_mb, "; stack fewer seeds")
  return sizes


def tar_runs(path: pathlib.Path, workdir: pathlib.Path, dirs, files, limit_mb: float,
             advice: str = "") -> float:
  """Writes ``path``: each run dir's newest checkpoint and its ``files`` (those present), under
  their paths relative to ``workdir``; deletes it again (saying so) when it is over ``limit_mb``,
  the most a file may have to come back from the device. Returns its size in MiB."""
  with tarfile.open(path, "w") as tar:
    for wd in dirs:
      rel = wd.relative_to(workdir)
      ck = wd / "checkpoints"
      steps = sorted((int(p.name) for p in ck.iterdir() if p.name.isdigit()), reverse=True)
      if steps:
        tar.add(ck / str(steps[0]), str(rel / "checkpoints" / str(steps[0])))
      for f in files:
        if (wd / f).is_file():
          tar.add(wd / f, str(rel / f))
  size = round(path.stat().st_size / 2**20, 2)
  if size > limit_mb:
    path.unlink()
    say(f"{path.name} is {size} MiB, over the {limit_mb} MiB a file may have to come back: not "
        f"written{advice}")
  return size


def unpack_teachers(folder: pathlib.Path, workdir: pathlib.Path) -> dict[str, list[int]]:
  """Extracts every ``teacher_<run>_seed<s>.tar`` of ``folder`` into ``workdir``; the finished
  runs found there, ``{run: [seeds]}``."""
  for tar_path in sorted(folder.glob("teacher_*.tar")):
    with tarfile.open(tar_path) as tar:
      tar.extractall(workdir, filter="data")
  return finished_runs(workdir)


def finished_runs(workdir: pathlib.Path) -> dict[str, list[int]]:
  """``{run: [seeds]}`` of the runs in ``workdir`` with a final.json and a checkpoint."""
  found: dict[str, list[int]] = {}
  for final in sorted(workdir.glob("*/seed*/final.json")):
    seed_dir = final.parent
    if seed_dir.name[4:].isdigit() and any((seed_dir / "checkpoints").glob("[0-9]*")):
      found.setdefault(seed_dir.parent.name, []).append(int(seed_dir.name[4:]))
  return found


def pack_teachers(workdir: pathlib.Path, out: pathlib.Path, sweep: dict, stacks,
                  limit_mb: float = 15.0) -> dict:
  """``teacher_<run>_seed<s>.tar`` for each finished seed of a run that another run of the sweep
  learns from: its small files and its final checkpoint (what a KD/AT run of a later window
  loads). Returns the sizes (MiB)."""
  teachers = {r["teacher"] for r in sweep["runs"] if r.get("teacher")}
  sizes = {}
  for s in stacks:
    if s.label not in teachers or not s.done:
      continue
    for seed, wd in zip(s.seeds, s.workdirs):
      name = f"teacher_{s.label}_seed{seed}.tar"
      sizes[name] = tar_runs(out / name, workdir, [wd], ("config.json", "metrics.jsonl", "final.json"),
                             limit_mb)
  return sizes


def pack(workdir: pathlib.Path, out: pathlib.Path, summary: dict) -> None:
  """results.tar.gz: every run's small files (no checkpoints) and the campaign summary."""
  out.mkdir(parents=True, exist_ok=True)
  (workdir / "campaign.json").write_text(json.dumps(summary, indent=1) + "\n")
  shutil.copy(workdir / "campaign.json", out / "campaign.json")
  with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
    tar.add(workdir / "campaign.json", "campaign.json")
    tar.add(workdir / "sweep.json", "sweep.json")
    for f in sorted(workdir.glob("*/seed*/*")):
      if f.name in ("config.json", "metrics.jsonl", "final.json"):
        tar.add(f, str(f.relative_to(workdir)))


def main(argv):
  del argv
  t_start = time.time()
  logging.set_verbosity(logging.WARNING)  # orbax logs every manager it creates at INFO
  import jax  # noqa: PLC0415

  from rocket import stacked, sweep as sweep_lib  # noqa: PLC0415
  from rocket.config_util import apply_overrides  # noqa: PLC0415

  deadline = t_start + _F["budget_s"].value
  workdir = pathlib.Path(_F["workdir"].value)
  out = pathlib.Path(_F["out"].value) if _F["out"].value else workdir / "out"
  results = pathlib.Path(_F["results"].value) if _F["results"].value else None
  seeds = [int(s) for s in _F["seeds"].value]
  try:
    sweep = sweep_lib.load_sweep(_F["sweep"].value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  workdir.mkdir(parents=True, exist_ok=True)
  resumable = {}
  if _F["resume_from"].value:
    resumable = unpack_resume(pathlib.Path(_F["resume_from"].value), workdir)
    say(f"resuming {resumable} from {_F['resume_from'].value}")
  teachers = finished_runs(workdir)
  if _F["teachers_from"].value:
    teachers = unpack_teachers(pathlib.Path(_F["teachers_from"].value), workdir)
    say(f"finished runs to learn from: {teachers}")
  todo = pick_runs(sweep, _F["runs"].value, seeds, results, resumable,
                   teachers)[:_F["max_stacks"].value]
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  summary = {"command": sys.argv, "device": device, "backend": jax.default_backend(),
             "versions": {"jax": jax.__version__, "python": platform.python_version(),
                          **_versions()},
             "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
             "budget_s": _F["budget_s"].value, "planned": {r["name"]: s for r, s in todo}}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "sweep.json").write_text(json.dumps(
      {"sweep_file": _F["sweep"].value, "seeds": seeds, "runs": [r for r, _ in todo],
       "base_config": _F["config"].value.to_dict(), "argv": sys.argv}, indent=1, default=str))
  if not todo:
    say("nothing to do: every requested run is finished in --results")
    pack(workdir, out, summary)
    return
  say(f"{device}; plan: {summary['planned']}; budget {_F['budget_s'].value:.0f} s")

  stacks, dropped = [], {}
  for run, left in todo:
    extra = ({"teacher_workdir": str(workdir / run["teacher"] / "seed{seed}")}
             if run.get("teacher") else {})
    config = apply_overrides(_F["config"].value, {**run.get("overrides", {}), **extra})
    dirs = [sweep_lib.run_dir(workdir, run["name"], s) for s in left]
    stacks.append(stacked.Stack(config, left, dirs, label=run["name"], devices=_F["devices"].value,
                                log=say))
  say(f"stacks built in {time.time() - t_start:.0f} s")

  # 1. vmap or unrolled: time one train step of the costliest stack both ways
  axis = _F["run_axis"].value
  probe = {}
  if axis == "probe":
    costly = max(stacks, key=lambda s: s.n_params["total"])
    for a in ("vmap", "unrolled"):
      costly.set_run_axis(a)
      t = time.time()
      probe[a] = costly.time_steps(5)
      say(f"probe {costly.label} x{len(costly.seeds)} {a}: {1e3 * probe[a]:.1f} ms/step "
          f"(compile + timing {time.time() - t:.0f} s)")
    axis = min(probe, key=probe.get)
  for s in stacks:
    s.set_run_axis(axis)
  summary.update(run_axis=axis, probe_s_per_step=probe)
  first_round = min(probe.values(), default=0.0) * sum(s.steps_per_epoch for s in stacks)
  if probe:  # fewer seeds now, before compiling, when even the probed stack alone cannot finish
    costly = max(stacks, key=lambda s: s.n_params["total"])
    need = min(probe.values()) * costly.steps_per_epoch * (costly.num_epochs - costly.epoch)
    have = deadline - time.time() - 60  # the compiles
    fewer_seeds(stacks, need, have, dropped, f"probe: {costly.label} alone needs ~{need:.0f} s")

  # 2. compile every stack's programs side by side
  t = time.time()
  with concurrent.futures.ThreadPoolExecutor(len(stacks)) as pool:
    compile_s = list(pool.map(lambda s: s.compile(), stacks))
  summary["compile_s"] = {s.label: round(c, 1) for s, c in zip(stacks, compile_s)}
  say(f"compiled ({axis}) in {time.time() - t:.0f} s: {summary['compile_s']}")

  # 3. epochs in turn; fewer seeds when the projection misses the deadline
  rounds, images, measured, stopped = [], [], 0, False
  ckpt_every = _F["checkpoint_every_epochs"].value
  while True:
    active = [s for s in stacks if not s.done]
    if not active:
      break
    # before the first round: the probe's step time for every stack (an overestimate)
    per_round = rounds[-1] if rounds else first_round
    if time.time() + per_round > deadline or (
        _F["max_epochs"].value and len(rounds) >= _F["max_epochs"].value):
      stopped = True
      break
    t = time.time()
    images.append(sum(s.steps_per_epoch * s.configs[0].batch_size * len(s.seeds) for s in active))
    for s in active:
      s.dispatch()
    for s in active:
      s.collect()
      if ckpt_every and s.epoch % ckpt_every == 0:
        s.save()
    rounds.append(time.time() - t)
    measured += 1
    left_epochs = max(s.num_epochs - s.epoch for s in active)
    head = active[-1]
    say(f"epoch {head.epoch}/{head.num_epochs}: {rounds[-1]:.2f} s; "
        + "; ".join(f"{s.label} {s.task.headline(s.last_eval[0])}" for s in active
                    if s.last_eval[0].get("epoch") == s.epoch))
    if measured >= 2 and left_epochs:
      need = left_epochs * rounds[-1] * 1.02
      if fewer_seeds(active, need, deadline - time.time(), dropped,
                     f"projected {need:.0f} s for {left_epochs} epochs"):
        measured = 0
  for s in stacks:
    if s.done:
      s.finish()
    else:
      s.save()
    s.close()
  summary.update(
      wall_s=round(time.time() - t_start, 1), epoch_round_s=[round(r, 3) for r in rounds],
      stopped_at_deadline=stopped,
      runs={s.label: {"seeds": s.seeds, "epochs": s.epoch, "of": s.num_epochs, "finished": s.done}
            for s in stacks},
      dropped_at_epoch=dropped)
  out.mkdir(parents=True, exist_ok=True)
  summary["resume_tar_mib"] = pack_resume(workdir, out, stacks)
  summary["teacher_tar_mib"] = pack_teachers(workdir, out, sweep, stacks)
  if len(rounds) > 2:  # the median round after the first (compiled) one
    rates = sorted(i / r for i, r in zip(images[1:], rounds[1:]))
    summary["train_images_per_s"] = round(rates[len(rates) // 2])
  pack(workdir, out, summary)
  say(f"done in {summary['wall_s']:.0f} s: {summary['runs']}")


def _versions() -> dict:
  out = {}
  for mod in ("flax", "optax", "orbax.checkpoint", "numpy", "ml_collections"):
    try:
      out[mod] = __import__(mod, fromlist=["_"]).__version__
    except Exception:  # noqa: BLE001
      out[mod] = "?"
  return out


if __name__ == "__main__":
  define_flags()
  app.run(main)
