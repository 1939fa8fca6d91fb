"""notebooks/*.ipynb run top to bottom without an error, with the reduced parameters.

Each notebook's parameter cell reads ``ROCKET_NB_QUICK=1`` (set here) and shrinks its budget to
seconds on synthetic data; notebook 02 is pointed at a results folder that does not exist, so it
runs its own tiny sweep.
"""

import os
import pathlib
import time

import pytest

from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist_and_are_stripped():
  assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_ablations.ipynb",
                                         "03_ctr_compression.ipynb"]
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "ROCKET_NB_QUICK" in params[0].source, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: pathlib.Path, tmp_path, monkeypatch):
  monkeypatch.setenv("ROCKET_NB_QUICK", "1")
  monkeypatch.setenv("ROCKET_NB_RESULTS", str(tmp_path / "no_results_here"))
  monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                    resources={"metadata": {"path": str(ROOT)}})
  t0 = time.time()
  client.execute()  # raises CellExecutionError naming the cell on the first error
  took = time.time() - t0
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors
  print(f"{path.name}: {took:.1f} s")
