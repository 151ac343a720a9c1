"""The layers: imports run ``checks`` ← ``collectors`` ← ``monitor`` only, with no circle.

Walks every module's AST (imports at any depth, including inside functions and under
``TYPE_CHECKING``), so that a back arrow cannot hide in a function body.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: lower layers first; a module may import its own layer and the layers before it
LAYERS = ("checks", "collectors", "monitor")
SQL_LIBRARIES = ("sqlalchemy", "psycopg", "sqlite3")


def modules() -> Iterator[tuple[str, Path]]:
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module name ``path`` imports, absolute, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def layer_of(name: str) -> int | None:
    top = name.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (names resolved to existing modules)."""
    known = dict(modules())
    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for name, _ in imported(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges[module].add(name)
    return edges


def test_no_import_runs_back_up_a_layer() -> None:
    back = []
    for module, path in modules():
        own = layer_of(module)
        for name, line in imported(module, path):
            target = layer_of(name)
            if target is not None and own is not None and target > own:
                back.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not back, "imports that run back up a layer:\n" + "\n".join(sorted(set(back)))


def test_no_import_circle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    # a package's __init__ re-exporting its own modules is not a circle of design
    real = [c for c in circles if not _reexport(c)]
    assert not real, "import circles:\n" + "\n".join(" -> ".join(c) for c in real)


def _reexport(circle: list[str]) -> bool:
    """package -> package.module -> package: the package's ``__init__`` re-exports."""
    names = circle[:-1]
    return len(names) == 2 and (
        names[1].startswith(names[0] + ".") or names[0].startswith(names[1] + ".")
    )


def test_sql_only_in_the_store() -> None:
    found = []
    for module, path in modules():
        if module.startswith("monitor.store"):
            continue
        for name, line in imported(module, path):
            if name.split(".")[0] in SQL_LIBRARIES:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not found, "SQL outside monitor/store/:\n" + "\n".join(sorted(set(found)))
