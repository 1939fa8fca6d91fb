"""The --quick modes of the CTR latency, mesh-scaling and stacked-throughput benchmarks run (no
timing assertions)."""

import subprocess
import sys

from conftest import ROOT


def test_ctr_latency_quick(tmp_path):
  out = tmp_path / "lat.json"
  res = subprocess.run([sys.executable, "-m", "benchmarks.ctr_latency", "--quick", f"--json={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "booster/light" in res.stdout
  import json

  results = json.loads(out.read_text())["results"]
  assert {r["scorer"] for r in results} == {"light fp32", "light int8", "booster fp32", "booster int8"}
  assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in results)


def test_mesh_scaling_quick(tmp_path):
  out = tmp_path / "mesh.json"
  res = subprocess.run([sys.executable, "-m", "benchmarks.mesh_scaling", "--quick", "--devices=1,2",
                        "--steps=1", "--repeats=1", f"--json={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=400)
  assert res.returncode == 0, res.stderr[-3000:]
  import json

  rows = json.loads(out.read_text())["rows"]
  assert [r["devices"] for r in rows] == [1, 2] and rows[0]["wrn_vs_1"] == 1.0
  assert rows[1]["ctr_mesh"] == "data=1 x model=2"


def test_gpu_throughput_quick(tmp_path):
  out = tmp_path / "stack.json"
  res = subprocess.run([sys.executable, "-m", "benchmarks.gpu_throughput", "--quick", "--nets=light",
                        "--run_axes=unrolled", f"--json_out={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=400)
  assert res.returncode == 0, res.stderr[-3000:]
  import json

  rows = json.loads(out.read_text())["rows"]
  assert [(r["net"], r["R"]) for r in rows] == [("light", 1), ("light", 2)]
  assert rows[0]["vs separate"] == 1 and rows[1]["img/s all"] > 0 and rows[1]["TFLOP/s"] > 0
