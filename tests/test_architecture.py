"""The package's import graph: no import cycles, and every import goes down the layer table.

The checker reads every ``clipspace/**/*.py`` with ``ast`` (nothing is imported) and collects every
import of a ``clipspace`` module: module level and inside functions (a function-local import is
still a dependency, and still a cycle when it closes one), ``import x``, ``from x import y``,
relative imports (resolved against the importing module), ``from clipspace.pkg import name`` where
``name`` is a submodule (counted as that submodule) and ``importlib.import_module("clipspace.x")``
with a literal name. Imports under ``if TYPE_CHECKING:`` count too. ``clipspace/__init__.py`` is
left out: it imports lazily through ``importlib`` and is never imported by the package itself.

Failures, all listed in one assertion message:
- import cycles between modules, each as a chain ``a -> b -> a`` (the shortest cycle through each
  module of a strongly connected component, so every module of a tangle is named);
- cycles between units (modules collapsed to their top-level unit, ``clipspace.data.mad`` ->
  ``clipspace.data``);
- imports that do not go down the layer table (a unit imports only units of lower rank, or
  itself; ``clipspace.geometry`` imports nothing of ours but itself);
- modules whose unit is not in the table, and imports of ``clipspace`` modules that do not exist.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "clipspace"
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Mirrors the layer table of docs/ARCHITECTURE.md: unit -> rank. A unit may import only units of
# LOWER rank, or itself. Keep the two in step.
LAYERS: dict[str, int] = {
    "clipspace.errors": 0,
    "clipspace.io": 0,
    "clipspace.tree": 0,
    "clipspace.geometry": 1,
    "clipspace.losses": 2,
    "clipspace.config": 3,
    "clipspace.checkpoint": 4,
    "clipspace.data": 5,
    "clipspace.models": 6,
    "clipspace.eval": 7,
    "clipspace.analysis": 8,
    "clipspace.train": 9,
    "clipspace.report": 10,
    "clipspace.experiments": 11,
    "clipspace.cli": 12,
}
# units that may import nothing of ours except themselves (whatever their rank)
SELF_CONTAINED: frozenset[str] = frozenset({"clipspace.geometry"})


@dataclass
class ImportGraph:
    modules: dict[str, Path]  # dotted module name -> file
    edges: dict[str, set[str]] = field(default_factory=dict)  # importer -> imported modules
    lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (importer, imported) -> line
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # (importer, line, name)


def module_name(path: Path, root: Path, package: str = PACKAGE) -> str:
    """``root/data/mad.py`` -> ``clipspace.data.mad``; ``root/data/__init__.py`` ->
    ``clipspace.data``."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _ours(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _import_targets(tree: ast.AST, importer: str, is_package: bool, package: str
                    ) -> Iterable[tuple[str, tuple[str, ...], int]]:
    """(base module, imported names or (), line) for every import of ``package`` in ``tree``."""
    for node in ast.walk(tree):  # every node: module level, functions, classes, if-blocks
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name, package):
                    yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = importer.split(".") if is_package else importer.split(".")[:-1]
                up = here[: len(here) - (node.level - 1)]
                base = ".".join([*up, node.module] if node.module else up)
            else:
                base = node.module or ""
            if _ours(base, package):
                yield base, tuple(a.name for a in node.names), node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (called in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _ours(arg.value, package)):
                yield arg.value, (), node.lineno


def import_graph(root: Path, package: str = PACKAGE) -> ImportGraph:
    """The module-level import graph of the package in ``root`` (the directory of its
    ``__init__.py``), built from the source only."""
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    graph = ImportGraph({module_name(p, root, package): p for p in files})
    for name, path in graph.modules.items():
        graph.edges.setdefault(name, set())
        if name == package:  # the top-level __init__: lazy importlib re-exports only
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for base, names, line in _import_targets(tree, name, path.name == "__init__.py",
                                                 package):
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in graph.modules]
            if len(targets) < len(names) or not names:
                targets.append(base)  # names defined in ``base`` (or ``import base``)
            for target in targets:
                if target == package:  # the lazy top-level package: nothing runs on import
                    continue
                if target not in graph.modules:
                    graph.missing.append((name, line, target))
                    continue
                if target != name:
                    graph.edges[name].add(target)
                    graph.lines.setdefault((name, target), line)
    return graph


def unit_of(module: str) -> str:
    """The top-level unit of a module: ``clipspace.data.mad`` -> ``clipspace.data``."""
    return ".".join(module.split(".")[:2])


def collapse(edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The graph between units (self-edges dropped)."""
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        ua = unit_of(a)
        out.setdefault(ua, set())
        for b in targets:
            if unit_of(b) != ua:
                out[ua].add(unit_of(b))
    return out


def _components(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    comps.append(sorted(comp))
    return comps


def _shortest_cycle(edges: Mapping[str, set[str]], start: str, allowed: set[str]) -> list[str]:
    """Shortest path start -> ... -> start inside ``allowed`` (breadth first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges.get(node, ())):
            if nxt not in allowed:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in seen:
                seen.add(nxt)
                parent[nxt] = node
                queue.append(nxt)
    return []


def find_cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Cycles as closed chains ``[a, b, a]``: per strongly connected component, the shortest
    cycle through each of its nodes, rotated to start at its smallest name, without repeats."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for comp in _components(edges):
        if len(comp) < 2 and comp[0] not in edges.get(comp[0], ()):
            continue
        for node in comp:
            cyc = _shortest_cycle(edges, node, set(comp))[:-1]
            i = cyc.index(min(cyc))
            key = tuple(cyc[i:] + cyc[:i])
            if key not in seen:
                seen.add(key)
                cycles.append([*key, key[0]])
    return sorted(cycles, key=lambda c: (len(c), c))


def check(root: Path, layers: Mapping[str, int] = LAYERS, package: str = PACKAGE,
          self_contained: Iterable[str] = SELF_CONTAINED) -> list[str]:
    """Every violation, one readable line each (empty when the package is clean)."""
    graph = import_graph(root, package)
    problems: list[str] = []

    def where(a: str, b: str) -> str:
        path = graph.modules[a].relative_to(root.parent)
        return f"{path}:{graph.lines[(a, b)]}"

    for cyc in find_cycles(graph.edges):
        problems.append("module cycle: " + " -> ".join(cyc))
    for cyc in find_cycles(collapse(graph.edges)):
        problems.append("unit cycle: " + " -> ".join(cyc))
    for module in sorted(graph.modules):
        if module != package and unit_of(module) not in layers:
            problems.append(f"not in the layer table: {module} (unit {unit_of(module)})")
    closed = set(self_contained)
    for a in sorted(graph.edges):
        ua = unit_of(a)
        for b in sorted(graph.edges[a]):
            ub = unit_of(b)
            if ua == ub or ua not in layers or ub not in layers:
                continue  # same unit; units outside the table are reported above
            if ua in closed:
                problems.append(f"{ua} must import nothing of ours: {a} imports {b} "
                                f"({where(a, b)})")
            elif layers[ub] >= layers[ua]:
                problems.append(f"layer violation: {a} (rank {layers[ua]}) imports {b} "
                                f"(rank {layers[ub]}) ({where(a, b)})")
    for a, line, name in sorted(graph.missing):
        path = graph.modules[a].relative_to(root.parent)
        problems.append(f"import of a missing module: {a} imports {name} ({path}:{line})")
    return problems


def test_package_import_graph() -> None:
    assert len(import_graph(PACKAGE_ROOT).modules) > 20, PACKAGE_ROOT  # the real package was read
    problems = check(PACKAGE_ROOT)
    assert not problems, f"{len(problems)} import-graph violations:\n" + "\n".join(problems)


def function_local_imports(root: Path, package: str = PACKAGE) -> list[str]:
    """``file:line`` of every import of one of our modules inside a function body (relative
    imports included): each such import either hides a cycle or defers a dependency that the
    module-level import list should show."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [("." * node.level) + (node.module or "")]
                         if isinstance(node, ast.ImportFrom) else [])
                if any(n.startswith(".") or _ours(n, package) for n in names):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_function_local_imports_of_our_modules(tmp_path: Path) -> None:
    assert function_local_imports(PACKAGE_ROOT) == []
    pkg = _write(tmp_path, {"a.py": "def f():\n    from clipspace import b\n",
                            "b.py": "import os\ndef g():\n    import json\n    from . import a\n"})
    assert function_local_imports(pkg) == ["clipspace/a.py:2", "clipspace/b.py:4"]


# --- the checker itself, on synthetic packages -------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "clipspace" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "clipspace"


CLEAN = {
    "__init__.py": "import importlib\nimportlib.import_module('clipspace.cli')\n",
    "errors.py": "class E(Exception):\n    pass\n",
    "io.py": "import os\n",
    "geometry/__init__.py": "from . import sphere\nfrom .sphere import dist\n",
    "geometry/sphere.py": "def dist():\n    from clipspace.geometry import _num\n",
    "geometry/_num.py": "",
    "data/__init__.py": "",
    "data/mad.py": "from ..errors import E\nfrom . import schema\nimport clipspace.io\n",
    "data/schema.py": "",
    "models/__init__.py": "from clipspace.models.clip import Model\n",
    "models/clip.py": "from clipspace.data import mad\nfrom clipspace.geometry import dist\n"
                      "class Model:\n    pass\n",
    "cli.py": "def main():\n    from clipspace.models import Model\n"
              "    import importlib\n    importlib.import_module('clipspace.data.mad')\n",
}


def test_checker_passes_a_clean_package_and_resolves_imports(tmp_path: Path) -> None:
    root = _write(tmp_path, CLEAN)
    assert check(root) == []
    edges = import_graph(root).edges
    assert edges["clipspace"] == set()  # the lazy top-level __init__ is not read
    assert edges["clipspace.geometry"] == {"clipspace.geometry.sphere"}
    assert edges["clipspace.geometry.sphere"] == {"clipspace.geometry._num"}  # function-local
    # relative imports resolved; a submodule named in ``from pkg import name`` is that submodule
    assert edges["clipspace.data.mad"] == {"clipspace.errors", "clipspace.data.schema",
                                           "clipspace.io"}
    assert edges["clipspace.models.clip"] == {"clipspace.data.mad", "clipspace.geometry"}
    assert edges["clipspace.cli"] == {"clipspace.models", "clipspace.data.mad"}


def test_checker_reports_cycles_upward_imports_and_unknown_modules(tmp_path: Path) -> None:
    bad = dict(CLEAN)
    bad.update({
        # a module-level cycle: the package __init__ and a module that reads a name from it
        "models/clip.py": "from clipspace.data import mad\nfrom clipspace.models import Base\n"
                          "class Model(Base):\n    pass\n",
        # a cycle closed by a function-local import (mad imports schema at module level)
        "data/schema.py": "def load():\n    from clipspace.data.mad import x\n",
        # upward: data (5) imports models (6), which imports data: also a unit cycle
        "data/build.py": "from clipspace.models import Model\n",
        # equal rank is not lower: io and errors (both 0) importing each other
        "errors.py": "def f():\n    from clipspace.io import write\n",
        "io.py": "from clipspace.errors import E\n",
        # geometry imports nothing of ours, not even a lower rank
        "geometry/_num.py": "from clipspace import errors\n",
        # not in the table; and an import of a module that does not exist
        "extra.py": "from clipspace.data.gone import thing\n",
    })
    problems = check(_write(tmp_path, bad))
    assert problems == [
        "module cycle: clipspace.data.mad -> clipspace.data.schema -> clipspace.data.mad",
        "module cycle: clipspace.errors -> clipspace.io -> clipspace.errors",
        "module cycle: clipspace.models -> clipspace.models.clip -> clipspace.models",
        "unit cycle: clipspace.data -> clipspace.models -> clipspace.data",
        "unit cycle: clipspace.errors -> clipspace.io -> clipspace.errors",
        "not in the layer table: clipspace.extra (unit clipspace.extra)",
        "layer violation: clipspace.data.build (rank 5) imports clipspace.models (rank 6) "
        "(clipspace/data/build.py:1)",
        "layer violation: clipspace.errors (rank 0) imports clipspace.io (rank 0) "
        "(clipspace/errors.py:2)",
        "clipspace.geometry must import nothing of ours: clipspace.geometry._num imports "
        "clipspace.errors (clipspace/geometry/_num.py:1)",
        "layer violation: clipspace.io (rank 0) imports clipspace.errors (rank 0) "
        "(clipspace/io.py:1)",
        "import of a missing module: clipspace.extra imports clipspace.data.gone "
        "(clipspace/extra.py:1)",
    ], "\n".join(problems)


def test_find_cycles_names_every_module_of_a_tangle() -> None:
    edges = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert find_cycles(edges) == [["d", "d"], ["a", "b", "a"], ["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
