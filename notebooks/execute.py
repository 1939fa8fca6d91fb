"""Execute the notebooks in full (non-quick) mode and write them back with their outputs.

Usage (from the repository root)::

    python -m notebooks.execute                      # all of notebooks/*.ipynb
    python -m notebooks.execute 02_ablations 03      # some: paths, names, stems or their prefixes

Each notebook runs top to bottom with nbclient, from the repository root, with matplotlib's inline
backend (figures embedded as PNG), and is written back in place. Outputs are scrubbed of paths that
would change from one machine or run to the next (the checkout, temporary folders, the home folder),
and ``metadata["rocket"]`` records what produced them: the sha256 of the code cells
(:func:`code_sha256`; ``tests/notebooks_test.py`` fails when a code cell changed since), the date,
the jax version, the machine and the wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import platform
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel uses by default
COMMAND = "python -m notebooks.execute"


def notebook_paths(names=()) -> list[pathlib.Path]:
  """``notebooks/*.ipynb``, or those named (``02_ablations``, ``02_ablations.ipynb`` or a path)."""
  if not names:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))
  every = notebook_paths()
  paths = []
  for name in names:
    p = pathlib.Path(name)
    if not p.is_file():
      found = [q for q in every if q.name == p.name or q.stem == p.name] or [
          q for q in every if q.stem.startswith(p.name)]
      if len(found) != 1:
        raise SystemExit(f"{COMMAND}: no single notebook {name!r} "
                         f"(have: {', '.join(q.stem for q in every)})")
      p = found[0]
    paths.append(p.resolve())
  return paths


def code_sha256(nb) -> str:
  """sha256 of the code cells' sources, each followed by a NUL byte, in order."""
  h = hashlib.sha256()
  for cell in nb.cells:
    if cell.cell_type == "code":
      h.update(cell.source.encode() + b"\0")
  return h.hexdigest()


def scrub(text: str, root: pathlib.Path = ROOT) -> str:
  """``text`` with machine- and run-specific paths replaced by placeholders."""
  root = pathlib.Path(root).resolve()
  # the checkout first: it may itself live under /tmp (a CI clone)
  text = text.replace(str(root.parent / "shared"), "<repo>/../shared")
  text = text.replace(str(root), "<repo>")
  tmp = re.escape(str(pathlib.Path(tempfile.gettempdir()).resolve()))
  text = re.sub(tmp + r"/[\w.-]+", "<tmpdir>", text)  # e.g. mkdtemp(prefix="rocket_ctr_") folders
  text = re.sub(r"(?<![\w.-])/tmp/[\w.-]+", "<tmpdir>", text)
  home = str(pathlib.Path.home())
  if len(home) > 1:
    text = text.replace(home, "~")
  return text


def merge_streams(outputs: list) -> list:
  """``outputs`` with each run of consecutive writes to one stream (stdout, stderr) as one output."""
  merged = []
  for out in outputs:
    last = merged[-1] if merged else None
    if (last is not None and out.output_type == "stream" and last.output_type == "stream"
        and last.name == out.name):
      last.text += out.text
    else:
      merged.append(out)
  return merged


def scrub_outputs(nb, root: pathlib.Path = ROOT) -> None:
  """Scrub the text of every output in place (images are left alone); merge stream writes."""
  for cell in nb.cells:
    if cell.cell_type != "code":
      continue
    cell.metadata.pop("execution", None)  # timestamps
    cell.outputs = merge_streams(cell.outputs)
    for out in cell.outputs:
      if out.output_type == "stream":
        out.text = scrub(out.text, root)
      elif out.output_type in ("display_data", "execute_result"):
        for mime, value in out.get("data", {}).items():
          if mime.startswith("text/") and isinstance(value, str):
            out.data[mime] = scrub(value, root)
      elif out.output_type == "error":
        out.traceback = [scrub(t, root) for t in out.traceback]


def kernel_env(quick: bool = False) -> dict[str, str]:
  """The environment the kernel starts with: the checkout importable, inline figures."""
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env["MPLBACKEND"] = INLINE_BACKEND
  env.pop("ROCKET_NB_RESULTS", None)
  if quick:
    env["ROCKET_NB_QUICK"] = "1"
  else:
    env.pop("ROCKET_NB_QUICK", None)
  return env


def run(nb, env: dict[str, str] | None = None, timeout: int = 1800, cwd: pathlib.Path = ROOT):
  """Execute ``nb`` in place with nbclient; raises ``CellExecutionError`` on the first error."""
  import nbclient  # noqa: PLC0415 -- optional dependency (pip install -e ".[notebooks]")

  client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                   resources={"metadata": {"path": str(cwd)}})
  client.execute(env=kernel_env() if env is None else env)
  return nb


def machine() -> str:
  return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({platform.system()})"


def execute(path: pathlib.Path) -> float:
  """Execute one notebook in full mode and write it back; returns the wall time in seconds."""
  import jax  # noqa: PLC0415
  import nbformat  # noqa: PLC0415

  nb = nbformat.read(path, as_version=4)
  t0 = time.time()
  run(nb)
  took = time.time() - t0
  scrub_outputs(nb)
  nb.metadata["rocket"] = {
      "code_sha256": code_sha256(nb),
      "executed": time.strftime("%Y-%m-%d"),
      "command": f"{COMMAND} {path.stem}",
      "jax": jax.__version__,
      "python": platform.python_version(),
      "machine": machine(),
      "wall_time_s": round(took, 1),
  }
  nbformat.validate(nb)
  nbformat.write(nb, path)
  return took


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
  parser.add_argument("names", nargs="*", help="notebooks to execute (default: all of notebooks/)")
  args = parser.parse_args(argv)
  for path in notebook_paths(args.names):
    print(f"executing {path.relative_to(ROOT)} ...", flush=True)
    took = execute(path)
    size = path.stat().st_size
    print(f"  {took:.1f} s, {size / 1024:.0f} KiB written", flush=True)
    if size > 1 << 20:
      print(f"  warning: {path.name} is over 1 MiB", file=sys.stderr)


if __name__ == "__main__":
  main()
