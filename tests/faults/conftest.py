"""Faults of the machine: a small filesystem the tests fill and free, as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallFilesystem:
    """A tmpfs of a few MiB mounted by the test; ``fill`` takes the space, ``free`` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Take all the free space but ``leave`` bytes (the daemons' next writes fail)."""
        free = shutil.disk_usage(self.path).free
        with self.filler.open("ab") as handle:
            chunk = b"\0" * (1 << 20)
            want = max(0, free - leave)
            while want > 0:
                try:
                    handle.write(chunk[: min(want, len(chunk))])
                    handle.flush()
                except OSError:
                    break
                want -= min(want, len(chunk))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free


def mount_small_fs(path: Path, size_mib: int) -> SmallFilesystem:
    """Mount a tmpfs of ``size_mib`` at ``path``; ``pytest.skip`` where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return SmallFilesystem(path)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFilesystem]:
    """A 48 MiB tmpfs under the test's folder, unmounted afterwards (lazily, if still busy)."""
    path = tmp_path / "small"
    fs = mount_small_fs(path, 48)
    try:
        yield fs
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
