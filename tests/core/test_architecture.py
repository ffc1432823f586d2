"""The import graph of src/arrpo: floors, no circle, no upward import (docs/architecture.md).

Every ``from arrpo… import`` in the package, at module level or inside a function, is an edge. A
module may import its own room (its top-level package or module) and any room on a LOWER floor;
an import of a room on the same or a higher floor fails this test. A new room must be given a floor
here and in docs/architecture.md.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: Rooms by floor, bottom (0) to top. A room is ``arrpo.<name>`` (a package or a module), or one
#: module of a package given a floor of its own (``evidence.values``: the OCR evidence records,
#: which import only vocab and text, sit below ``schema`` so a Verdict can carry them, while the
#: rest of ``evidence`` builds on ``schema``). ``evidence`` sits below ``judge``: the judge gathers
#: evidence and shows it to the model; the evidence tools know nothing of the judge.
FLOORS: list[set[str]] = [
    {"errors", "text", "vocab", "standings", "_version", "_sync", "jsonl", "progress", "prompts"},
    {"images", "parse", "rubric", "rewards", "judge_settings", "masking", "step_monitor", "evidence.values"},
    {"convert", "html", "schema", "tournament"},
    {"vlm"},
    {"datasets", "evidence"},
    {"judge"},
    {"jobs", "scale"},
    {"rubrics"},
    {"eval"},
    {"rl", "server"},
    {"client"},
    {"integrations"},
    {"annotate"},
    {"testing"},
    {"cli"},
    {"__init__", "__main__"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    if ".".join(parts[1:3]) in FLOOR:  # a module with a floor of its own
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported module, line)} for every arrpo import in the package."""
    edges: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for path in sorted((SRC / "arrpo").rglob("*.py")):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arrpo":
                if node.module == "arrpo":
                    names = [f"arrpo.{alias.name}" for alias in node.names]
                else:
                    names = [node.module]
                edges[module].update((name, node.lineno) for name in names)
            elif isinstance(node, ast.Import):
                edges[module].update(
                    (alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "arrpo"
                )
    return edges


def test_every_room_has_a_floor():
    rooms = {_room(_module_name(p)) for p in (SRC / "arrpo").rglob("*.py")}
    assert rooms - set(FLOOR) == set(), "give each new room a floor in FLOORS and docs/architecture.md"


def test_no_import_goes_up_or_sideways():
    wrong = []
    for module, targets in _edges().items():
        here = _room(module)
        for target, line in targets:
            there = _room(target)
            if there == here or there not in FLOOR or here not in FLOOR:
                continue
            if FLOOR[there] >= FLOOR[here]:
                wrong.append(f"{module}:{line} imports {target} (floor {FLOOR[here]} -> {FLOOR[there]})")
    assert wrong == []


def test_no_import_circle_between_modules():
    graph = {m: {t for t, _ in targets} for m, targets in _edges().items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                circles.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    # a package importing its own submodules (``arrpo.x`` -> ``arrpo.x.y`` -> ``arrpo.x``) is how
    # re-exports work; a circle through two different modules that are not package and child is not
    real = [c for c in circles if not all(a.startswith(b + ".") or b.startswith(a + ".") for a, b in itertools.pairwise(c))]
    assert real == []


def test_docs_architecture_names_every_room():
    """docs/architecture.md's floor table names each room (as ``name/``, ``name.py`` or ``name``)."""
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [room for room in FLOOR if room not in ("__init__", "__main__")
               and not any(form in text for form in (f"{room}/", f"{room.replace('.', '/')}.py", f"{room}.py"))]
    assert missing == []
