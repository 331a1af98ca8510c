"""The master imports Prometheus only when it serves metrics (``metrics.address`` set)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# What ``reactord master`` imports and constructs before it binds anything (the CLI, the
# config, the Master), in a fresh interpreter; then which of the metrics modules are loaded.
MASTER = """
import json, sys
import reactord.cli
from reactord.base.config import load_master_config
from reactord.master import Master

master = Master(load_master_config(sys.argv[1]))
try:
    print(json.dumps(sorted({"prometheus_client", "reactord.metrics"} & set(sys.modules))))
finally:
    master.close()
"""


@pytest.mark.parametrize(
    "metrics, loaded",
    [({}, []), ({"address": "127.0.0.1:9"}, ["prometheus_client", "reactord.metrics"])],
    ids=["off", "on"],
)
def test_the_master_imports_prometheus_only_when_its_endpoint_is_on(
    tmp_path: Path, metrics: dict[str, str], loaded: list[str]
) -> None:
    config = tmp_path / "master.yaml"
    settings = {"pki_dir": str(tmp_path / "pki"), "state_dir": str(tmp_path / "state"), "metrics": metrics}
    config.write_text(yaml.safe_dump(settings))
    done = subprocess.run(
        [sys.executable, "-c", MASTER, str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == loaded
