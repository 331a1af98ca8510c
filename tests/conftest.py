"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A fresh ``reactord init`` setup on free ports; every daemon it starts is stopped after."""
    env = Setup.create(tmp_path / "setup")
    try:
        yield env
    finally:
        unclean = env.close()
    assert not unclean, "daemons that did not stop cleanly on SIGTERM:\n" + "\n".join(unclean)
