r"""The README's opening figure, from committed results only.

    python -m paper_repro.readme_figure   # writes paper_repro/results/readme_figure.png

Left: light-net test error over training on the GPU. These are the paper's nets and schedule,
WRN-16-1 alone and WRN-16-1 co-trained with WRN-40-1 (`results/gpu_campaign_h200_2026-11-28/`,
seed 0, unfinished at epoch 103 of 200). Dashed lines: the paper's final errors. Right: the
CPU-scale result (WRN-10-1 + WRN-16-1, 1500 steps, 3 seeds,
`results/rocket_vs_light_cifar10_cpu_long/`).
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m paper_repro.readme_figure")

from paper_repro import paper_numbers as pn  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
GPU = RESULTS / "gpu_campaign_h200_2026-11-28"
CPU = RESULTS / "rocket_vs_light_cifar10_cpu_long"
OUT = RESULTS / "readme_figure.png"


def paper_row() -> dict:
  table = next(t for t in pn.TABLES.values() if "Table 1" in t.get("citation", ""))
  return next(r for r in table["rows"] if r["light_net"] == "WRN-16-1" and r["share"] == "b")


def gpu_curve(run: str) -> tuple[list[float], list[float]]:
  recs = [json.loads(x) for x in (GPU / run / "seed0" / "metrics.jsonl").read_text().splitlines()]
  return [r["epoch"] for r in recs], [100 * (1 - r["test/light_accuracy"]) for r in recs]


def cpu_errors() -> dict[str, list[float]]:
  runs = json.loads((CPU / "runs.json").read_text())
  return {r["name"]: [100 * (1 - s["final"]["test/light_accuracy"]) for s in r["seeds"].values()]
          for r in runs}


def main(out: pathlib.Path = OUT) -> None:
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  paper = paper_row()
  plt.rcParams.update({"axes.titlesize": 10})
  fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
  for run, label, color in (("wrn16-1_40-1__light", "WRN-16-1 alone", "tab:gray"),
                            ("wrn16-1_40-1__rocket", "WRN-16-1 in rocket (+ WRN-40-1)", "tab:red")):
    x, y = gpu_curve(run)
    ax.plot(x, y, color=color, label=label)
  ax.axhline(paper["base"], color="tab:gray", ls="--", lw=1, label=f"paper, alone: {paper['base']} %")
  ax.axhline(paper["rocket"], color="tab:red", ls="--", lw=1, label=f"paper, rocket: {paper['rocket']} %")
  ax.axvline(59, color="k", lw=0.5, alpha=0.4)
  ax.set(xlim=(0, 200), ylim=(0, 40), xlabel="epoch (LR x0.2 after 59, 119, 159)",
         ylabel="light-net test error (%)",
         title="CIFAR-10, paper's nets and schedule, one H200\n(seed 0; unfinished: stopped at epoch 103)")
  ax.legend(fontsize=8, loc="upper right")
  errs = cpu_errors()
  names = [n for n in ("light", "rocket") if n in errs]
  means = [statistics.mean(errs[n]) for n in names]
  sds = [statistics.stdev(errs[n]) if len(errs[n]) > 1 else 0 for n in names]
  bx.bar(["alone", "rocket"], means, yerr=sds, color=["tab:gray", "tab:red"], capsize=4)
  for i, m in enumerate(means):
    bx.text(i, m + 0.6, f"{m:.2f}", ha="center", fontsize=9)
  bx.set(ylim=(25, 33), ylabel="light-net test error (%)",
         title="CPU scale: WRN-10-1 light,\nWRN-16-1 booster, 1500 steps, 3 seeds")
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
