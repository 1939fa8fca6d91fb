"""The package's import graph: no cycle, a core that knows no domain, a library that knows no tool.

Read from the source (every ``import``, at module level or inside a function), so the rule holds
for lazy imports too.  The layers (ARCHITECTURE in README "Design notes"):

* core -- the train loop and step, objective, losses, methods, the task interface, input
  pipeline, checkpoints, config handling: imports nothing image-, CTR- or tool-specific;
* domains -- ``rocket.image_task`` + ``rocket.models`` + ``rocket.data`` (images) and
  ``rocket.ctr`` (CTR): may import the core; a task is found by name (``rocket.tasks.TASKS``);
* tools -- the command-line programs: may import anything; nothing in the library imports them.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = {"rocket.train", "rocket.objective", "rocket.losses", "rocket.methods", "rocket.tasks",
        "rocket.input_pipeline", "rocket.checkpoint", "rocket.config_util", "rocket.stacked",
        "rocket.metric_writers"}
TOOLS = {"rocket.main", "rocket.sweep", "rocket.report", "rocket.cli", "rocket.ctr.export",
         "rocket.ctr.compression_report"}


def modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in (ROOT / "rocket").rglob("*.py"):
    parts = path.relative_to(ROOT).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = path
  return out


def import_graph() -> dict[str, set[str]]:
  mods = modules()
  graph = {m: set() for m in mods}
  for mod, path in mods.items():
    for node in ast.walk(ast.parse(path.read_text())):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        # `from pkg import submodule` imports the submodule; `from pkg import name`, pkg
        names = [x for x in subs if x in mods] or [node.module]
      for name in names:
        while name and name not in mods:  # `from rocket.x import y`: y a module, else rocket.x
          name = name.rpartition(".")[0]
        if name and name != mod and name != "rocket":
          graph[mod].add(name)
  return graph


def find_cycle(graph):
  state, stack = {}, []

  def visit(m):
    state[m] = 1
    stack.append(m)
    for n in sorted(graph[m]):
      if state.get(n) == 1:
        return stack[stack.index(n):] + [n]
      if n not in state and (c := visit(n)):
        return c
    stack.pop()
    state[m] = 2
    return None

  for m in sorted(graph):
    if m not in state and (c := visit(m)):
      return c
  return None


def test_the_graph_is_read():
  g = import_graph()
  assert "rocket.objective" in g["rocket.train"] and "rocket.tasks" in g["rocket.train"]
  assert "rocket.models.rocket" in g["rocket.image_task"]


def test_no_import_cycle():
  assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_core_imports_no_domain_and_no_tool():
  g = import_graph()
  assert CORE <= set(g)
  bad = {(m, n) for m in CORE for n in g[m] if n.startswith("rocket.") and n not in CORE}
  assert not bad, sorted(bad)


def test_library_imports_no_tool():
  g = import_graph()
  bad = {(m, n) for m in set(g) - TOOLS for n in g[m] if n in TOOLS}
  assert not bad, sorted(bad)
