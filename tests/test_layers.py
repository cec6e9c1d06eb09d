"""vagen's packages import each other without cycles: read from the source with `ast`
(imports inside functions count too), so a layer never needs the one above it."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

VAGEN = Path(__file__).resolve().parents[1] / "vagen"


def package_imports() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it (vagen.<package> only)."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in VAGEN.rglob("*.py"):
        relative = path.relative_to(VAGEN)
        source = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom)
                     and node.level == 0 and node.module else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "vagen" and len(parts) > 1 and parts[1] != source:
                    edges[source][parts[1]].append(str(relative))
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Each cycle as the path that closes it (depth-first, every package as a start)."""
    found = []
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, {})):
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_no_import_cycle_between_packages():
    edges = package_imports()
    found = cycles(edges)
    detail = ["; ".join(f"{a} -> {b} ({edges[a][b][0]})"
                        for a, b in zip(c[:-1], c[1:], strict=True)) for c in found]
    assert not found, "\n".join(detail)


def test_the_check_sees_a_cycle():
    assert cycles({"data": {"env": ["x"]}, "env": {"data": ["y"]}}) == [
        ["data", "env", "data"]]
    assert cycles({"data": {"video": ["x"]}, "env": {"data": ["y"], "video": ["z"]}}) == []
