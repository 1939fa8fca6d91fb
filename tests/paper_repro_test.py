"""paper_repro/: the comparison with the paper's numbers, on sweep dirs written by hand."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from paper_repro import compare, paper_numbers
from rocket import config_util
from rocket.config_util import apply_overrides
from tests.conftest import ROOT, load_config



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
      "rocket-gb_off": ({"method": "rocket", "gradient_block": "off"}, (29.5, 30.5), (26.0, 26.0)),
      "rocket-gb_strict": ({"method": "rocket", "gradient_block": "strict"}, (28.0, 28.0), (25.0, 25.0)),
      "rocket-hint_kd_kl": ({"method": "rocket", "hint.kind": "kd_kl"}, (28.5, 29.5), (25.0, 25.0)),
  }
  plan = []
  for name, (ov, light, boost) in spec.items():
    plan.append({"name": name, "overrides": ov})
    for seed in (0, 1):
      write_run(root, name, seed, image_config(**ov), light and light[seed], boost and boost[seed],
                teacher_err=25.0 if name == "kd" else None)
  plan.append({"name": "at_kd", "overrides": {"method": "at_kd"}})  # planned, never finished
  write_plan(root, plan)
  return root


def rows_of(text: str, first_cell: str) -> list[str]:
  return [x for x in text.splitlines() if x.startswith(f"| {first_cell} |")]


def test_table1_has_the_papers_and_our_numbers(ablation_dir):
  runs = compare.load_runs(ablation_dir)
  text = compare.compare_markdown(runs, "cifar10_methods", source=str(ablation_dir))
  t1 = paper_numbers.CIFAR10_TABLE1["rows"][0]
  (base,) = rows_of(text, "base (light alone)")
  assert f"{t1['base']:.2f}" in base and "31.00 ± 1.41" in base and "| light |" in base
  (rocket,) = rows_of(text, "rocket")
  assert f"{t1['rocket']:.2f}" in rocket and "27.50 ± 0.71" in rocket
  assert f"{t1['rocket'] - t1['base']:+.2f}" in rocket and "-3.50" in rocket  # paper Δ and ours
  (kd,) = rows_of(text, "KD")
  assert f"{t1['kd']:.2f}" in kd and "30.00 ± 1.41" in kd
  (cotrained,) = rows_of(text, "booster (co-trained in rocket)")
  assert "6.64" in cotrained and "25.00 ± 1.41" in cotrained
  (alone,) = rows_of(text, "booster alone")
  assert "6.58" in alone and "26.00 ± 1.41" in alone
  # the setup columns: data, budget, seeds, device; the CPU pair is not a paper row
  for row in (base, rocket, kd, cotrained, alone):
    assert "CIFAR-10 (JPEG q≈75 copy)" in row and "150 steps" in row and "2 (0,1)" in row
    assert "1 x cpu" in row and "≠" in row
  assert "3, median" in text  # the paper's seeds


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
  cmd = [sys.executable, "paper_repro/compare.py", "--table=cifar10_methods",
         f"--results={tmp_path / 'res' / 'runs.json'}", f"--out={out}"]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "7.87" in out.read_text() and "27.50 ± 0.71" in out.read_text()
  bad = subprocess.run(cmd[:2] + ["--table=nope", f"--results={tmp_path}"], cwd=ROOT, env=env,
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
  for d, (le, re) in {10: (40.0, 38.0), 16: (35.0, 34.0)}.items():
    for method, err in (("light", le), ("rocket", re)):
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
  expected = {  # sweep file -> {run name: first (section, column)}
      "ablation_cifar10.py": {"light": ("cifar10_methods", "base"), "at": ("cifar10_methods", "at"),
                              "rocket-share_none": ("cifar10_ablation", "no_sharing"),
                              "rocket-gb_off": ("cifar10_ablation", "no_gb"),
                              "rocket-hint_l2_softmax": ("cifar10_hints", "mse"),
                              "rocket-gb_strict": None, "at_kd": None},
      "cifar10_methods_full.py": {"wrn16-2_40-2__rocket_kd": ("cifar10_methods", "rocket_kd"),
                                  "wrn16-1_40-1a__rocket": ("cifar10_methods", "rocket")},
      "cifar10_ablation_full.py": {"rocket_a-gb_off": ("cifar10_ablation", "no_gb"),
                                   "rocket_b-hint_kd_kl": ("cifar10_hints", "kd_hint")},
      "depth_cifar10.py": {"rocket-d22": ("cifar10_methods", "rocket")},
  }
  base = load_config("cpu")
  for file, want in expected.items():
    s = load_sweep(ROOT / "paper_repro" / "sweeps" / file)
    for run in s["runs"]:
      cfg = apply_overrides(base, run["overrides"]).to_dict()
      got = compare.paper_entries(cfg)
      if run["name"] in want:
        assert (got[0][:2] if got else None) == want[run["name"]], (file, run["name"], got)
  # Table 1 row (a) for bottom sharing; row 2 for the WRN-16-2 pair; exact matches at full scale
  full = apply_overrides(load_config(""), {"share": "bottom"}).to_dict()
  row, exact = compare.paper_row("cifar10_methods", "rocket", full)
  assert row["share"] == "a" and exact
  wide = apply_overrides(load_config(""), {"light.width": 2, "booster.width": 2}).to_dict()
  row, exact = compare.paper_row("cifar10_methods", "rocket", wide)
  assert row["light_net"] == "WRN-16-2" and row["rocket"] == 5.67 and exact
  t4 = compare.paper_entries(apply_overrides(load_config(""), {"dataset": "svhn"}).to_dict())
  assert t4 == [("svhn", "rocket", "light")]
  assert compare.paper_value(compare.paper_row("svhn", "rocket", {})[0], "rocket") == 2.29


def test_paper_presets():
  spec = importlib.util.spec_from_file_location("paper_cfg", ROOT / "paper_repro" / "configs" / "paper.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  full = mod.get_config("cifar10")
  assert (full.num_epochs, full.batch_size, full.optim.lr, full.optim.weight_decay) == (200, 128, 0.1, 5e-4)
  assert not full.optim.nesterov and full.pad_mode == "reflect" and full.hint.weight == 0.03
  svhn = mod.get_config("svhn")
  assert svhn.optim.name == "adam" and svhn.optim.lr == 1e-3 and svhn.augment and not svhn.augment_flip
  cpu = mod.get_config("cifar100_cpu")
  assert cpu.dataset == "cifar100" and cpu.num_train_steps == 150
  with pytest.raises(ValueError, match="preset"):
    mod.get_config("imagenet")


@pytest.mark.parametrize("file", sorted(p.name for p in (ROOT / "paper_repro" / "sweeps").glob("*.py")))
def test_every_sweep_file_names_real_config_fields(file):
  """Each sweep loads, and every override applies to the base config its docstring runs it with."""
  import re

  path = ROOT / "paper_repro" / "sweeps" / file
  s = load_sweep(path)
  spec = re.search(r"--config=(\S+)", path.read_text())
  assert spec, f"{file}: its docstring should show the rocket.sweep command (with --config=...)"
  base = config_util.load_config(spec.group(1))
  for run in s["runs"]:
    apply_overrides(base, dict(run.get("overrides", {}), seed=0))  # ValueError if not
