"""Answers larger than one control frame, through a real master: 2,000 events of 50 KB (about
100 MB, where one frame holds 64 MiB) are listed as a stream, and a state table of them comes
back over continuation frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactord.base.config import load_master_config
from reactord.control import ControlClient
from tests.support import Daemon, Setup

COUNT = 2000
SIZE = 50_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _blob(n: int) -> str:
    return (f"{n:06d}" * (SIZE // 6 + 1))[:SIZE]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, Daemon]]:
    """One master holding COUNT events of SIZE bytes, fired as load/big/N (N from 0)."""
    setup = Setup.create(tmp_path_factory.mktemp("large") / "setup")
    try:
        master = setup.start_master(level="info")
        control = ControlClient(load_master_config(str(setup.master_yaml)).control_path)
        for n in range(COUNT):
            control.call("event.fire", tag=f"load/big/{n}", data={"n": n, "blob": _blob(n)})
        yield setup, master
    finally:
        unclean = setup.close()
    assert not unclean, "daemons that did not stop cleanly on SIGTERM:\n" + "\n".join(unclean)


def _peak_kib(pid: int) -> int:
    """The most memory the process has held so far (VmHWM, from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def test_all_events_list_as_json_while_the_master_holds_a_page_of_them(big: tuple[Setup, Daemon]) -> None:
    setup, master = big
    peak_before = _peak_kib(master.proc.pid)
    result = setup.cli("event", "list", "--tag", "load/big/*", "--limit", "0", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout) > 100_000_000  # more than one control frame (64 MiB) of answer
    events = json.loads(result.stdout)
    assert [e["data"]["n"] for e in events] == list(range(COUNT))  # oldest first, none missing
    assert all(e["data"]["blob"] == _blob(e["data"]["n"]) for e in events)
    assert all(e["tag"] == f"load/big/{e['data']['n']}" and e["source"] == "cli" for e in events)
    grown = _peak_kib(master.proc.pid) - peak_before
    assert grown < 40_000, f"the master's peak memory grew by {grown} KiB while listing ~100 MB"


def test_all_events_list_as_text_lines(big: tuple[Setup, Daemon]) -> None:
    setup, _ = big
    result = setup.cli("event", "list", "--tag", "load/big/*", "--limit", "0", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RECEIVED", "ID", "SOURCE", "TAG", "DATA"]
    assert [line.split()[3] for line in lines[1:]] == [f"load/big/{n}" for n in range(COUNT)]


def test_a_limited_list_is_the_newest_events_oldest_first(big: tuple[Setup, Daemon]) -> None:
    setup, _ = big
    events = setup.cli_json("event", "list", "--tag", "load/big/*", "--limit", "3")
    assert [e["data"]["n"] for e in events] == [COUNT - 3, COUNT - 2, COUNT - 1]


def test_a_state_table_larger_than_one_frame_comes_back_whole(big: tuple[Setup, Daemon]) -> None:
    setup, _ = big
    result = setup.cli("state", "load/big/*", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)["rows"]
    assert sorted(r["data"]["n"] for r in rows) == list(range(COUNT))
    assert all(r["data"]["blob"] == _blob(r["data"]["n"]) for r in rows)
    text = setup.cli("state", "load/big/*", timeout=300)
    assert text.returncode == 0, text.stderr[-2000:]
    assert len(text.stdout.splitlines()) == COUNT + 1
