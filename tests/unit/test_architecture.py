"""The architecture is visible from the tree, and guarded here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> list[tuple[Path, str]]:
    found = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


def test_minion_imports_only_the_protocol_package_from_reactord() -> None:
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, name in _imports("minion")
        if (name == "reactord" or name.startswith("reactord.")) and not name.startswith("reactord.protocol")
    ]
    assert bad == []


def test_reactord_never_imports_minion() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {n}"
        for p, n in _imports("reactord")
        if n == "minion" or n.startswith("minion.")
    ]
    assert bad == []


def test_protocol_is_a_leaf() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {n}"
        for p, n in _imports("reactord/protocol")
        if n.startswith("reactord.") and not n.startswith("reactord.protocol")
    ]
    assert bad == []


def test_importing_reactord_is_cheap() -> None:
    heavy = "('zmq', 'yaml', 'cryptography', 'click')"
    code = f"import sys, reactord; print(','.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
