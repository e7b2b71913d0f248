"""Layering: the packages of cfpair import one way (no cycle), and validate, render, export and
train never reach into counterfactual (they score through cfpair.scoring)."""

from __future__ import annotations

import ast
from pathlib import Path

import cfpair

ROOT = Path(cfpair.__file__).parent
NO_COUNTERFACTUAL = ("validate", "integrity", "render", "export", "train", "api", "show", "stats")


def _unit(path: Path) -> str:
    """The layer a module belongs to: its top-level package, or the module for a top-level
    file (cfpair/validate.py -> 'validate')."""
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """Every cfpair layer a module imports (absolute and relative imports, any nesting)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1])
                names = [f"{base}.{node.module}" if node.module else base]
                if not node.module:
                    names += [f"{base}.{a.name}" for a in node.names]
            elif node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "cfpair" and len(parts) > 1 and (
                    (ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file()):
                out.add(parts[1])
    return out


def _graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        unit = _unit(path)
        g.setdefault(unit, set()).update(_imports(path) - {unit})
    return g


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between layers, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(g.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(g):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_the_import_walker_sees_real_edges() -> None:
    g = _graph()
    assert {"scoring", "geometry", "records"} <= g["counterfactual"]
    assert "scoring" in g["validate"] and "scoring" in g["export"] and "scoring" in g["train"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_packages() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, f"import cycle between cfpair packages: {' -> '.join(cycle or [])}"


def test_scoring_sits_below_counterfactual() -> None:
    g = _graph()
    assert "counterfactual" not in g["scoring"]
    assert "metrics" not in g and not (ROOT / "metrics").exists()


def test_consumers_never_import_counterfactual() -> None:
    g = _graph()
    bad = {u: sorted(g[u]) for u in NO_COUNTERFACTUAL if "counterfactual" in g.get(u, set())}
    assert not bad, f"these import cfpair.counterfactual (use cfpair.scoring): {bad}"


def test_the_records_layer_sits_below_labels_and_scoring() -> None:
    g = _graph()
    assert "records" in g["labels"] and "records" in g["scoring"]
    assert not {"labels", "scoring", "counterfactual", "pipeline"} & g["records"], g["records"]
