r"""Tables and plots from sweep workdirs.

    python -m rocket.report --sweep_dir=/tmp/sweep_ablation \
        --out=paper_repro/results/ablation_cifar10_cpu --title="CIFAR-10 ablation (CPU scale)"

Writes into ``--out``:

* ``table.md``   -- one row per run: mean +- std over seeds of the final and best
  light-net test error, the booster's (or teacher's) final test error, the
  parameters each net uses, and the train wall time;
* ``curves.png`` -- light-net test error against epoch, mean over seeds;
* ``runs.json``  -- the per-seed numbers behind the table (final records and curves),
  so the results survive the workdirs.

The functions are reused by ``paper_repro/``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Flags of ``python -m rocket.report`` (only defined when run as a program)."""
  flags.DEFINE_string("sweep_dir", None, "Root of a rocket.sweep run.")
  flags.DEFINE_string("out", None, "Folder for table.md, curves.png, runs.json.")
  flags.DEFINE_string("title", "Sweep results", "Table title.")
  flags.DEFINE_string("note", "", "Free text placed under the title (budget, data, ...).")
  flags.mark_flags_as_required(["sweep_dir", "out"])


def read_run(wd: pathlib.Path) -> dict | None:
  """One finished run: final record, curve and config; None when unfinished."""
  if not (wd / "final.json").is_file():
    return None
  final = json.loads((wd / "final.json").read_text())
  curve = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines() if x.strip()]
  config = json.loads((wd / "config.json").read_text())
  return {"final": final, "curve": curve, "config": config}


def collect(sweep_dir) -> list[dict]:
  """Runs of a sweep in plan order: ``{name, overrides, seeds: {seed: run}}``."""
  root = pathlib.Path(sweep_dir)
  plan = json.loads((root / "sweep.json").read_text())
  out = []
  for run in plan["runs"]:
    seeds = {}
    for s in plan["seeds"]:
      r = read_run(root / run["name"] / f"seed{s}")
      if r is not None:
        seeds[s] = r
    out.append({"name": run["name"], "overrides": run.get("overrides", {}), "seeds": seeds})
  return out


def mean_std(values, digits: int = 2) -> str:
  """``"mean ± std"`` over seeds (the value alone for one seed, "–" for none)."""
  if not values:
    return "–"
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summarize(run: dict) -> dict:
  """Numbers of one table row (errors in %)."""
  finals = [r["final"] for r in run["seeds"].values()]
  curves = [r["curve"] for r in run["seeds"].values()]
  light_final = [100 * (1 - f["test/light_accuracy"]) for f in finals if "test/light_accuracy" in f]
  light_best = [100 * (1 - max(c["test/light_accuracy"] for c in cv))
                for cv in curves if cv and "test/light_accuracy" in cv[0]]
  boost = []
  for f in finals:
    acc = f.get("test/booster_accuracy", f.get("teacher", {}).get("test/booster_accuracy"))
    if acc is not None:
      boost.append(100 * (1 - acc))
  params = finals[0]["params"] if finals else {}
  teacher_params = finals[0].get("teacher", {}).get("params", {}) if finals else {}
  time_min = [(f.get("wall_time_s", 0) + f.get("teacher", {}).get("wall_time_s", 0)) / 60
              for f in finals]
  return {
      "name": run["name"], "n": len(finals),
      "light_final": light_final, "light_best": light_best, "booster": boost,
      "light_params": params.get("light"),
      "booster_params": params.get("booster", teacher_params.get("booster")),
      "time_min": time_min,
      # the booster column shows the teacher only where no booster was co-trained (kd/at/at_kd)
      "teacher": bool(teacher_params) and "booster" not in params,
      "device": finals[0].get("device", "?") if finals else "?",
  }


def _preamble(rows: list[dict], title: str, note: str) -> list[str]:
  """Title, note, the devices that produced the runs and the command that wrote the table."""
  devices = sorted({r["device"] for r in rows if r["n"]})
  lines = [f"# {title}", ""] + ([note, ""] if note else [])
  return lines + [f"Device(s) that produced the runs: {', '.join(devices) or '?'}. "
                  f"Table written {time.strftime('%Y-%m-%d')} by `python -m rocket.report "
                  f"{' '.join(sys.argv[1:])}`.", ""]


def _not_run(rows: list[dict]) -> list[str]:
  """The runs of the sweep with no finished seed (e.g. left out by ``--only``), under the table."""
  missing = [r["name"] for r in rows if not r["n"]]
  return ["", f"Not run (no finished seed in this sweep): {', '.join(missing)}."] if missing else []


def markdown_table(runs: list[dict], title: str, note: str = "") -> str:
  rows = [summarize(r) for r in runs]
  lines = _preamble(rows, title, note) + [
            "Errors are test error in % (mean ± std over seeds); *best* is the lowest error over "
            "the evaluations of a run. Booster column: the co-trained booster, or for kd/at/at_kd "
            "the teacher (marked †). Params: parameters each net uses (shared layers counted in "
            "both). Time: train wall time per seed, teacher included for kd/at/at_kd/rocket_kd.", "",
            "| run | seeds | light err (final) | light err (best) | booster err | light params | "
            "booster params | time (min) |",
            "|---|---|---|---|---|---|---|---|"]
  for r in (r for r in rows if r["n"]):
    boost = mean_std(r["booster"]) + (" †" if r["teacher"] and r["booster"] else "")
    fmt = lambda n: f"{n:,}" if n else "–"  # noqa: E731
    lines.append(f"| {r['name']} | {r['n']} | {mean_std(r['light_final'])} | "
                 f"{mean_std(r['light_best'])} | {boost} | {fmt(r['light_params'])} | "
                 f"{fmt(r['booster_params'])} | {mean_std(r['time_min'])} |")
  return "\n".join(lines + _not_run(rows)) + "\n"


# --------------------------------------------------------------------------- CTR


def is_ctr(runs: list[dict]) -> bool:
  return any(r["config"].get("task") == "ctr" for run in runs for r in run["seeds"].values())


def best_valid_record(curve: list[dict], net: str) -> dict:
  """The evaluation with the best validation AUC of ``net`` (early stopping); the last one if
  the run has no validation split."""
  key = f"valid/{net}_auc"
  scored = [r for r in curve if key in r]
  return max(scored, key=lambda r: r[key]) if scored else curve[-1]


def summarize_ctr(run: dict) -> dict:
  out = {"name": run["name"], "n": len(run["seeds"])}
  for net in ("light", "booster"):
    for k in ("auc", "gauc", "logloss"):
      out[f"{net}_{k}"] = []
  finals = [r["final"] for r in run["seeds"].values()]
  for r in run["seeds"].values():
    for net in ("light", "booster"):
      if not r["curve"] or f"test/{net}_auc" not in r["curve"][-1]:
        continue
      rec = best_valid_record(r["curve"], net)
      for k in ("auc", "gauc", "logloss"):
        out[f"{net}_{k}"].append(rec[f"test/{net}_{k}"])
  out["epochs"] = [best_valid_record(r["curve"], "light")["epoch"] for r in run["seeds"].values()
                   if r["curve"] and "test/light_auc" in r["curve"][-1]]
  f0 = finals[0] if finals else {}
  out["light_params"] = f0.get("params", {}).get("light")
  out["light_bytes"] = f0.get("bytes/light_bytes")
  out["light_emb_bytes"] = f0.get("bytes/light_embedding_bytes")
  out["time_min"] = [f.get("wall_time_s", 0) / 60 for f in finals]
  out["device"] = f0.get("device", "?")
  return out


def _ms4(values) -> str:
  return mean_std(values, 4)


def markdown_table_ctr(runs: list[dict], title: str, note: str = "") -> str:
  rows = [summarize_ctr(r) for r in runs]
  lines = _preamble(rows, title, note) + [
            "Test metrics (mean ± std over seeds) at the epoch with each net's best *validation* AUC "
            "(early stopping; the epoch is listed for the light net). GAUC: per-user AUC weighted by "
            "the user's test impressions, users with one class only skipped. Bytes: what the light "
            "net needs at serving time (its embedding tables + its own layers).", "",
            "| run | seeds | light AUC | light GAUC | light logloss | booster AUC | booster GAUC | "
            "light epoch | light bytes | of which embeddings | time (min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda n: f"{n:,}" if n else "–"  # noqa: E731
  for r in (r for r in rows if r["n"]):
    lines.append(
        f"| {r['name']} | {r['n']} | {_ms4(r['light_auc'])} | {_ms4(r['light_gauc'])} | "
        f"{_ms4(r['light_logloss'])} | {_ms4(r['booster_auc'])} | {_ms4(r['booster_gauc'])} | "
        f"{mean_std(r['epochs'])} | {fmt(r['light_bytes'])} | {fmt(r['light_emb_bytes'])} | "
        f"{mean_std(r['time_min'])} |")
  return "\n".join(lines + _not_run(rows)) + "\n"


def plot_ctr(runs: list[dict], path, title: str = "") -> None:
  """Light-net validation AUC per epoch (mean over seeds), and test AUC against light bytes."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5))
  for run in runs:
    curves = [r["curve"] for r in run["seeds"].values()
              if r["curve"] and "valid/light_auc" in r["curve"][0]]
    if curves:
      n = min(len(c) for c in curves)
      ax.plot([curves[0][i]["epoch"] for i in range(n)],
              [statistics.mean(c[i]["valid/light_auc"] for c in curves) for i in range(n)],
              marker="o", markersize=3, label=run["name"])
    s = summarize_ctr(run)
    if s["light_auc"] and s["light_bytes"]:
      bx.scatter([s["light_bytes"]], [statistics.mean(s["light_auc"])])
      bx.annotate(run["name"], (s["light_bytes"], statistics.mean(s["light_auc"])), fontsize=7)
  ax.set_xlabel("epoch")
  ax.set_ylabel("light-net validation AUC")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  bx.set_xscale("log")
  bx.set_xlabel("light-net bytes at serving time")
  bx.set_ylabel("light-net test AUC (best-valid epoch)")
  bx.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_curves(runs: list[dict], path, title: str = "") -> None:
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, ax = plt.subplots(figsize=(8, 5))
  for run in runs:
    curves = [r["curve"] for r in run["seeds"].values()
              if r["curve"] and "test/light_accuracy" in r["curve"][0]]
    if not curves:
      continue
    n = min(len(c) for c in curves)
    epochs = [curves[0][i]["epoch"] for i in range(n)]
    err = [100 * (1 - statistics.mean(c[i]["test/light_accuracy"] for c in curves))
           for i in range(n)]
    style = "-" if run["name"].startswith("rocket") else "--"
    ax.plot(epochs, err, style, marker="o", markersize=3, label=run["name"])
  ax.set_xlabel("epoch")
  ax.set_ylabel("light-net test error (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_report(sweep_dir, out, title: str, note: str = "") -> str:
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  runs = collect(sweep_dir)
  if not any(r["seeds"] for r in runs):
    raise ValueError(f"no finished run under {sweep_dir}")
  if is_ctr(runs):
    table = markdown_table_ctr(runs, title, note)
    plot_ctr(runs, out / "curves.png", title)
  else:
    table = markdown_table(runs, title, note)
    plot_curves(runs, out / "curves.png", title)
  (out / "table.md").write_text(table)
  slim = [{"name": r["name"], "overrides": r["overrides"],
           "seeds": {str(s): {"final": v["final"], "curve": v["curve"], "config": v["config"]}
                     for s, v in r["seeds"].items()}}
          for r in runs]
  (out / "runs.json").write_text(json.dumps(slim, indent=1))
  return table


def main(argv):
  del argv
  try:
    print(write_report(FLAGS.sweep_dir, FLAGS.out, FLAGS.title, FLAGS.note))
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e


def run() -> None:
  """The console script ``rocket-report`` (the same as ``python -m rocket.report``)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
