"""The server's rooms and what each may import, read from the source (nothing is run).

Rules (README, "Architecture"): the store imports no other room but the shared kernel (domain,
errors, config); SQL and database drivers are imported only in the store; no two rooms import
each other, directly or around a circle; no module (migrations aside) passes 600 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "baton_server"
ROOT = Path(__file__).resolve().parents[2] / "server" / PACKAGE
KERNEL = {"domain", "errors", "config"}
DRIVERS = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic")
MAX_LINES = 600


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join((PACKAGE, *parts)).removesuffix(".__init__")


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def _imports(path: Path) -> list[str]:
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join([*base, *([node.module] if node.module else [])]))
            else:
                found.append(node.module or "")
    return found


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)


def room_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        room = _room(_module(path))
        for name in _imports(path):
            if name.startswith(PACKAGE + ".") and _room(name) != room:
                edges[room].add(_room(name))
    return edges


def test_the_store_imports_only_the_shared_kernel() -> None:
    assert room_graph()["store"] <= KERNEL, room_graph()["store"] - KERNEL


def test_sql_and_drivers_only_in_the_store() -> None:
    outside = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _sources()
        if _room(_module(path)) != "store"
        for name in _imports(path)
        if name.startswith(DRIVERS)
    ]
    assert outside == []


def test_no_two_rooms_import_each_other() -> None:
    edges = room_graph()
    cycles: list[str] = []
    done: set[str] = set()

    def visit(room: str, path: list[str]) -> None:
        # Depth-first; an edge back into the current path closes a circle.
        for target in sorted(edges.get(room, ())):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(room)

    for room in sorted(edges):
        if room not in done:
            visit(room, [room])
    assert cycles == []


def test_modules_stay_small() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _sources()
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES
    }
    assert long == {}


def test_the_rules_see_the_package() -> None:
    """Guards the guard: an empty or misread package would pass every rule above."""
    graph = room_graph()
    assert {"api", "store", "handoff", "engine"} <= set(graph) | {"store"}
    assert "store" in graph["api"] and len(_sources()) > 40
