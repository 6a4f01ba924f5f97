"""No import cycle among the package's modules.

Every ``import`` statement of every module counts — at module level, inside functions and
methods, under ``if TYPE_CHECKING:`` — relative or absolute. ``from pkg import name`` is an edge
to the submodule ``pkg.name`` when one exists, else to ``pkg`` itself (its ``__init__``). The
implicit import of a parent package's ``__init__`` when a submodule loads is not an edge (an
``__init__`` that re-exports its submodules would otherwise be a cycle with each of them).

The layer tables of docs/architecture.md are enforced too: every module has a layer, and no
import goes to a higher layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "xcm_debias"

Edge = tuple[str, str, str]  # (importer, imported, "path:line")


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    parts = package.split(".")
    anchor = parts[: len(parts) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in (``a.b.C`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_edges(root: Path, package: str) -> list[Edge]:
    """Every internal import of the package as (importer, imported, where)."""
    modules = module_names(root, package)
    edges = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [_owner(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _base(module, path, node)
                targets = [
                    _owner(f"{base}.{alias.name}", modules) or _owner(base, modules)
                    for alias in node.names
                ]
            else:
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            edges += [(module, t, where) for t in targets if t is not None and t != module]
    return edges


def find_cycles(edges: list[Edge]) -> list[tuple[list[str], list[Edge]]]:
    """Each strongly connected component of more than one module (Tarjan): its sorted members
    and one shortest cycle through its first member, as edges, importer first."""
    graph: dict[str, dict[str, str]] = {}
    for src, dst, where in edges:
        graph.setdefault(src, {}).setdefault(dst, where)
        graph.setdefault(dst, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth <= number of modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(component, _cycle_in(component, graph)) for component in components]


def _cycle_in(component: list[str], graph: dict[str, dict[str, str]]) -> list[Edge]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node]):
                if succ not in members:
                    continue
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    hops = [*path, start]
                    return [(a, b, graph[a][b]) for a, b in zip(hops, hops[1:], strict=False)]
                if succ not in parent:
                    parent[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"component {component} holds no cycle")  # Tarjan guarantees one


def describe(members: list[str], cycle: list[Edge]) -> str:
    lines = [" -> ".join([cycle[0][0], *(dst for _, dst, _ in cycle)])]
    lines += [f"    {src} imports {dst} at {where}" for src, dst, where in cycle]
    if len(members) > len(cycle):
        lines.append(f"    (one loop of {len(members)} mutually importing modules: {members})")
    return "\n".join(lines)


def layer_tables(markdown: str, package: str) -> list[dict[str, int]]:
    """Each table of ``| layer | name | modules | may import |`` rows: entry -> layer, the
    entries named as in docs/architecture.md (``data``, ``report/``, ``report/blocks``,
    ``__init__``) and turned into dotted names (a folder keeps its trailing ``/``)."""
    tables: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| layer | name | modules |"):
            current = {}
            tables.append(current)
        elif current is not None and line.startswith("|") and cells[0].isdigit():
            for name in re.findall(r"`([^`]+)`", cells[2]):
                folder = "/" if name.endswith("/") else ""
                dotted = ".".join([package, *name.rstrip("/").split("/")])
                current[dotted.removesuffix(".__init__") + folder] = int(cells[0])
        elif not line.startswith("|"):
            current = None
    return tables


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The module's layer: its own entry, else the innermost folder entry holding it."""
    if module in table:
        return table[module]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        folder = ".".join(parts[:end]) + "/"
        if folder in table:
            return table[folder]
    return None


def layer_violations(
    edges: list[Edge], modules: list[str], tables: list[dict[str, int]]
) -> list[str]:
    """Modules without a layer in the first (whole-package) table, and imports that go up a
    layer in any table whose entries place both ends (later tables refine one folder)."""
    problems = [
        f"{module} has no layer in docs/architecture.md"
        for module in modules
        if layer_of(module, tables[0]) is None
    ]
    for table in tables:
        inner = table is not tables[0]
        for src, dst, where in edges:
            if inner and not (src in table and dst in table):
                continue
            low, high = layer_of(src, table), layer_of(dst, table)
            if low is not None and high is not None and high > low:
                problems.append(f"{src} (layer {low}) imports {dst} (layer {high}) at {where}")
    return problems


def test_every_import_goes_down_the_layers_of_docs_architecture():
    tables = layer_tables((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"), PACKAGE)
    assert len(tables) == 2 and all(tables)
    modules = list(module_names(ROOT, PACKAGE))
    report = [m for m in modules if m.startswith(f"{PACKAGE}.report")]
    assert sorted(m for m in report if m in tables[1]) == sorted(report), "report/ table"
    problems = layer_violations(import_edges(ROOT, PACKAGE), modules, tables)
    assert not problems, "\n".join(problems)


def test_the_package_has_no_import_cycle():
    cycles = find_cycles(import_edges(ROOT, PACKAGE))
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(describe(*c) for c in cycles)


# ------------------------------------------------------------- the checker itself
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_finds_a_cycle_through_a_function_level_relative_import(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from pkg.sub import b\nA = 1\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "def f():\n    from ..a import A\n    return A\n",
            "pkg/c.py": "import pkg.a\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    assert sorted((s, d) for s, d, _ in edges) == [
        ("pkg", "pkg.a"),
        ("pkg.a", "pkg.sub.b"),
        ("pkg.c", "pkg.a"),
        ("pkg.sub.b", "pkg.a"),
    ]
    ((members, cycle),) = find_cycles(edges)
    assert members == ["pkg.a", "pkg.sub.b"]
    assert cycle == [
        ("pkg.a", "pkg.sub.b", str(Path("pkg/a.py")) + ":1"),
        ("pkg.sub.b", "pkg.a", str(Path("pkg/sub/b.py")) + ":2"),
    ]
    assert describe(members, cycle).startswith("pkg.a -> pkg.sub.b -> pkg.a\n")


def test_type_checking_imports_and_package_names_count(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from pkg.b import B\nA = 1\n",
            "pkg/b.py": "from pkg import A\nB = A\n",
        },
    )
    ((members, cycle),) = find_cycles(import_edges(tmp_path, "pkg"))
    assert members == ["pkg", "pkg.a", "pkg.b"]
    assert [(s, d) for s, d, _ in cycle] == [("pkg", "pkg.a"), ("pkg.a", "pkg.b"), ("pkg.b", "pkg")]


def test_a_layered_package_has_no_cycle(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.top import T\n",
            "pkg/top.py": "from .low import L\nimport pkg.low as low\nT = L\n",
            "pkg/low.py": "import os\nL = os.sep\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    assert {(s, d) for s, d, _ in edges} == {("pkg", "pkg.top"), ("pkg.top", "pkg.low")}
    assert find_cycles(edges) == []


def test_layer_rules_catch_an_upward_import_and_a_module_without_layer():
    markdown = "\n".join(
        [
            "| layer | name | modules | may import |",
            "|---|---|---|---|",
            "| 1 | top | `__init__`, `app/` | all |",
            "| 0 | base | `core`, `app/low` | nothing |",
            "",
            "| layer | name | modules | may import |",
            "|---|---|---|---|",
            "| 1 | high | `app/ui` | below |",
            "| 0 | low | `app/model` | nothing |",
        ]
    )
    tables = layer_tables(markdown, "pkg")
    assert tables == [
        {"pkg": 1, "pkg.app/": 1, "pkg.core": 0, "pkg.app.low": 0},
        {"pkg.app.ui": 1, "pkg.app.model": 0},
    ]
    assert layer_of("pkg.app.x", tables[0]) == 1 and layer_of("pkg.app.low", tables[0]) == 0
    edges = [
        ("pkg", "pkg.core", "pkg/__init__.py:1"),  # down: fine
        ("pkg.core", "pkg.app.x", "pkg/core.py:3"),  # up
        ("pkg.app.model", "pkg.app.ui", "pkg/app/model.py:2"),  # up inside app/
        ("pkg.app.ui", "pkg.app.model", "pkg/app/ui.py:1"),  # down inside app/
    ]
    assert layer_violations(edges, ["pkg", "pkg.core", "pkg.extra"], tables) == [
        "pkg.extra has no layer in docs/architecture.md",
        "pkg.core (layer 0) imports pkg.app.x (layer 1) at pkg/core.py:3",
        "pkg.app.model (layer 0) imports pkg.app.ui (layer 1) at pkg/app/model.py:2",
    ]
