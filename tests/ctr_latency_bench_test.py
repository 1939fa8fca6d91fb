"""The CTR latency benchmark's --quick mode runs (no timing assertions)."""

import subprocess
import sys

from conftest import ROOT


def test_ctr_latency_quick(tmp_path):
  out = tmp_path / "lat.json"
  res = subprocess.run([sys.executable, "benchmarks/ctr_latency.py", "--quick", f"--json={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "booster/light" in res.stdout
  import json

  results = json.loads(out.read_text())["results"]
  assert {r["scorer"] for r in results} == {"light fp32", "light int8", "booster fp32", "booster int8"}
  assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in results)
