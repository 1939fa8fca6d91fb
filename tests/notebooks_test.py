"""notebooks/*.ipynb are committed executed, their outputs current, and they still run.

* Every notebook is committed with the outputs of a full run by ``python -m notebooks.execute``
  (cells numbered 1..n, no errors, its figures), from its current code cells
  (``metadata["rocket"]["code_sha256"]``).
* Notebook 02 shows the committed ablation results: it is re-executed here (seconds) and its text
  outputs, the comparison tables among them, must equal the committed ones, so a ``runs.json`` or
  a ``paper_repro/compare.py`` that changed without re-executing the notebook fails.
* Each notebook also runs top to bottom in quick mode (``ROCKET_NB_QUICK=1``: seconds, on synthetic
  data, in temporary folders; notebook 02 is pointed at a results folder that does not exist, so it
  runs its own tiny sweep). That catches an API change that breaks a notebook; nothing is written.
"""

import difflib
import pathlib
import re
import tempfile
import time

import pytest

from notebooks import execute
from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = execute.notebook_paths()
RESULTS_DRIVEN = "02_ablations.ipynb"


def again(path: pathlib.Path) -> str:
  return f"re-execute it: `{execute.COMMAND} {path.stem}` (from the repository root)"


def code_cells(nb):
  return [c for c in nb.cells if c.cell_type == "code"]


def text_outputs(nb) -> list[str]:
  """Each code cell's outputs as text (streams, markdown, plain text; not images), one string a
  cell, with the date that ``compare_markdown`` writes masked."""
  cells = []
  for i, cell in enumerate(code_cells(nb), 1):
    parts = [f"[cell {i}]"]
    for out in cell.outputs:
      if out.output_type == "stream":
        parts.append(f"<{out.name}>\n{out.text}")
      elif out.output_type in ("display_data", "execute_result"):
        data = out.get("data", {})
        mime = next((m for m in ("text/markdown", "text/plain") if m in data), None)
        parts.append(f"<{'+'.join(sorted(data))}>\n{data[mime] if mime else ''}")
      else:
        parts.append(f"<{out.output_type}>")
    cells.append(re.sub(r"Written \d{4}-\d{2}-\d{2}\.", "Written <date>.", "\n".join(parts)))
  return cells


def test_the_notebooks_exist():
  assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_ablations.ipynb",
                                         "03_ctr_compression.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_is_committed_executed_from_its_current_code(path: pathlib.Path):
  assert path.stat().st_size < 1 << 20, f"{path.name} is over 1 MiB"
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(params) == 1 and "ROCKET_NB_QUICK" in params[0].source, path.name
  meta = nb.metadata.get("rocket")
  assert meta, f"{path.name} is committed without outputs; {again(path)}"
  assert meta["code_sha256"] == execute.code_sha256(nb), (
      f"{path.name}: a code cell changed since the notebook was executed "
      f"({meta['executed']}); {again(path)}")
  for key in ("executed", "jax", "machine", "wall_time_s"):
    assert key in meta, key
  cells = code_cells(nb)
  assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), (
      f"{path.name}: cells not executed once each, in order; {again(path)}")
  errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
  assert not errors, f"{path.name} is committed with an error: {errors[0].get('ename')}; {again(path)}"
  if any("plt." in c.source for c in cells):
    pngs = [o for c in cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert pngs, f"{path.name} plots but holds no figure; {again(path)}"
  text = "\n".join(text_outputs(nb))
  assert str(ROOT) not in text and "/tmp/" not in text, f"{path.name}: unscrubbed paths in its outputs"


def test_the_ablation_notebook_shows_the_committed_results():
  """Re-executed against the committed results, notebook 02 shows exactly what it holds."""
  path = ROOT / "notebooks" / RESULTS_DRIVEN
  committed = nbformat.read(path, as_version=4)
  fresh = nbformat.read(path, as_version=4)
  t0 = time.time()
  execute.run(fresh, timeout=300)
  print(f"{path.name}: {time.time() - t0:.1f} s")
  execute.scrub_outputs(fresh)
  old, new = text_outputs(committed), text_outputs(fresh)
  if old != new:
    diff = "\n".join(difflib.unified_diff("\n".join(old).splitlines(), "\n".join(new).splitlines(),
                                          "committed", "now", lineterm="", n=1))
    pytest.fail(f"{path.name} is stale: its outputs differ from a run on the committed results; "
                f"{again(path)}\n{diff[:4000]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path: pathlib.Path, tmp_path):
  env = execute.kernel_env(quick=True)
  env["ROCKET_NB_RESULTS"] = str(tmp_path / "no_results_here")
  before = {p: p.read_bytes() for p in path.parent.iterdir() if p.is_file()}
  nb = nbformat.read(path, as_version=4)
  t0 = time.time()
  execute.run(nb, env, timeout=300)  # raises CellExecutionError naming the cell on the first error
  took = time.time() - t0
  errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
  assert not errors
  assert {p: p.read_bytes() for p in path.parent.iterdir() if p.is_file()} == before
  print(f"{path.name}: {took:.1f} s")


def test_scrub_masks_machine_paths():
  text = (f"{ROOT}/paper_repro/results/x and {ROOT.parent}/shared/data/cifar10 and "
          f"{tempfile.gettempdir()}/rocket_quickstart_x_1y2/light and /tmp/rocket_ctr_ab12cd/fp32")
  assert execute.scrub(text) == ("<repo>/paper_repro/results/x and <repo>/../shared/data/cifar10 and "
                                 "<tmpdir>/light and <tmpdir>/fp32")


def test_scrub_masks_a_checkout_that_lives_under_tmp():
  root = pathlib.Path(tempfile.gettempdir()) / "ci" / "rocket"  # e.g. a CI clone
  text = f"{root}/paper_repro/results/x and {root.parent}/shared/data and /tmp/rocket_ctr_ab12cd/fp32"
  assert execute.scrub(text, root) == ("<repo>/paper_repro/results/x and <repo>/../shared/data and "
                                       "<tmpdir>/fp32")
