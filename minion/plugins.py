"""Finding beacon kinds and functions: built-ins, entry points, and a local plugin folder.

Third-party packages declare entry points in the ``reactord.beacons`` group (name -> a
beacon class) and the ``reactord.functions`` group (``module.name`` -> a callable). A
module in one of ``plugins.dirs`` may define ``BEACONS`` and ``FUNCTIONS`` dicts. A name
defined twice is an error that names both places; nothing is probed or guessed.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from minion.beacons import BUILTINS as BUILTIN_BEACONS
from minion.errors import MinionError
from minion.functions import BUILTINS as BUILTIN_FUNCTIONS
from reactord.protocol.messages import valid_function_name

log = logging.getLogger("minion.plugins")


class PluginError(MinionError):
    """A plugin that cannot be loaded, or a name defined twice."""


class Registry:
    def __init__(self) -> None:
        self.beacons: dict[str, type] = {}
        self.functions: dict[str, Any] = {}
        self.origin: dict[tuple[str, str], str] = {}

    def add(self, kind: str, name: str, value: Any, origin: str) -> None:
        table = self.beacons if kind == "beacon" else self.functions
        if kind == "function" and not valid_function_name(name):
            raise PluginError(f"{origin}: {name!r} is not a function name like module.name")
        if name in table:
            raise PluginError(
                f"{kind} {name!r} is defined twice: by {self.origin[(kind, name)]} and by {origin}"
            )
        table[name] = value
        self.origin[(kind, name)] = origin


def load_registry(plugin_dirs: Iterable[Path] = (), *, use_entry_points: bool = True) -> Registry:
    registry = Registry()
    for name, cls in BUILTIN_BEACONS.items():
        registry.add("beacon", name, cls, "built-in")
    for name, fn in BUILTIN_FUNCTIONS.items():
        registry.add("function", name, fn, "built-in")
    if use_entry_points:
        for kind, group in (("beacon", "reactord.beacons"), ("function", "reactord.functions")):
            for point in entry_points(group=group):
                try:
                    value = point.load()
                except Exception as exc:  # a broken third-party package: say which, do not start half-loaded
                    raise PluginError(f"entry point {point.name} ({point.value}) in {group}: {exc}") from exc
                registry.add(kind, point.name, value, f"entry point {point.value}")
    for folder in plugin_dirs:
        for path in sorted(Path(folder).glob("*.py")):
            module = _load_file(path)
            for name, cls in getattr(module, "BEACONS", {}).items():
                registry.add("beacon", name, cls, str(path))
            for name, fn in getattr(module, "FUNCTIONS", {}).items():
                registry.add("function", name, fn, str(path))
    return registry


def _load_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"reactord_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the plugin's own error, reported with its file
        raise PluginError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return module
