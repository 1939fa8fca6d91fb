r"""Our sweep results next to the numbers of the Rocket Launching paper.

    python -m paper_repro.compare --table=cifar10_methods \
        --results=paper_repro/results/ablation_cifar10_cpu/runs.json \
        --out=paper_repro/results/ablation_cifar10_cpu/paper_table1.md

``--results`` is a ``runs.json`` written by ``python -m rocket.report``, a folder holding one, or
the root of a ``rocket.sweep`` run (read through :func:`rocket.report.collect`).

``--table`` picks the paper table (ids of :data:`paper_repro.paper_numbers.TABLES`):
``cifar10_methods`` (Table 1), ``cifar10_ablation`` (Table 2), ``cifar10_hints`` (Table 3),
``cifar100`` / ``svhn`` (Table 4), ``ctr`` (Table 5), ``depth`` (our light-depth sweep; the paper's
Figure 4 has no numbers) or ``all`` (one section per table, and the runs with no paper
counterpart). ``--plot=x.png`` also draws the figure (depth: error against light depth; other
tables: the change against the light net alone, ours next to the paper's).

A run is placed next to a paper column by what its config says (method, gradient block,
sharing, hint kind, dataset), not by its name, so every sweep of ``paper_repro/sweeps/`` works;
the paper row is the one with the same light/booster pair and sharing, or else the paper's
WRN-16-1 + WRN-40-1 row, marked "≠" (e.g. the CPU preset's WRN-10-1 + WRN-16-1). ``share=interval``
runs go to the paper's interval rows (b), ``share=bottom`` runs to its bottom rows (a), and
``share=none`` rockets to the "no sharing" column of row (b) (our ``none`` shares nothing; the
official ``param_share=False`` still shares the stem convolution). Under ``share=bottom`` the light
net is the booster's first two groups (as in the official ``rocket_bottom.py``), so its light-alone
baseline is a ``method=light, share=bottom`` run, not the WRN-16 light run; the bottom row's "no
sharing" column has no counterpart (``share=none`` trains ``config.light``).

Runs made before the sharing and hint were fixed (2026-11-28; their configs have no
``loss_convention`` field) used the retired ``share=group_bottom`` (only the stem and the first
block of each group shared) or the old ``bottom`` (stem and first block), and a hint averaged over
classes (10x too weak on CIFAR-10). Their rocket and rocket+KD runs (the latter took KD from the
co-trained booster) are listed apart, marked "old method"; their single-net runs (light, booster,
KD, AT, AT+KD), whose losses are today's ``loss_convention=modern``, are still placed.

Our numbers: image runs, the final test error of the net (mean ± std and median over seeds; the
paper reports the median of 3 seeds); CTR runs, test GAUC and AUC at the epoch of the best
validation AUC (:func:`rocket.report.summarize_ctr`). "Δ" is the change against the light net
alone of the same table (paper: its "base" column; ours: the ``method=light`` run with the same
light net, data and budget); with different data and budgets, compare the Δ columns.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m paper_repro.compare ...")

from paper_repro import paper_numbers as pn  # noqa: E402
from rocket import report  # noqa: E402 -- json and statistics only; JAX is not imported

SECTIONS = ("cifar10_methods", "cifar10_ablation", "cifar10_hints", "cifar100", "svhn", "ctr")
TABLE_CHOICES = ("all", *SECTIONS, "depth")

# Paper column -> how it is written in the table.
COLUMN_LABELS = {
    "base": "base (light alone)", "at": "AT", "kd": "KD", "rocket": "rocket", "rocket_kd": "rocket+KD",
    "booster_cotrained": "booster (co-trained in rocket)", "booster_only": "booster alone",
    "no_gb": "rocket, no gradient block", "no_sharing": "rocket, no sharing",
    "mimic": "hint: MSE of logits", "mse": "hint: MSE of softmax", "kd_hint": "hint: KD",
}
SECTION_TITLES = {
    "cifar10_methods": "Table 1: methods on CIFAR-10",
    "cifar10_ablation": "Table 2: parts of the framework (CIFAR-10)",
    "cifar10_hints": "Table 3: hint losses (CIFAR-10)",
    "cifar100": "Table 4: CIFAR-100",
    "svhn": "Table 4: SVHN",
    "ctr": "Table 5: CTR (paper: Alibaba display ads)",
}
DATASETS = {
    "cifar10": "CIFAR-10 (JPEG q≈75 copy)",
    "cifar100": "CIFAR-100 (tfds)",
    "svhn": "SVHN (tfds train/test, no extra split)",
    "frappe": "Frappe (fixed 80/10/10 re-split)",
    "movielens": "MovieLens-100k (rating ≥ 4, per-user temporal split)",
    "synthetic_ctr": "synthetic CTR",
    "criteo": "Criteo", "avazu": "Avazu",
}
PAPER_SETUP = {
    "image": ("CIFAR-10/100 (official), SVHN", "200 epochs, batch 128, SGD 0.1 momentum 0.9, ×0.2 at "
              "epochs 60/120/160 (SVHN: Adam 1e-3, ×0.2 at 20/40/60)", "3, median", "not stated"),
    "ctr": ("Alibaba display ads, 4e9 train / 2.85e8 test", "not stated", "not stated", "not stated"),
}


# --------------------------------------------------------------------------- loading


def load_runs(path) -> list[dict]:
  """Runs as :func:`rocket.report.collect` returns them: ``{name, overrides, seeds: {seed: run}}``."""
  p = pathlib.Path(path)
  if p.is_dir():
    if (p / "sweep.json").is_file():

      return report.collect(p)
    if not (p / "runs.json").is_file():
      raise FileNotFoundError(f"{p} holds neither sweep.json (a sweep dir) nor runs.json")
    p = p / "runs.json"
  if not p.is_file():
    raise FileNotFoundError(f"no results at {p}")
  runs = json.loads(p.read_text())
  return [{"name": r["name"], "overrides": r.get("overrides", {}),
           "seeds": {int(s): v for s, v in r["seeds"].items()}} for r in runs]


def run_config(run: dict) -> dict:
  for r in run["seeds"].values():
    return r.get("config", {})
  return {}


def _get(cfg: dict, dotted: str, default=None):
  node = cfg
  for part in dotted.split("."):
    if not isinstance(node, dict) or part not in node:
      return default
    node = node[part]
  return node


def _gblock(value) -> str:
  v = str(value).strip().lower()
  return {"true": "on", "1": "on", "false": "off", "0": "off", "none": "off"}.get(v, v)


def wrn_name(cfg: dict, net: str) -> str:
  d, w = _get(cfg, f"{net}.depth"), _get(cfg, f"{net}.width", 1)
  if d is None:
    return "?"
  w = int(w) if float(w).is_integer() else w
  return f"WRN-{d}-{w}"


def legacy(cfg: dict) -> bool:
  """An image run made before the sharing schemes and the hint were fixed (no ``loss_convention``)."""
  return bool(cfg) and cfg.get("task") != "ctr" and "loss_convention" not in cfg


def bottom(cfg: dict) -> bool:
  """Whether the run's light net is the booster's first two groups (today's ``share=bottom``)."""
  return cfg.get("share") == "bottom" and not legacy(cfg)


def light_name(cfg: dict) -> str:
  """The light net a run trains: ``config.light``, or under ``share=bottom`` the booster's stem and
  first two groups (``config.light`` is then unused)."""
  if bottom(cfg):
    return f"{wrn_name(cfg, 'booster')} groups 0-1"  # WRNSpec.name of the bottom light net
  return wrn_name(cfg, "light")


def share_tag(cfg: dict) -> str:
  """The paper's row tag of a run's sharing: "a" for bottom, else "b" (interval; none = its
  "no sharing" column)."""
  return "a" if bottom(cfg) else "b"


# --------------------------------------------------------------------------- mapping


def paper_entries(cfg: dict) -> list[tuple[str, str, str]]:
  """``(section, paper column, which of our nets)`` for every paper number a run stands next to."""
  if not cfg:
    return []
  method = cfg.get("method")
  dev = set()
  if _gblock(cfg.get("gradient_block", "on")) != "on":
    dev.add("gb_" + _gblock(cfg.get("gradient_block")))
  hint = _get(cfg, "hint.kind", "mse_logits")
  if hint != "mse_logits":
    dev.add("hint_" + hint)
  if cfg.get("task") == "ctr":
    if cfg.get("share", "embedding") != "embedding":
      dev.add("share_" + cfg.get("share"))
    emb = cfg.get("embedding", {})
    if any(emb.get(k) not in (v, None) for k, v in
           (("rows", "full"), ("dims", ""), ("rank", 0), ("dtype", "float32"), ("qat", False))):
      dev.add("compressed")
    if dev:
      return []
    return {"light": [("ctr", "base", "light")], "booster": [("ctr", "booster_only", "booster")],
            "rocket": [("ctr", "rocket", "light")]}.get(method, [])
  if cfg.get("share") not in pn.SHARE_TAG:
    dev.add("share_" + str(cfg.get("share")))
  dataset = cfg.get("dataset", "cifar10")
  if dataset in ("cifar100", "svhn"):
    if method in ("light", "at", "kd"):
      return [(dataset, "base" if method == "light" else method, "light")]
    if method in ("rocket", "rocket_kd") and not dev and not legacy(cfg):
      return [(dataset, method, "light")]
    return []
  if dataset not in ("cifar10", "synthetic"):
    return []
  if method == "light":
    return [("cifar10_methods", "base", "light"), ("cifar10_ablation", "base", "light")]
  if method == "booster":
    return [("cifar10_methods", "booster_only", "booster")]
  if method in ("at", "kd"):
    return [("cifar10_methods", method, "light")]
  if method in ("rocket", "rocket_kd") and legacy(cfg):
    return []  # old sharing and a 10x-too-weak hint: not the paper's method
  if method == "rocket_kd":
    return [] if dev else [("cifar10_methods", "rocket_kd", "light")]
  if method != "rocket":
    return []  # at_kd: the paper reports none
  if not dev:
    return [("cifar10_methods", "rocket", "light"), ("cifar10_methods", "booster_cotrained", "booster"),
            ("cifar10_ablation", "rocket", "light"), ("cifar10_hints", "mimic", "light")]
  single = {"gb_off": ("cifar10_ablation", "no_gb"), "share_none": ("cifar10_ablation", "no_sharing"),
            "hint_l2_softmax": ("cifar10_hints", "mse"), "hint_kd_kl": ("cifar10_hints", "kd_hint")}
  if len(dev) == 1 and next(iter(dev)) in single:
    section, column = single[next(iter(dev))]
    return [(section, column, "light")]
  return []  # e.g. gradient_block=strict: our reading of the paper, no number of theirs


def paper_table(section: str) -> dict:
  return pn.TABLES[section]


def paper_row(section: str, column: str, cfg: dict) -> tuple[dict | None, bool]:
  """The paper row for a run, and whether its setting matches ours exactly."""
  table = paper_table(section)
  if section == "ctr":
    rows = {r["model"]: r for r in table["rows"]}
    return rows.get(column), False
  rows = [r for r in table["rows"] if section not in ("cifar100", "svhn") or r["dataset"] == section]
  key = "kd" if column == "kd_hint" else column
  rows = [r for r in rows if key in r]
  if not rows:
    return None, False
  # Every column but the booster alone depends on the sharing: under bottom the light net itself
  # is another one (the booster's first two groups).
  tag = "b" if column == "booster_only" else share_tag(cfg)
  light, booster = wrn_name(cfg, "light"), wrn_name(cfg, "booster")

  def same(r):
    if column == "booster_only" or (tag == "a" and r["share"] == "a"):
      return r["booster_net"] == booster  # bottom: the booster decides the light net
    if column == "base":
      return r["light_net"] == light
    return r["light_net"] == light and r["booster_net"] == booster

  for r in rows:
    if same(r) and r["share"] == tag:
      return r, True
  for r in rows:
    if same(r):
      return r, False
  for r in rows:
    if r["share"] == tag:
      return r, False
  return rows[0], False


def paper_value(row: dict | None, column: str):
  if row is None:
    return None
  return row.get("kd" if column == "kd_hint" else ("gauc" if "gauc" in row else column))


def paper_base(section: str, row: dict | None):
  if row is None:
    return None
  if section == "ctr":
    return next(r["gauc"] for r in pn.CTR_TABLE5["rows"] if r["model"] == "base")
  if "base" in row:
    return row["base"]
  for r in pn.CIFAR10_TABLE1["rows"]:  # Table 3 has no base column: Table 1's, same row
    if (r["light_net"], r["booster_net"], r["share"]) == (row["light_net"], row["booster_net"], row["share"]):
      return r["base"]
  return None


def paper_setting(section: str, row: dict | None) -> str:
  if row is None:
    return "–"
  if section == "ctr":
    return f"FC {row['fc_layers']}, {row['fc_inference_ms']} ms"
  scheme = {"a": "bottom (a)", "b": "interval (b)"}[row["share"]]
  return f"{row['light_net']} + {row['booster_net']}, {scheme}"


# --------------------------------------------------------------------------- our numbers


def our_values(run: dict, net: str, ctr: bool) -> dict:
  """Per-seed values of one net: image: error %; CTR: gauc and auc."""

  if ctr:
    s = report.summarize_ctr(run)
    return {"gauc": s[f"{net}_gauc"], "auc": s[f"{net}_auc"], "epochs": s["epochs"],
            "bytes": s.get("light_bytes") if net == "light" else None}
  s = report.summarize(run)
  return {"err": s["light_final"] if net == "light" else s["booster"]}


fmt_ms = report.mean_std  # one formatter for mean ± std over seeds


def fmt_median(values, digits: int = 2) -> str:
  return f"{statistics.median(values):.{digits}f}" if values else "–"


def fmt_delta(value, base, digits: int = 2) -> str:
  if value is None or base is None:
    return "–"
  return f"{value - base:+.{digits}f}"


def data_desc(cfg: dict) -> str:
  name = cfg.get("dataset", "?")
  if name == "synthetic":
    s = cfg.get("synthetic", {})
    out = f"synthetic images ({s.get('num_classes', '?')} classes, {s.get('image_size', '?')} px)"
  else:
    out = DATASETS.get(name, name)
  subset = cfg.get("train_subset") or _get(cfg, "features.train_subset", 0)
  if subset:
    out += f", train subset {subset:,}"
  if cfg.get("test_subset"):
    out += f", {cfg['test_subset']:,}-image test subset"
  return out


def budget_desc(run: dict) -> str:
  cfg = run_config(run)
  finals = [r["final"] for r in run["seeds"].values()]
  bs = cfg.get("batch_size", "?")
  o = cfg.get("optim", {})
  opt = f"{o.get('name', 'sgd')} {o.get('lr', '?')} {o.get('schedule', '?')}"
  if cfg.get("num_train_steps", 0) > 0:
    epoch = finals[0].get("epoch") if finals else None
    ep = f" ≈ {epoch:.1f} ep." if isinstance(epoch, (int, float)) else ""
    out = f"{cfg['num_train_steps']} steps{ep}"
  else:
    out = f"{cfg.get('num_epochs', '?')} ep."
  return f"{out}, batch {bs}, {opt}"


def seeds_desc(run: dict) -> str:
  seeds = sorted(run["seeds"])
  return f"{len(seeds)} ({','.join(str(s) for s in seeds)})" if seeds else "0"


def device_desc(run: dict) -> str:
  devs = sorted({r["final"].get("device", "?") for r in run["seeds"].values()})
  return ", ".join(devs) or "–"


def our_setting(cfg: dict) -> str:
  if cfg.get("task") == "ctr":
    light, boost = cfg.get("light", {}), cfg.get("booster", {})
    method = cfg.get("method")
    parts = [] if method == "booster" else [f"light {light.get('kind')}[{light.get('hidden')}]"]
    if method != "light":
      parts.append(f"booster {boost.get('kind')}[{boost.get('hidden')}]+{boost.get('cross_layers', 0)}x")
    emb = cfg.get("embedding", {})
    extra = [f"{k}={emb[k]}" for k, v in (("rows", "full"), ("dims", ""), ("rank", 0),
                                           ("dtype", "float32"), ("qat", False))
             if k in emb and emb[k] != v]
    if emb.get("rows") in ("hash", "qr") and emb.get("buckets"):
      extra.append(f"buckets={emb['buckets']}")
    return ", ".join(parts + extra)
  method = cfg.get("method")
  light, booster = light_name(cfg), wrn_name(cfg, "booster")
  if method == "light":
    return light
  if method == "booster":
    return booster
  if method in ("kd", "at", "at_kd"):
    out = f"{light} ← {booster} teacher"
  else:
    out = f"{light} + {booster}, share={cfg.get('share')}"
    if method == "rocket_kd":
      out += ", + KD"
    if _gblock(cfg.get("gradient_block", "on")) != "on":
      out += f", gb={_gblock(cfg.get('gradient_block'))}"
    if _get(cfg, "hint.kind", "mse_logits") != "mse_logits":
      out += f", hint={_get(cfg, 'hint.kind')} λ={_get(cfg, 'hint.weight')}"
    if legacy(cfg):
      out += " (old method)"
  if method != "rocket" and cfg.get("loss_convention") == "paper":
    out += ", official KD/AT scales"
  return out


# --------------------------------------------------------------------------- tables


def _rows_for(runs: list[dict], section: str) -> list[dict]:
  """Table rows of one section: each (run, paper column, net) that maps to it."""
  ctr = section == "ctr"
  rows = []
  for run in runs:
    cfg = run_config(run)
    for sec, column, net in paper_entries(cfg):
      if sec != section:
        continue
      prow, exact = paper_row(section, column, cfg)
      rows.append({"run": run, "cfg": cfg, "column": column, "net": net, "prow": prow,
                   "exact": exact, "ours": our_values(run, net, ctr)})
  order = list(COLUMN_LABELS) + ["booster_only"]
  rows.sort(key=lambda r: order.index(r["column"]) if r["column"] in order else len(order))
  return rows


def _signature(cfg: dict) -> tuple:
  """What two runs must share for one to be the other's light-alone baseline."""
  light = json.dumps(cfg.get("light"), sort_keys=True) if cfg.get("task") == "ctr" else light_name(cfg)
  return (light, cfg.get("dataset"), cfg.get("num_train_steps"), cfg.get("num_epochs"),
          cfg.get("train_subset"), cfg.get("test_subset"), cfg.get("batch_size"),
          json.dumps(cfg.get("optim"), sort_keys=True))


def base_value(runs: list[dict], cfg: dict, key: str):
  """Mean of our light-alone run (uncompressed embeddings) with the same light net, data and budget."""
  ctr = cfg.get("task") == "ctr"
  for run in runs:
    c = run_config(run)
    if c.get("method") != "light" or _signature(c) != _signature(cfg):
      continue
    if ctr and paper_entries(c) != [("ctr", "base", "light")]:
      continue
    v = our_values(run, "light", ctr)[key]
    if v:
      return statistics.mean(v)
  return None


def section_table(runs: list[dict], section: str) -> list[str]:
  rows = _rows_for(runs, section)
  if not rows:
    return []
  table = paper_table(section)
  lines = [f"## {SECTION_TITLES[section]}", "", f"Paper: {table['citation']} ({table.get('dataset', '')}"
           f"{', ' if table.get('dataset') else ''}{table['metric']}).", ""]
  if section == "ctr":
    lines += ["| paper column | paper setting | paper GAUC | paper Δ | our run | our setting | "
              "our GAUC | our AUC | our Δ GAUC | light bytes | seeds | data | budget | device |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
      pv, pb = paper_value(r["prow"], r["column"]), paper_base(section, r["prow"])
      g = r["ours"]["gauc"]
      base = base_value(runs, r["cfg"], "gauc")
      nbytes = r["ours"].get("bytes")
      nbytes = f"{nbytes:,}" if nbytes else "–"
      lines.append(
          f"| {COLUMN_LABELS.get(r['column'], r['column'])} | {paper_setting(section, r['prow'])} | "
          f"{pv:.3f} | {fmt_delta(pv, pb, 3)} | {r['run']['name']} | {our_setting(r['cfg'])} | "
          f"{fmt_ms(g, 4)} | {fmt_ms(r['ours']['auc'], 4)} | "
          f"{fmt_delta(statistics.mean(g) if g else None, base, 4)} | "
          f"{nbytes} | {seeds_desc(r['run'])} | {data_desc(r['cfg'])} | "
          f"{budget_desc(r['run'])} | {device_desc(r['run'])} |")
    return lines + [""]
  lines += ["| paper column | paper setting | paper err | paper Δ | our run | our setting | "
            "our err (mean ± std) | our median | our Δ | seeds | data | budget | device |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    pv, pb = paper_value(r["prow"], r["column"]), paper_base(section, r["prow"])
    err = r["ours"]["err"]
    base = base_value(runs, r["cfg"], "err")
    label = COLUMN_LABELS.get(r["column"], r["column"])
    setting = paper_setting(section, r["prow"]) + ("" if r["exact"] else " ≠")
    lines.append(
        f"| {label} | {setting} | {'–' if pv is None else f'{pv:.2f}'} | {fmt_delta(pv, pb)} | "
        f"{r['run']['name']}{' (booster)' if r['column'] == 'booster_cotrained' else ''} | "
        f"{our_setting(r['cfg'])} | "
        f"{fmt_ms(err)} | {fmt_median(err)} | "
        f"{fmt_delta(statistics.mean(err) if err else None, base)} | {seeds_desc(r['run'])} | "
        f"{data_desc(r['cfg'])} | {budget_desc(r['run'])} | {device_desc(r['run'])} |")
  return lines + [""]


def other_runs_table(runs: list[dict]) -> list[str]:
  """Runs with no paper counterpart (e.g. gradient_block=strict, at_kd, compressed embeddings)."""
  rest = [r for r in runs if not paper_entries(run_config(r))]
  unfinished = [r["name"] for r in rest if not r["seeds"]]
  rest = [r for r in rest if r["seeds"]]
  if not rest and not unfinished:
    return []
  lines = ["## Runs with no paper counterpart", ""]
  ctr = [r for r in rest if run_config(r).get("task") == "ctr"]
  img = [r for r in rest if r not in ctr]
  if img:
    lines += ["| our run | our setting | light err (mean ± std) | median | booster err | seeds | data | "
              "budget | device |", "|---|---|---|---|---|---|---|---|---|"]
    for r in img:
      cfg = run_config(r)
      light = our_values(r, "light", False)["err"]
      boost = our_values(r, "booster", False)["err"]
      lines.append(f"| {r['name']} | {our_setting(cfg)} | {fmt_ms(light)} | {fmt_median(light)} | "
                   f"{fmt_ms(boost)} | {seeds_desc(r)} | {data_desc(cfg)} | {budget_desc(r)} | "
                   f"{device_desc(r)} |")
    lines.append("")
  if ctr:
    lines += ["| our run | our setting | light GAUC | light AUC | light bytes | seeds | data | budget | "
              "device |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ctr:
      cfg = run_config(r)
      v = our_values(r, "light", True)
      nbytes = f"{v['bytes']:,}" if v.get("bytes") else "–"
      lines.append(f"| {r['name']} | {our_setting(cfg)} | {fmt_ms(v['gauc'], 4)} | {fmt_ms(v['auc'], 4)} | "
                   f"{nbytes} | {seeds_desc(r)} | {data_desc(cfg)} | {budget_desc(r)} | {device_desc(r)} |")
    lines.append("")
  if unfinished:
    lines += [f"Planned but with no finished seed: {', '.join(unfinished)}.", ""]
  return lines


def depth_rows(runs: list[dict]) -> list[dict]:
  """One row per light net of a depth sweep: light alone vs rocket, errors per seed."""
  by = {}
  for run in runs:
    cfg = run_config(run)
    if cfg.get("method") not in ("light", "rocket") or not run["seeds"]:
      continue
    key = (_get(cfg, "light.depth"), _get(cfg, "light.width", 1))
    row = by.setdefault(key, {"light": None, "rocket": None, "cfg": cfg})
    row[cfg["method"]] = run
  out = []
  for (depth, width), row in sorted(by.items()):
    out.append({"depth": depth, "width": width, "cfg": row["cfg"],
                "light": our_values(row["light"], "light", False)["err"] if row["light"] else [],
                "rocket": our_values(row["rocket"], "light", False)["err"] if row["rocket"] else [],
                "booster": our_values(row["rocket"], "booster", False)["err"] if row["rocket"] else [],
                "runs": [r for r in (row["light"], row["rocket"]) if r]})
  return out


def depth_table(runs: list[dict]) -> list[str]:
  rows = depth_rows(runs)
  if not rows:
    return []
  f4 = pn.DEPTH_FIGURE4
  lines = ["## Light-net depth sweep", "",
           f"Paper: {f4['citation']}: plotted only, no values stated, so no paper column. Their finding: "
           f"{f4['finding']}. Their nets are residual nets of fixed width sharing the bottom "
           f"{f4['shared_layers'][0]}-{f4['shared_layers'][1]} layers with a {f4['booster_depth']}-layer "
           "booster; ours are WRN light nets of the listed depth next to the sweep's booster.", "",
           "| light net | booster | light alone err | rocket light err | Δ (rocket − alone) | "
           "rocket booster err | seeds | data | budget | device |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    d = (statistics.mean(r["rocket"]) - statistics.mean(r["light"])
         if r["rocket"] and r["light"] else None)
    run0 = r["runs"][0]
    lines.append(f"| WRN-{r['depth']}-{r['width']} | {wrn_name(r['cfg'], 'booster')} | "
                 f"{fmt_ms(r['light'])} | "
                 f"{fmt_ms(r['rocket'])} | {'–' if d is None else f'{d:+.2f}'} | {fmt_ms(r['booster'])} | "
                 f"{' / '.join(seeds_desc(x) for x in r['runs'])} | {data_desc(r['cfg'])} | "
                 f"{budget_desc(run0)} | {device_desc(run0)} |")
  return lines + [""]


def setup_lines(runs: list[dict], kind: str) -> list[str]:
  data, budget, seeds, device = PAPER_SETUP[kind]
  lines = ["| | data | budget | seeds | device |", "|---|---|---|---|---|",
           f"| paper | {data} | {budget} | {seeds} | {device} |"]
  seen = set()
  for run in runs:
    cfg = run_config(run)
    if not cfg or (cfg.get("task") == "ctr") != (kind == "ctr"):
      continue
    row = (data_desc(cfg), budget_desc(run), seeds_desc(run), device_desc(run))
    if row not in seen:
      seen.add(row)
      lines.append(f"| ours | {' | '.join(row)} |")
  return lines + [""]


def compare_markdown(runs: list[dict], table: str = "all", title: str = "", source: str = "") -> str:
  """The comparison as markdown; ``table`` is one of :data:`TABLE_CHOICES`."""
  if table not in TABLE_CHOICES:
    raise ValueError(f"--table must be one of {TABLE_CHOICES}, got {table!r}")
  ctr = any(run_config(r).get("task") == "ctr" for r in runs)
  body: list[str] = []
  if table == "depth":
    body = depth_table(runs)
  else:
    for section in SECTIONS if table == "all" else (table,):
      body += section_table(runs, section)
    if table == "all":
      body += other_runs_table(runs)
  if not body:
    body = [f"No finished run of these results maps to `{table}`.", ""]
  head = [f"# {title or 'Our numbers next to the paper'}", "",
          f"Paper: {pn.PAPER}. Paper numbers: `paper_repro/paper_numbers.py` (where each was found)."]
  if source:
    head.append(f"Our results: `{source}`.")
  head += [f"Written {time.strftime('%Y-%m-%d')} by `python -m paper_repro.compare "
           f"{' '.join(sys.argv[1:])}`." if sys.argv[0].endswith("compare.py") else
           f"Written {time.strftime('%Y-%m-%d')}.", ""]
  head += setup_lines(runs, "ctr" if ctr else "image")
  if ctr:
    head += ["GAUC/AUC: test split, at the epoch of each run's best validation AUC (mean ± std over "
             "seeds). Δ: change against the light net alone (paper: 0.635 − 0.632 = +0.003, its "
             "\"+0.3 %\"). The paper's data, nets and budget differ from ours entirely; compare Δ, "
             "not the GAUC values.", ""]
  else:
    head += ["Errors: test error in % of the final evaluation (ours: mean ± std and median over seeds; "
             "paper: median of 3). Δ: change against the light net alone of the same table (negative = "
             "better). \"≠\": the paper has no row with our light/booster pair and sharing, the closest "
             "row is shown. Our data is a JPEG re-encode of CIFAR-10 and our budget is usually far "
             "below the paper's 200 epochs, so compare Δ columns, not raw errors.", ""]
    if any(legacy(run_config(r)) for r in runs):
      head += ["Some of these runs predate the fix of the sharing schemes and the hint (their configs "
               "have no `loss_convention`): their rocket runs shared only the stem and the first block "
               "of each group (`group_bottom`; old `bottom`: stem and first block) with a hint "
               "averaged over classes, 10x too weak on CIFAR-10, and their rocket+KD took KD from the "
               "co-trained booster. Those are not the paper's method: they are listed apart, marked "
               "\"old method\". Their light, booster, KD and AT runs are unaffected and placed.", ""]
  return "\n".join(head + body)


# --------------------------------------------------------------------------- plots


def plot_depth(runs: list[dict], path, title: str = "") -> None:
  """Light-net test error against light depth: alone vs rocket (mean ± std over seeds)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  rows = depth_rows(runs)
  if not rows:
    raise ValueError("no light/rocket runs with finished seeds: is this a depth sweep?")
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for key, label, style in (("light", "light net alone", "--o"), ("rocket", "rocket (light net)", "-s")):
    pts = [(r["depth"], r[key]) for r in rows if r[key]]
    if pts:
      ax.errorbar([d for d, _ in pts], [statistics.mean(v) for _, v in pts],
                  yerr=[statistics.stdev(v) if len(v) > 1 else 0 for _, v in pts], fmt=style,
                  capsize=3, label=label)
  ax.set_xlabel("light-net depth (WRN-d-k)")
  ax.set_ylabel("light-net test error (%)")
  ax.set_xticks([r["depth"] for r in rows])
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title(title or f"Light-net depth sweep\n{data_desc(rows[0]['cfg'])}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_deltas(runs: list[dict], path, table: str = "all", title: str = "") -> None:
  """Change against the light net alone, ours (mean over seeds) next to the paper's, per entry."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  labels, ours, paper = [], [], []
  for section in SECTIONS if table == "all" else (table,):
    rows = _rows_for(runs, section)
    key = "gauc" if section == "ctr" else "err"
    for r in rows:
      if r["column"] == "base":
        continue
      v, base = r["ours"][key], base_value(runs, r["cfg"], key)
      pv, pb = paper_value(r["prow"], r["column"]), paper_base(section, r["prow"])
      labels.append(f"{section}: {COLUMN_LABELS.get(r['column'], r['column'])}\n({r['run']['name']})")
      ours.append(statistics.mean(v) - base if v and base is not None else float("nan"))
      paper.append(pv - pb if pv is not None and pb is not None else float("nan"))
  if not labels:
    raise ValueError(f"nothing to plot for table {table!r}")
  fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
  y = range(len(labels))
  ax.barh([i - 0.2 for i in y], paper, height=0.4, label="paper")
  ax.barh([i + 0.2 for i in y], ours, height=0.4, label="ours")
  ax.set_yticks(list(y))
  ax.set_yticklabels(labels, fontsize=7)
  ax.axvline(0, color="k", lw=0.8)
  ax.invert_yaxis()
  ax.set_xlabel("Δ against the light net alone (error: points, lower is better; CTR: GAUC)")
  ax.legend()
  ax.grid(alpha=0.3, axis="x")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# --------------------------------------------------------------------------- CLI


def main(argv):
  from absl import app, flags  # noqa: PLC0415

  del argv
  FLAGS = flags.FLAGS
  try:
    runs = load_runs(FLAGS.results)
  except (FileNotFoundError, json.JSONDecodeError) as e:
    raise app.UsageError(str(e)) from e
  text = compare_markdown(runs, FLAGS.table, FLAGS.title, FLAGS.results)
  if FLAGS.out:
    out = pathlib.Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
  if FLAGS.plot:
    try:
      if FLAGS.table == "depth":
        plot_depth(runs, FLAGS.plot, FLAGS.title)
      else:
        plot_deltas(runs, FLAGS.plot, FLAGS.table, FLAGS.title)
    except ValueError as e:
      raise app.UsageError(f"--plot: {e}") from e
  print(text)


def _define_flags():
  from absl import flags  # noqa: PLC0415

  flags.DEFINE_string("results", None, "runs.json, a folder holding one, or a rocket.sweep root.")
  flags.DEFINE_enum("table", "all", TABLE_CHOICES, "Which paper table to compare with.")
  flags.DEFINE_string("out", "", "Markdown file to write (the table is printed either way).")
  flags.DEFINE_string("plot", "", "PNG to write: depth plot (--table=depth) or Δ bars.")
  flags.DEFINE_string("title", "", "Title of the markdown.")
  flags.mark_flag_as_required("results")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)
