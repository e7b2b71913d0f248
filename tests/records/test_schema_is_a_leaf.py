"""The records layer's schema modules (row, label, manifest) are a leaf: they import nothing of
cfpair's but each other, so every layer may use them and none is pulled in with them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "cfpair" / "records"
LEAF_GLOBS = ("schema*.py", "label*.py", "manifest*.py")
LEAF = sorted({p for g in LEAF_GLOBS for p in RECORDS.glob(g)})
#: the leaf modules (and their package, whose __init__ is a docstring) may import each other
ALLOWED = {"cfpair.records"} | {f"cfpair.records.{p.stem}" for p in LEAF}


def cfpair_imports(path: Path) -> list[str]:
    """Every cfpair module a file imports (absolute or relative), at any depth of the file."""
    package = "cfpair.records"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.append(mod)
            if mod in ("cfpair", "cfpair.records"):     # the names may be modules
                found += [f"{mod}.{a.name}" for a in node.names]
    return [m for m in found if m == "cfpair" or m.startswith("cfpair.")]


def test_the_leaf_modules_exist() -> None:
    assert {p.stem for p in LEAF} >= {"schema", "label", "manifest"}, LEAF


@pytest.mark.parametrize("path", LEAF, ids=lambda p: p.name)
def test_a_schema_module_imports_nothing_of_cfpair(path: Path) -> None:
    bad = [m for m in cfpair_imports(path) if m not in ALLOWED]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the schema must stay a leaf"


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from cfpair.types import Trajectory\nimport cfpair.errors\n"
                     "def f():\n    from ..labels import risk\n    from . import shards\n")
    got = cfpair_imports(probe)
    assert set(got) == {"cfpair.types", "cfpair.errors", "cfpair.labels", "cfpair.records",
                        "cfpair.records.shards"}, got
    assert [m for m in got if m not in ALLOWED] == ["cfpair.types", "cfpair.errors",
                                                    "cfpair.labels", "cfpair.records.shards"]


def test_importing_the_schema_loads_no_other_cfpair_module() -> None:
    code = ("import sys, cfpair.records.schema, cfpair.records.label, cfpair.records.manifest\n"
            "print(sorted(m for m in sys.modules if m.startswith('cfpair')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True)
    loaded = set(ast.literal_eval(res.stdout))
    assert loaded - {"cfpair"} <= ALLOWED, loaded - ALLOWED
