"""The NATS client stays behind one module, and the embedded master never loads it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print(','.join(n for n in {names!r} if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [n for n in out.strip().split(",") if n]


def test_importing_the_master_loads_neither_nats_nor_the_cluster_package() -> None:
    assert _loaded_after("import reactord.master, reactord.cli", ("nats", "reactord.cluster")) == []


def test_the_check_sees_nats_when_it_is_loaded() -> None:
    """The check above can fail: the cluster's engine module does load the client."""
    assert _loaded_after("import reactord.cluster.engine", ("nats", "reactord.cluster")) == [
        "nats",
        "reactord.cluster",
    ]


def test_leases_and_subjects_do_not_need_the_client() -> None:
    assert _loaded_after("import reactord.cluster.leases, reactord.cluster.subjects", ("nats",)) == []


def test_only_the_engine_module_imports_nats() -> None:
    importers = set()
    for path in (ROOT / "reactord").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(n == "nats" or n.startswith("nats.") for n in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"reactord/cluster/engine.py"}
