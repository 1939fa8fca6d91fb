"""CTR sweep -> report table (early stopping on valid AUC) and the compression table (incl. int8 PTQ)."""

import json
import os
import subprocess
import sys

from conftest import ROOT

from rocket import report
from rocket.ctr import compression_report

SWEEP = '''
def get_sweep():
  return dict(seeds=(0,), runs=[
      dict(name="light-fp32", overrides={"method": "light"}),
      dict(name="light-int8_qat", overrides={"method": "light", "embedding.qat": True}),
      dict(name="rocket-fp32", overrides={"method": "rocket"}),
  ])
'''


def test_ctr_sweep_report_and_compression_table(tmp_path):
  f = tmp_path / "s.py"
  f.write_text(SWEEP)
  cmd = [sys.executable, "-m", "rocket.sweep", "--config=configs/ctr_frappe.py:tiny", f"--sweep={f}",
         f"--workdir={tmp_path / 'sw'}", "--config.num_train_steps=6", "--config.eval_every_steps=2"]
  r = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]

  table = report.write_report(tmp_path / "sw", tmp_path / "rep", "CTR test")
  rows = [x for x in table.splitlines() if x.startswith("| ")]
  assert rows[0].startswith("| run | seeds | light AUC | light GAUC")
  rocket_row = next(x for x in rows if x.startswith("| rocket-fp32 "))
  assert rocket_row.count("0.") >= 5  # light and booster AUC/GAUC/logloss filled in
  # the early-stopping pick is the record with the best validation AUC
  curve = [json.loads(x) for x in (tmp_path / "sw/light-fp32/seed0/metrics.jsonl").read_text().splitlines()]
  best = max(curve, key=lambda rec: rec["valid/light_auc"])
  assert report.best_valid_record(curve, "light") is best
  assert f"{best['test/light_auc']:.4f}" in next(x for x in rows if x.startswith("| light-fp32 "))

  text = compression_report.write(tmp_path / "sw", tmp_path / "comp", "Compression test")
  lines = {x.split("|")[1].strip(): x for x in text.splitlines() if x.startswith("| ")}
  fp32_bytes = int(lines["light-fp32"].split("|")[3].replace(",", ""))
  qat_bytes = int(lines["light-int8_qat"].split("|")[3].replace(",", ""))
  assert qat_bytes < 0.5 * fp32_bytes  # a QAT run is counted as served: int8 tables
  assert "light-fp32 (last checkpoint, int8 PTQ)" in lines and "rocket-fp32 (last checkpoint)" in lines
  assert (tmp_path / "comp" / "tradeoff.png").stat().st_size > 1000
