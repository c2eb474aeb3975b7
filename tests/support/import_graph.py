"""The package's import graph, read from its source: every ``import`` and ``from ... import``
of ``smtp_ca``, at the top of a module, inside a function (lazy) or under ``TYPE_CHECKING``.

An edge goes from a module to each ``smtp_ca`` module it names; ``from smtp_ca.check import
flow`` names ``smtp_ca.check.flow``, and importing a submodule also runs its packages'
``__init__`` files, so those are edges too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = "smtp_ca"


def module_name(source_root: Path, path: Path) -> str:
    name = ".".join(path.relative_to(source_root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imported(node: ast.AST, modules: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
            submodule = f"{node.module}.{alias.name}"
            yield submodule if submodule in modules else node.module


def _with_packages(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def import_graph(source_root: Path) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (itself left out)."""
    paths = {module_name(source_root, path): path for path in (source_root / PACKAGE).rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for imported in _imported(node, modules):
                targets.update(m for m in _with_packages(imported) if m in modules)
        # A package's __init__ runs before its submodules: an edge to it is no cycle of code.
        graph[name] = {t for t in targets if t != name and not name.startswith(f"{t}.")}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as the list of modules around it (first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """Every module that importing ``start`` loads, ``start`` included."""
    seen = {start}
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
