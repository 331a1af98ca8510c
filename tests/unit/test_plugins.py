"""Plugins from a folder and from entry points, and duplicate names refused with both origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from minion.plugins import PluginError, load_registry

MODULE = '''
from minion.beacons.base import Report

class Uptime:
    """A plugin beacon."""
    default_interval = 5.0
    def __init__(self, options):
        self.unit = options.text("unit", "s")
    def poll(self):
        return [Report(None, {"unit": self.unit})]

def hello(name: str) -> str:
    """A plugin function."""
    return f"hello {name}"

BEACONS = {"uptime_plugin": Uptime}
FUNCTIONS = {"hello.say": hello}
'''


def test_a_module_in_a_plugin_folder_adds_beacons_and_functions(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(MODULE)
    registry = load_registry([tmp_path], use_entry_points=False)
    assert registry.functions["hello.say"]("you") == "hello you"
    assert "uptime_plugin" in registry.beacons
    assert registry.origin[("function", "hello.say")] == str(tmp_path / "mine.py")


def test_a_duplicate_name_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text("def ping():\n    return 1\nFUNCTIONS = {'test.ping': ping}\n")
    with pytest.raises(
        PluginError, match=r"function 'test.ping' is defined twice: by built-in and by .*clash.py"
    ):
        load_registry([tmp_path], use_entry_points=False)


def test_a_broken_plugin_says_which_file(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('nope')\n")
    with pytest.raises(PluginError, match=r"broken.py: RuntimeError: nope"):
        load_registry([tmp_path], use_entry_points=False)
    (tmp_path / "broken.py").write_text("FUNCTIONS = {'Bad Name': print}\n")
    with pytest.raises(PluginError, match="not a function name"):
        load_registry([tmp_path], use_entry_points=False)
