"""The minion imports Prometheus only when it serves metrics (``metrics.address`` set)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# What ``minion`` (minion/cli.py) constructs before it runs, in a fresh interpreter.
CONSTRUCT = """
import sys
from minion.agent import Agent
from minion.config import load_minion_config

agent = Agent(load_minion_config(sys.argv[1]))
try:
    print("prometheus_client" in sys.modules)
finally:
    agent.close()
"""


@pytest.mark.parametrize("address, imported", [("", False), ("127.0.0.1:9", True)])
def test_prometheus_is_imported_only_when_metrics_are_served(
    tmp_path: Path, address: str, imported: bool
) -> None:
    config = tmp_path / "minion.yaml"
    config.write_text(f"id: web01\nplugins:\n  entry_points: false\nmetrics:\n  address: '{address}'\n")
    out = subprocess.run(
        [sys.executable, "-c", CONSTRUCT, str(config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(imported)
