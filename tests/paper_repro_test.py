"""paper_repro/: the comparison with the paper's numbers, on sweep dirs written by hand."""

import ast
import functools
import importlib.util
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

import pytest

from paper_repro import compare, paper_numbers
from rocket import config_util, methods, train
from rocket.config_util import apply_overrides
from tests.conftest import ROOT, load_config

SWEEPS = sorted(p.name for p in (ROOT / "paper_repro" / "sweeps").glob("*.py"))


def load_sweep(path):
  spec = importlib.util.spec_from_file_location("sweep_file", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_sweep()


def write_run(root: pathlib.Path, name: str, seed: int, config: dict, light_err=None, booster_err=None,
              teacher_err=None, device="1 x cpu", curve=None):
  """One finished run folder as rocket.train writes it (final.json, metrics.jsonl, config.json)."""
  wd = root / name / f"seed{seed}"
  wd.mkdir(parents=True)
  config = dict(config, seed=seed)
  final = {"step": 150, "epoch": 1.92, "wall_time_s": 100.0, "device": device, "params": {}}
  if light_err is not None:
    final["test/light_accuracy"] = 1 - light_err / 100
    final["params"]["light"] = 77850
  if booster_err is not None:
    final["test/booster_accuracy"] = 1 - booster_err / 100
    final["params"]["booster"] = 175066
  if teacher_err is not None:
    final["teacher"] = {"test/booster_accuracy": 1 - teacher_err / 100, "wall_time_s": 50.0}
  if curve is None:
    curve = [{"step": 75, "epoch": 0.96, **{k: v for k, v in final.items() if k.startswith("test/")}},
             {"step": 150, "epoch": 1.92, **{k: v for k, v in final.items() if k.startswith("test/")}}]
  (wd / "final.json").write_text(json.dumps(final))
  (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
  (wd / "config.json").write_text(json.dumps(config))


def write_plan(root: pathlib.Path, runs: list[dict], seeds=(0, 1)):
  (root / "sweep.json").write_text(json.dumps({"seeds": list(seeds), "runs": runs}))


def image_config(**overrides) -> dict:
  return apply_overrides(load_config("cpu"), overrides).to_dict()


@pytest.fixture
def ablation_dir(tmp_path):
  """A CPU-scale ablation sweep: two seeds, errors chosen by hand."""
  root = tmp_path / "sweep"
  spec = {  # name: (overrides, light errs per seed, booster errs per seed)
      "light": ({"method": "light"}, (30.0, 32.0), None),
      "booster": ({"method": "booster"}, None, (25.0, 27.0)),
      "kd": ({"method": "kd"}, (29.0, 31.0), None),
      "rocket": ({"method": "rocket"}, (27.0, 28.0), (24.0, 26.0)),
      "rocket_kd": ({"method": "rocket_kd"}, (26.0, 26.0), (24.0, 24.0)),
      # bottom: another light net (the booster's first two groups), with its own baseline
      "light-share_bottom": ({"method": "light", "share": "bottom"}, (33.0, 35.0), None),
      "rocket-share_bottom": ({"method": "rocket", "share": "bottom"}, (31.0, 31.0), (25.0, 25.0)),
      "rocket-share_none": ({"method": "rocket", "share": "none"}, (29.0, 29.0), (25.0, 25.0)),
      "rocket-gb_off": ({"method": "rocket", "gradient_block": "off"}, (29.5, 30.5), (26.0, 26.0)),
      "rocket-gb_strict": ({"method": "rocket", "gradient_block": "strict"}, (28.0, 28.0), (25.0, 25.0)),
      "rocket-hint_kd_kl": ({"method": "rocket", "hint.kind": "kd_kl"}, (28.5, 29.5), (25.0, 25.0)),
  }
  plan = []
  for name, (ov, light, boost) in spec.items():
    plan.append({"name": name, "overrides": ov})
    for seed in (0, 1):
      write_run(root, name, seed, image_config(**ov), light and light[seed], boost and boost[seed],
                teacher_err=25.0 if name in ("kd", "rocket_kd") else None)
  plan.append({"name": "at_kd", "overrides": {"method": "at_kd"}})  # planned, never finished
  write_plan(root, plan)
  return root


def rows_of(text: str, first_cell: str, run: str | None = None) -> list[str]:
  """Table lines whose first cell is ``first_cell`` (and, given ``run``, whose "our run" cell, the
  fifth of a paper table, is it)."""
  rows = [x for x in text.splitlines() if x.startswith(f"| {first_cell} |")]
  if run is None:
    return rows
  return [x for x in rows if x.split("|")[5].strip() in (run, f"{run} (booster)")]


def test_table1_has_the_papers_and_our_numbers(ablation_dir):
  runs = compare.load_runs(ablation_dir)
  text = compare.compare_markdown(runs, "cifar10_methods", source=str(ablation_dir))
  t1 = paper_numbers.CIFAR10_TABLE1["rows"][0]
  assert len(rows_of(text, "base (light alone)")) == 2  # interval's light net and bottom's
  (base,) = rows_of(text, "base (light alone)", "light")
  assert f"{t1['base']:.2f}" in base and "31.00 ± 1.41" in base and "interval (b)" in base
  (rocket,) = rows_of(text, "rocket", "rocket")
  assert f"{t1['rocket']:.2f}" in rocket and "27.50 ± 0.71" in rocket
  assert f"{t1['rocket'] - t1['base']:+.2f}" in rocket and "-3.50" in rocket  # paper Δ and ours
  # rocket+KD (KD from a pre-trained teacher): Table 1's column, Δ against the same light run
  (rkd,) = rows_of(text, "rocket+KD", "rocket_kd")
  assert f"{t1['rocket_kd']:.2f}" in rkd and "26.00" in rkd and "-5.00" in rkd and "+ KD" in rkd
  (kd,) = rows_of(text, "KD")
  assert f"{t1['kd']:.2f}" in kd and "30.00 ± 1.41" in kd
  (cotrained,) = rows_of(text, "booster (co-trained in rocket)", "rocket")
  assert "6.64" in cotrained and "25.00 ± 1.41" in cotrained
  (alone,) = rows_of(text, "booster alone")
  assert "6.58" in alone and "26.00 ± 1.41" in alone
  # the setup columns: data, budget, seeds, device; the CPU pair is not a paper row
  for row in (base, rocket, kd, cotrained, alone):
    assert "CIFAR-10 (JPEG q≈75 copy)" in row and "150 steps" in row and "2 (0,1)" in row
    assert "1 x cpu" in row and "≠" in row
  assert "3, median" in text  # the paper's seeds


def test_bottom_runs_go_to_row_a_against_their_own_light_run(ablation_dir):
  """share=bottom trains the booster's first two groups: its rocket is compared with that net
  trained alone (light-share_bottom), not with the WRN light run, and with the paper's row (a)."""
  runs = compare.load_runs(ablation_dir)
  a = next(r for r in paper_numbers.CIFAR10_TABLE1["rows"] if r["share"] == "a")
  t1 = compare.compare_markdown(runs, "cifar10_methods")
  (base,) = rows_of(t1, "base (light alone)", "light-share_bottom")
  assert f"{a['base']:.2f}" in base and "bottom (a)" in base and "34.00 ± 1.41" in base
  assert "| WRN-16-1 groups 0-1 |" in base  # the CPU booster's first two groups
  (rocket,) = rows_of(t1, "rocket", "rocket-share_bottom")
  assert f"{a['rocket']:.2f}" in rocket and f"{a['rocket'] - a['base']:+.2f}" in rocket
  assert "31.00" in rocket and "-3.00" in rocket  # 31 - 34, not 31 - 31 (the WRN light run)
  (cotrained,) = rows_of(t1, "booster (co-trained in rocket)", "rocket-share_bottom")
  assert f"{a['booster_cotrained']:.2f}" in cotrained
  t2 = compare.compare_markdown(runs, "cifar10_ablation")
  (base2,) = rows_of(t2, "base (light alone)", "light-share_bottom")
  assert "8.69" in base2
  # share=none is the "no sharing" column of the interval row, against the WRN light run
  (none,) = rows_of(t2, "rocket, no sharing", "rocket-share_none")
  assert "8.06" in none and "interval (b)" in none and "-2.00" in none
  # at full scale the bottom row matches exactly; the light net is named by the booster
  full = apply_overrides(load_config(""), {"share": "bottom", "method": "light"}).to_dict()
  row, exact = compare.paper_row("cifar10_methods", "base", full)
  assert row["share"] == "a" and exact
  assert compare.our_setting(full) == "WRN-40-1 groups 0-1"


def test_runs_of_the_old_method_are_not_placed(tmp_path):
  """Configs without loss_convention predate the sharing/hint fix: their rocket runs (first-block
  sharing, hint averaged over classes) get no paper column; their single-net runs still do."""
  root = tmp_path / "old"
  plan = []
  for name, ov, light in (("light", {"method": "light"}, 30.0),
                          ("rocket", {"method": "rocket"}, 28.0),
                          ("rocket_kd", {"method": "rocket_kd"}, 27.0)):
    cfg = image_config(**ov)
    del cfg["loss_convention"]
    cfg["share"] = "group_bottom"
    plan.append({"name": name, "overrides": ov})
    for seed in (0, 1):
      write_run(root, name, seed, cfg, light, 25.0 if name != "light" else None)
  write_plan(root, plan)
  text = compare.compare_markdown(compare.load_runs(root), "all")
  placed, apart = text.split("## Runs with no paper counterpart")
  assert rows_of(placed, "base (light alone)", "light")
  assert not rows_of(placed, "rocket") and not rows_of(placed, "rocket+KD")
  (old,) = rows_of(apart, "rocket")
  assert "share=group_bottom (old method)" in old and "28.00" in old
  (old_kd,) = rows_of(apart, "rocket_kd")
  assert "(old method)" in old_kd and "27.00" in old_kd
  assert "predate the fix" in text and "10x too weak" in text


def test_other_tables_and_runs_without_counterpart(ablation_dir, tmp_path):
  runs = compare.load_runs(ablation_dir)
  t2 = compare.compare_markdown(runs, "cifar10_ablation")
  (nogb,) = rows_of(t2, "rocket, no gradient block")
  assert "8.50" in nogb and "30.00 ± 0.71" in nogb and "-1.00" in nogb
  t3 = compare.compare_markdown(runs, "cifar10_hints")
  (kdhint,) = rows_of(t3, "hint: KD")
  assert "7.98" in kdhint and "29.00 ± 0.71" in kdhint
  everything = compare.compare_markdown(runs, "all")
  assert "## Runs with no paper counterpart" in everything
  assert "predate the fix" not in everything  # today's configs: no old-method note
  (strict,) = rows_of(everything, "rocket-gb_strict")
  assert "gb=strict" in strict and "28.00" in strict
  assert "no finished seed: at_kd" in everything
  assert "No finished run" in compare.compare_markdown(runs, "cifar100")
  compare.plot_deltas(runs, tmp_path / "d.png", "cifar10_methods")
  assert (tmp_path / "d.png").stat().st_size > 1000


def test_runs_json_and_the_command_line(ablation_dir, tmp_path):
  from rocket import report

  slim = [{"name": r["name"], "overrides": r["overrides"],
           "seeds": {str(s): v for s, v in r["seeds"].items()}} for r in report.collect(ablation_dir)]
  (tmp_path / "res").mkdir()
  (tmp_path / "res" / "runs.json").write_text(json.dumps(slim))
  from_json = compare.compare_markdown(compare.load_runs(tmp_path / "res" / "runs.json"), "all")
  from_dir = compare.compare_markdown(compare.load_runs(tmp_path / "res"), "all")
  assert from_json == from_dir == compare.compare_markdown(compare.load_runs(ablation_dir), "all")
  with pytest.raises(FileNotFoundError):
    compare.load_runs(tmp_path)
  out = tmp_path / "t1.md"
  cmd = [sys.executable, "-m", "paper_repro.compare", "--table=cifar10_methods",
         f"--results={tmp_path / 'res' / 'runs.json'}", f"--out={out}"]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "7.87" in out.read_text() and "27.50 ± 0.71" in out.read_text()
  bad = subprocess.run(cmd[:3] + ["--table=nope", f"--results={tmp_path}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and "table" in bad.stderr


def test_ctr_table(tmp_path):
  root = tmp_path / "ctr"
  cfg = {"task": "ctr", "dataset": "frappe", "share": "embedding", "gradient_block": "on",
         "hint": {"kind": "mse_logits"}, "embedding": {"rows": "full", "dims": "", "rank": 0,
                                                       "dtype": "float32", "qat": False},
         "light": {"kind": "mlp", "hidden": "32"}, "booster": {"kind": "mlp", "hidden": "64"},
         "num_epochs": 5, "batch_size": 1024, "optim": {"name": "adam", "lr": 0.001}}
  plan = []
  for name, method, gauc in (("light", "light", (0.930, 0.932)), ("rocket", "rocket", (0.935, 0.935)),
                             ("light-qr1k", "light", (0.920, 0.922))):
    ov = {"rows": "qr"} if "qr" in name else {}
    plan.append({"name": name, "overrides": {"method": method}})
    for seed in (0, 1):
      rec = {"epoch": 2.0, "valid/light_auc": 0.9, "test/light_auc": 0.94, "test/light_gauc": gauc[seed],
             "test/light_logloss": 0.3}
      c = dict(cfg, method=method, embedding=dict(cfg["embedding"], **ov))
      write_run(root, name, seed, c, curve=[rec])
  write_plan(root, plan)
  text = compare.compare_markdown(compare.load_runs(root), "all")
  (base,) = rows_of(text, "base (light alone)")
  assert "0.632" in base and "0.9310 ± 0.0014" in base and "Frappe" in base
  (rocket,) = rows_of(text, "rocket")
  assert "0.635" in rocket and "+0.003" in rocket and "0.9350" in rocket and "+0.0040" in rocket
  (qr,) = rows_of(text, "light-qr1k")  # compressed embeddings: no paper counterpart
  assert "rows=qr" in qr and "0.9210 ± 0.0014" in qr


def test_depth_table_and_plot(tmp_path):
  root = tmp_path / "depth"
  plan = []
  for d, (le, rk) in {10: (40.0, 38.0), 16: (35.0, 34.0)}.items():
    for method, err in (("light", le), ("rocket", rk)):
      name = f"{method}-d{d}"
      plan.append({"name": name, "overrides": {"method": method, "light.depth": d}})
      for seed in (0, 1):
        write_run(root, name, seed, image_config(method=method, **{"light.depth": d}), err + seed,
                  25.0 if method == "rocket" else None)
  write_plan(root, plan)
  runs = compare.load_runs(root)
  text = compare.compare_markdown(runs, "depth")
  (d10,) = rows_of(text, "WRN-10-1")
  assert "40.50 ± 0.71" in d10 and "38.50 ± 0.71" in d10 and "-2.00" in d10
  assert "Figure 4" in text and "no values" in text
  compare.plot_depth(runs, tmp_path / "depth.png")
  assert (tmp_path / "depth.png").stat().st_size > 1000


def test_every_sweep_run_finds_its_paper_column():
  """The run names of paper_repro/sweeps/*.py land where the paper has a number for them."""
  expected = {  # sweep file -> {run name: first (section, column, row tag)}
      "ablation_cifar10.py": {"light": ("cifar10_methods", "base", "b"),
                              "at": ("cifar10_methods", "at", "b"),
                              "rocket_kd": ("cifar10_methods", "rocket_kd", "b"),
                              "kd-paper_scale": ("cifar10_methods", "kd", "b"),
                              "rocket-share_none": ("cifar10_ablation", "no_sharing", "b"),
                              "light-share_bottom": ("cifar10_methods", "base", "a"),
                              "rocket-share_bottom": ("cifar10_methods", "rocket", "a"),
                              "rocket-gb_off": ("cifar10_ablation", "no_gb", "b"),
                              "rocket-hint_l2_softmax": ("cifar10_hints", "mse", "b"),
                              "rocket-gb_strict": None, "at_kd": None},
      "cifar10_methods_full.py": {"wrn16-2_40-2__rocket_kd": ("cifar10_methods", "rocket_kd", "b"),
                                  "wrn16-1_40-1__light": ("cifar10_methods", "base", "b"),
                                  "wrn16-1_40-1a__light": ("cifar10_methods", "base", "a"),
                                  "wrn16-1_40-1a__kd": ("cifar10_methods", "kd", "a"),
                                  "wrn16-1_40-1a__rocket": ("cifar10_methods", "rocket", "a"),
                                  "wrn16-1_40-1a__rocket_kd": ("cifar10_methods", "rocket_kd", "a")},
      "cifar10_ablation_full.py": {"light_a": ("cifar10_methods", "base", "a"),
                                   "light_b": ("cifar10_methods", "base", "b"),
                                   "rocket_a-gb_off": ("cifar10_ablation", "no_gb", "a"),
                                   "rocket_b-share_none": ("cifar10_ablation", "no_sharing", "b"),
                                   "rocket_a-hint_l2_softmax": ("cifar10_hints", "mse", "a"),
                                   "rocket_b-hint_kd_kl": ("cifar10_hints", "kd_hint", "b"),
                                   "rocket_a-gb_strict": None},
      "depth_cifar10.py": {"rocket-d22": ("cifar10_methods", "rocket", "b")},
  }
  base = load_config("")
  for file, want in expected.items():
    s = load_sweep(ROOT / "paper_repro" / "sweeps" / file)
    names = {r["name"] for r in s["runs"]}
    assert set(want) <= names, (file, set(want) - names)
    for run in s["runs"]:
      if run["name"] not in want:
        continue
      cfg = apply_overrides(base, run["overrides"]).to_dict()
      got = compare.paper_entries(cfg)
      got = (*got[0][:2], compare.paper_row(got[0][0], got[0][1], cfg)[0]["share"]) if got else None
      assert got == want[run["name"]], (file, run["name"], got)
  # the full-scale sweeps: every Table 1-3 number has a run, each at the exact paper row
  for file, section in (("cifar10_methods_full.py", "cifar10_methods"),
                        ("cifar10_ablation_full.py", "cifar10_ablation"),
                        ("cifar10_ablation_full.py", "cifar10_hints")):
    placed = set()
    for run in load_sweep(ROOT / "paper_repro" / "sweeps" / file)["runs"]:
      cfg = apply_overrides(base, run["overrides"]).to_dict()
      for sec, column, _ in compare.paper_entries(cfg):
        row, exact = compare.paper_row(sec, column, cfg)
        if sec == section:
          assert exact, (file, run["name"], column)
          placed.add((row["light_net"], row["booster_net"], row["share"],
                      "kd" if column == "kd_hint" else column))
    table = paper_numbers.TABLES[section]["rows"]
    have = {(r["light_net"], r["booster_net"], r["share"], c) for r in table for c in r
            if isinstance(r[c], float)}
    missing = {(share, column) for _, _, share, column in have - placed}
    # no counterpart: "no joint training"; bottom's net without sharing (share=none trains
    # config.light). The booster alone, the same net for both rows, is placed at row (b).
    missing -= {("a", "no_joint_training"), ("b", "no_joint_training"), ("a", "no_sharing"),
                ("a", "booster_only")}
    assert not missing, (file, section, missing)
  # row 2 for the WRN-16-2 pair; exact matches at full scale
  wide = apply_overrides(base, {"light.width": 2, "booster.width": 2}).to_dict()
  row, exact = compare.paper_row("cifar10_methods", "rocket", wide)
  assert row["light_net"] == "WRN-16-2" and row["rocket"] == 5.67 and exact
  t4 = compare.paper_entries(apply_overrides(base, {"dataset": "svhn"}).to_dict())
  assert t4 == [("svhn", "rocket", "light")]
  assert compare.paper_value(compare.paper_row("svhn", "rocket", {})[0], "rocket") == 2.29


def test_paper_presets():
  spec = importlib.util.spec_from_file_location("paper_cfg", ROOT / "paper_repro" / "configs" / "paper.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  full = mod.get_config("cifar10")
  assert (full.num_epochs, full.batch_size, full.optim.lr, full.optim.weight_decay) == (200, 128, 0.1, 5e-4)
  assert not full.optim.nesterov and full.pad_mode == "symmetric" and full.hint.weight == 0.03
  assert full.share == "interval" and full.init == "paper" and full.loss_convention == "paper"
  assert full.optim.reset_momentum and full.optim.lr_boundaries == (59 / 200, 119 / 200, 159 / 200)
  svhn = mod.get_config("svhn")
  assert svhn.optim.name == "adam" and svhn.optim.lr == 1e-3 and svhn.augment and not svhn.augment_flip
  cpu = mod.get_config("cifar100_cpu")
  assert cpu.dataset == "cifar100" and cpu.num_train_steps == 150
  with pytest.raises(ValueError, match="preset"):
    mod.get_config("imagenet")


def docstring_base_config(path: pathlib.Path):
  """The base config of the first ``rocket.sweep`` command in a sweep file's docstring, with the
  ``--config.<field>=<value>`` flags of that command."""
  text = path.read_text()
  spec = re.search(r"--config=(\S+)", text)
  assert spec, f"{path.name}: its docstring should show the rocket.sweep command (with --config=...)"
  command = text[spec.start():].split("--sweep=")[0]
  plain = config_util.load_config(spec.group(1))
  overrides = {}
  for key, value in re.findall(r"--config\.([\w.]+)=(\S+)", command):
    field = functools.reduce(lambda c, k: c[k], key.split("."), plain)
    if isinstance(field, str):  # as absl's config flags parse it: by the field's type
      overrides[key] = value
      continue
    try:
      overrides[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key] = value
  return config_util.load_config(spec.group(1), **overrides)


@pytest.mark.parametrize("file", SWEEPS)
def test_every_sweep_file_names_real_config_fields(file):
  """Each sweep loads, every override applies to the base config its docstring runs it with, the
  result passes the trainer's checks, and every run that needs a teacher (kd, at, at_kd and
  rocket_kd, whose KD comes from a pre-trained booster-sized net) names a booster run of the sweep."""
  path = ROOT / "paper_repro" / "sweeps" / file
  s = load_sweep(path)
  base = docstring_base_config(path)
  runs = {r["name"]: r for r in s["runs"]}
  for run in s["runs"]:
    overrides = dict(run.get("overrides", {}), seed=0)
    config = apply_overrides(base, overrides)  # ValueError if not
    assert config.share != "group_bottom"
    if methods.get_method(config.method).needs_teacher:
      teacher = run.get("teacher")
      assert teacher in runs, f"{file}: run {run['name']!r} needs a teacher run (teacher=...)"
      assert runs[teacher]["overrides"].get("method") == "booster", (file, run["name"], teacher)
      tcfg = apply_overrides(base, runs[teacher]["overrides"])
      assert tcfg.booster.to_dict() == config.booster.to_dict(), (file, run["name"])
      config = apply_overrides(config, {"teacher_workdir": f"/tmp/{teacher}/seed0"})
    else:
      assert not run.get("teacher"), (file, run["name"])
    train.validate_config(config)  # ValueError if the trainer would refuse it


def test_readme_figure_and_table_come_from_the_committed_results(tmp_path):
  from paper_repro import readme_figure

  readme_figure.main(tmp_path / "fig.png")
  assert (tmp_path / "fig.png").stat().st_size > 10_000
  readme = (ROOT / "README.md").read_text()
  # the table's numbers are the committed results' (a stale README fails here)
  row = next(line for line in readme.splitlines() if "epoch 100 of 200" in line)
  x, light = readme_figure.gpu_curve("wrn16-1_40-1__light")
  _, rocket = readme_figure.gpu_curve("wrn16-1_40-1__rocket")
  i = x.index(100.0)
  assert f"| {light[i]:.2f} | {rocket[i]:.2f} |" in row
  cpu = readme_figure.cpu_errors()
  assert f"{statistics.mean(cpu['light']):.2f} ± {statistics.stdev(cpu['light']):.2f}" in readme
  assert f"{statistics.mean(cpu['rocket']):.2f} ± {statistics.stdev(cpu['rocket']):.2f}" in readme
  p = readme_figure.paper_row()
  assert f"| {p['base']} | {p['rocket']} | {p['booster_cotrained']} |" in readme
