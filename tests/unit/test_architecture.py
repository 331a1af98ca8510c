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


#: The master's layers, bottom first. A module may import from its own layer and those below,
#: never from one above (not even under TYPE_CHECKING). The flat modules of ``reactord/`` are
#: the daemon's parts (the pipeline, the reactor service, jobs, links, the fleet view, ...);
#: the control operations are written against them; the HTTP server serves them (and the
#: daemon's webhooks and metrics) to browsers and scripts; the master puts them all together (and
#: the demo and the bus watcher are clients of a running master); the CLI is on top.
LAYERS = ["protocol", "base", "store", "reactor", "actions", "daemon", "control", "http", "master", "cli"]
TOP = {"master", "demo", "watcher"}  # the modules of the "master" layer


def layer_of(module: str) -> str | None:
    """The layer of a ``reactord`` module (None for what is not reactord's)."""
    parts = module.split(".")
    if parts[0] != "reactord":
        return None
    if len(parts) == 1 or parts[1] in ("__init__", "__version__"):
        return "protocol"  # the package root only names the version
    if parts[1] in TOP:
        return "master"
    if parts[1] in LAYERS:
        return parts[1]
    return "cli" if parts[1] == "__main__" else "daemon"


def module_graph() -> dict[str, set[str]]:
    """Every reactord module and the reactord modules it imports (TYPE_CHECKING included)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "reactord").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("reactord"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("reactord"):
                    targets.add(node.module)
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in graph.items():
        low = layer_of(source)
        for target in targets:
            high = layer_of(target)
            if low is not None and high is not None and LAYERS.index(high) > LAYERS.index(low):
                bad.append(f"{source} ({low}) imports {target} ({high})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert upward_imports(module_graph()) == []


def test_the_packages_form_a_graph_without_cycles() -> None:
    graph = module_graph()
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        packages.setdefault(_package(source), set()).update(_package(t) for t in targets if t in graph)
    for name, targets in packages.items():
        targets.discard(name)
    assert cycles(packages) == []


def test_the_daemon_modules_import_each_other_without_cycles() -> None:
    graph = module_graph()
    daemon = {
        m: {t for t in ts if layer_of(t) == "daemon"} for m, ts in graph.items() if layer_of(m) == "daemon"
    }
    assert cycles(daemon) == []


def test_the_layering_check_catches_an_upward_import_and_a_cycle() -> None:
    """The checks themselves can fail: fed a graph with a store module importing the master,
    and two daemon modules importing each other, they say so."""
    graph = {
        "reactord.store.eventlog": {"reactord.master"},
        "reactord.fleet": {"reactord.pipeline"},
        "reactord.pipeline": {"reactord.fleet"},
    }
    assert upward_imports(graph) == ["reactord.store.eventlog (store) imports reactord.master (master)"]
    assert cycles(graph) == [["reactord.fleet", "reactord.pipeline"]]


def _package(module: str) -> str:
    """``reactord.store.eventlog`` -> ``reactord.store``; a flat daemon module is its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_only_the_store_and_the_sqlite_file_module_import_sqlite3() -> None:
    """Storage is reached through its interfaces: nothing above the store speaks SQLite."""
    allowed = ("reactord.store", "reactord.protocol.sqlitefile")
    users = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path, name in _imports("reactord")
        if name == "sqlite3"
    )
    outside = [u for u in users if not any(u == a or u.startswith(a + ".") for a in allowed)]
    assert users and outside == []
