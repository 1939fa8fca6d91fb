"""benchmarks/ctr_baselines.py --quick on the real Frappe and MovieLens rows: every baseline fits, its
metrics are finite, sklearn's roc_auc_score agrees with rocket.ctr.metrics.auc, our rows are read."""

import json
import math

import numpy as np
import pytest

from benchmarks import ctr_baselines
from tests.conftest import ROOT

DATA = ROOT.parent / "shared" / "data" / "ctr"
NEEDED = (DATA / "frappe" / "frappe_libfm.npz", DATA / "movielens100k" / "ml100k_ctr.npz")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  if not all(p.is_file() for p in NEEDED):
    pytest.skip(f"the CTR data is not in {DATA}")
  out = tmp_path_factory.mktemp("ctr_baselines") / "r.json"
  return ctr_baselines.main(["--quick", f"--json_out={out}"]), out


def test_every_baseline_has_finite_metrics_on_both_datasets(quick):
  result, out = quick
  assert json.loads(out.read_text())["benchmark"] == "ctr_baselines"
  assert [d["dataset"] for d in result["datasets"]] == ["frappe", "movielens"]
  for d in result["datasets"]:
    assert [b["name"] for b in d["baselines"]] == list(ctr_baselines.BASELINES)
    for b in d["baselines"]:
      for split in ("valid", "test"):
        m = b[split]
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["gauc"] <= 1.0, (d["dataset"], b["name"], m)
        assert math.isfinite(m["logloss"]) and m["logloss"] > 0
      assert b["chosen"]["valid_auc"] == pytest.approx(b["valid"]["auc"])


def test_sklearn_auc_agrees_with_ours(quick):
  result, _ = quick
  for d in result["datasets"]:
    for b in d["baselines"]:
      assert b["oracle_auc_abs_diff"] < 1e-9


def test_our_rows_come_from_the_committed_runs(quick):
  result, _ = quick
  for d in result["datasets"]:
    ours = d["ours"]
    assert ours["same_rows_as_baselines"], ours["source"]
    assert any("_tuned" in r["source"] for r in ours["rows"])  # the tuned operating point too
    light = [r for r in ours["rows"] if r["net"] == "light"]
    assert light and d["best_light"]["auc"] == max(r["auc"] for r in light)
    assert "(best light)" in d["table"]
    assert d["table"].count("\n") == 1 + len(d["baselines"]) + len(ours["rows"])  # header, rule, rows


def test_exact_crosses_drop_values_unseen_in_train():
  """One column per distinct train pair; a valid/test pair never seen in train activates nothing."""
  from rocket.ctr.data import CTRDataset, CTRSplit
  from rocket.ctr.features import FieldSpec

  def split(ids):
    ids = np.asarray(ids, np.int32)
    return CTRSplit(ids, np.zeros(len(ids), np.float32), ids[:, 0].astype(np.int64))

  ds = CTRDataset("toy", [FieldSpec("a", 3, "user"), FieldSpec("b", 3, "item")],
                  split([[1, 1], [1, 2], [2, 1], [1, 1]]), split([[2, 2]]), split([[1, 2], [0, 1]]))
  (train, valid, test), widths = ctr_baselines.one_hot(ds, [(0,), (1,), (0, 1)])
  assert widths == [2, 2, 3]  # a in {1, 2}; b in {1, 2}; (a, b) in {(1, 1), (1, 2), (2, 1)}
  assert train.sum(axis=1).tolist() == [[3]] * 4
  assert valid.toarray()[0, 4:].tolist() == [0, 0, 0]  # the pair (2, 2) is not in train
  assert test.toarray().tolist() == [[1, 0, 0, 1, 0, 1, 0], [0, 0, 1, 0, 0, 0, 0]]
