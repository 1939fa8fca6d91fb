r"""The size/quality table of embedding compression: bytes vs AUC/GAUC/logloss of the light net.

    python -m rocket.ctr.compression_report --sweep_dir=/tmp/sweeps/ctr_frappe_compression \
        --out=paper_repro/results/ctr_frappe_compression

Reads a ``rocket.sweep`` run of ``paper_repro/sweeps/ctr_compression.py`` (runs named
``<method>-<compression>``).  For every run: the light net's serving bytes (embedding tables +
its own layers, from ``final.json``) and its test AUC/GAUC/logloss at the epoch of best
validation AUC (mean ± std over seeds).  For the ``*-fp32`` runs it adds post-training int8
rows (``+int8_ptq``): the last checkpoint's embedding tables quantised per row
(:func:`rocket.ctr.embeddings.quantize_int8`) against the same checkpoint in float32, so the
difference is the quantisation alone.  Writes ``table.md``, ``tradeoff.png`` (bytes vs AUC)
and ``rows.json``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import time

from absl import app, flags, logging

from rocket import report


def _ms(values, digits=4) -> str:
  return report.mean_std(values, digits)


def ptq_rows(sweep_dir, runs) -> list[dict]:
  """Post-training int8 vs float32 on the last checkpoint of every ``*-fp32`` run."""
  from rocket import train  # noqa: PLC0415
  from rocket.ctr import export  # noqa: PLC0415
  from rocket.ctr.embeddings import embedding_bytes  # noqa: PLC0415

  out = []
  for run in runs:
    if not run["name"].endswith("-fp32") or not run["seeds"]:
      continue
    per = {"fp32": [], "int8": []}
    nbytes = {}
    for seed in run["seeds"]:
      loaded = train.load_run(pathlib.Path(sweep_dir) / run["name"] / f"seed{seed}")
      for kind, int8 in (("fp32", False), ("int8", True)):
        per[kind].append(export.evaluate(loaded, "light", int8))
        nbytes[kind] = embedding_bytes(export.serving_params(loaded, "light", int8))
    for kind in ("fp32", "int8"):
      out.append({
          "name": f"{run['name']} (last checkpoint{', int8 PTQ' if kind == 'int8' else ''})",
          "n": len(per[kind]), "bytes": nbytes[kind],
          "auc": [m["auc"] for m in per[kind]], "gauc": [m["gauc"] for m in per[kind]],
          "logloss": [m["logloss"] for m in per[kind]]})
  return out


def _served_int8_bytes(sweep_dir, run) -> int:
  """Bytes of a QAT-trained light net as served (int8 tables), from its first seed's checkpoint."""
  from rocket import train  # noqa: PLC0415
  from rocket.ctr import export  # noqa: PLC0415
  from rocket.ctr.embeddings import embedding_bytes  # noqa: PLC0415

  seed = sorted(run["seeds"])[0]
  loaded = train.load_run(pathlib.Path(sweep_dir) / run["name"] / f"seed{seed}")
  return embedding_bytes(export.serving_params(loaded, "light", int8=True))


def trained_rows(runs, sweep_dir=None) -> list[dict]:
  rows = []
  for run in runs:
    if not run["seeds"]:
      continue
    s = report.summarize_ctr(run)
    config = next(iter(run["seeds"].values()))["config"]
    if sweep_dir is not None and config.get("embedding", {}).get("qat"):
      s["light_bytes"] = _served_int8_bytes(sweep_dir, run)  # trained in float32, served in int8
    rows.append({"name": run["name"], "n": s["n"], "bytes": s["light_bytes"],
                 "emb_bytes": s["light_emb_bytes"], "auc": s["light_auc"], "gauc": s["light_gauc"],
                 "logloss": s["light_logloss"]})
  return rows


def write(sweep_dir, out, title: str, note: str = "", with_ptq: bool = True) -> str:
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  runs = report.collect(sweep_dir)
  rows = trained_rows(runs, sweep_dir if with_ptq else None)
  if not rows:
    raise ValueError(f"no finished run under {sweep_dir}")
  ptq = ptq_rows(sweep_dir, runs) if with_ptq else []
  base = {r["name"].split("-")[0]: r["bytes"] for r in rows if r["name"].endswith("-fp32")}
  lines = [f"# {title}", ""] + ([note, ""] if note else []) + [
      f"Table written {time.strftime('%Y-%m-%d')} by `python -m rocket.ctr.compression_report "
      f"{' '.join(sys.argv[1:])}`.", "",
      "Light net only (the served net). *bytes*: everything the light net reads at serving time "
      "(embedding tables + its own layers), from the parameters' actual dtypes; *×*: size relative to "
      "the float32 run of the same method; QAT runs (`int8_qat`) are counted as served, with int8 tables. "
      "Test metrics at the epoch of best validation AUC, mean ± std "
      "over seeds.", "",
      "| run | seeds | bytes | × | test AUC | test GAUC | test logloss |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    ref = base.get(r["name"].split("-")[0])
    ratio = f"{r['bytes'] / ref:.3f}" if ref and r["bytes"] else "–"
    lines.append(f"| {r['name']} | {r['n']} | {r['bytes']:,} | {ratio} | {_ms(r['auc'])} | "
                 f"{_ms(r['gauc'])} | {_ms(r['logloss'])} |")
  if ptq:
    lines += ["", "Post-training int8 (per-row symmetric, float32 scale) of the *last* checkpoint, "
              "against the same checkpoint in float32.", "",
              "| checkpoint | seeds | light bytes | test AUC | test GAUC | test logloss |",
              "|---|---|---|---|---|---|"]
    for r in ptq:
      lines.append(f"| {r['name']} | {r['n']} | {r['bytes']:,} | {_ms(r['auc'])} | {_ms(r['gauc'])} | "
                   f"{_ms(r['logloss'])} |")
  table = "\n".join(lines) + "\n"
  (out / "table.md").write_text(table)
  (out / "rows.json").write_text(json.dumps({"trained": rows, "ptq": ptq}, indent=1))
  _plot(rows, out / "tradeoff.png", title)
  return table


def _plot(rows, path, title):
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, axes = plt.subplots(1, 2, figsize=(12, 5))
  for ax, key in zip(axes, ("auc", "gauc")):
    for r in rows:
      if not r[key] or not r["bytes"]:
        continue
      marker = "o" if r["name"].startswith("rocket") else "s"
      ax.errorbar([r["bytes"]], [statistics.mean(r[key])],
                  yerr=[statistics.stdev(r[key]) if len(r[key]) > 1 else 0], fmt=marker, capsize=3)
      ax.annotate(r["name"], (r["bytes"], statistics.mean(r[key])), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("light-net bytes at serving time")
    ax.set_ylabel(f"test {key.upper()} (best-valid epoch)")
    ax.grid(alpha=0.3)
  fig.suptitle(title + "  (o: rocket light, s: light alone)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


FLAGS = flags.FLAGS


def define_flags() -> None:
  report.define_flags()
  flags.DEFINE_bool("ptq", True, "Add post-training int8 rows (loads the fp32 checkpoints).")


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    print(write(FLAGS.sweep_dir, FLAGS.out, FLAGS.title, FLAGS.note, FLAGS.ptq))
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e


def run() -> None:
  """The console script ``rocket-compression-report`` (``python -m rocket.ctr.compression_report``)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
