"""Config errors an operator can act on: where the file was looked for, the file and line of a
mistake, the key that was meant, and no key given twice. Same for master.yaml and minion.yaml."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from minion.config import load_minion_config
from reactord.base.config import load_master_config
from reactord.cli import cli
from reactord.protocol.errors import ConfigError

LOADERS: dict[str, Callable[[str | None], Any]] = {
    "master.yaml": load_master_config,
    "minion.yaml": load_minion_config,
}
both = pytest.mark.parametrize("kind", sorted(LOADERS))


def _error(kind: str, path: str | None) -> str:
    with pytest.raises(ConfigError) as info:
        LOADERS[kind](path)
    return str(info.value)


@both
def test_a_missing_config_says_every_place_it_was_looked_for(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REACTORD_CONFIG", raising=False)
    # nothing given: ./ and /etc/reactord/ were tried (this host has no /etc/reactord/<kind>)
    if Path("/etc/reactord", kind).exists():
        pytest.skip(f"/etc/reactord/{kind} exists here")
    assert _error(kind, None) == (
        f"/etc/reactord/{kind}: config file not found (tried -c (not given), $REACTORD_CONFIG"
        f" (not set), ./{kind} (no {tmp_path / kind}), /etc/reactord/{kind})"
    )
    given = tmp_path / "lab" / kind
    assert _error(kind, str(given)) == (
        f"{given}: config file not found (tried -c {given}; with -c, $REACTORD_CONFIG,"
        f" ./{kind} and /etc/reactord/{kind} are not read)"
    )
    monkeypatch.setenv("REACTORD_CONFIG", "other.yaml")
    assert _error(kind, None) == (
        f"{tmp_path / 'other.yaml'}: config file not found (tried -c (not given),"
        f" $REACTORD_CONFIG={tmp_path / 'other.yaml'}; with $REACTORD_CONFIG set, ./{kind} and"
        f" /etc/reactord/{kind} are not read)"
    )


UNKNOWN = "unknown key in"


@pytest.mark.parametrize(
    "kind, text, expected",
    [
        (
            "master.yaml",
            "state_dir: s\nevent_prot: 1\n",
            f":2: event_prot: {UNKNOWN} master.yaml; did you mean event_port? (known: auto_accept, ",
        ),
        (
            "master.yaml",
            "presence:\n  heartbeet: 1s\n",
            f":2: presence.heartbeet: {UNKNOWN} master.yaml; did you mean presence.heartbeat?"
            " (known: down_after, heartbeat, suspect_after)",
        ),
        ("master.yaml", "zzz: 1\n", f":1: zzz: {UNKNOWN} master.yaml (known: "),
        (
            "minion.yaml",
            "id: web01\nmastr: salt\n",
            f":2: mastr: {UNKNOWN} minion.yaml; did you mean master? (known: beacons, ",
        ),
        (
            "minion.yaml",
            "outbox:\n  max_event: 10\n",
            f":2: outbox.max_event: {UNKNOWN} minion.yaml; did you mean outbox.max_events? (known: ",
        ),
    ],
)
def test_an_unknown_key_names_the_file_and_line_and_the_nearest_known_key(
    kind: str, text: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / kind
    path.write_text(text)
    assert _error(kind, str(path)).startswith(f"{path}{expected}")


def test_a_file_read_as_the_other_kind_says_so(tmp_path: Path) -> None:
    path = tmp_path / "master.yaml"
    path.write_text("interface: 0.0.0.0\n")
    assert _error("minion.yaml", str(path)).startswith(
        f"{path}:1: interface: unknown key in master.yaml, read as minion.yaml (known: "
    )


@both
@pytest.mark.parametrize(
    "text, line, problem",
    [
        ("state_dir: a\nlog_level: info\nstate_dir: b\n", 3, "duplicate key 'state_dir'"),
        ("metrics:\n  address: ':1'\n  address: ':2'\n", 3, "duplicate key 'address'"),
        (
            "log_level: [info\n",
            2,
            "while parsing a flow sequence, expected ',' or ']', but got '<stream end>'",
        ),
        ("log_level: info\n  bad: indent\n", 2, "mapping values are not allowed here"),
    ],
)
def test_yaml_errors_and_duplicate_keys_are_one_line_with_file_and_line(
    kind: str, text: str, line: int, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / kind
    path.write_text(text)
    message = _error(kind, str(path))
    assert message == f"{path}:{line}: invalid YAML: {problem}"
    assert "\n" not in message


@both
def test_a_bad_value_names_its_line(kind: str, tmp_path: Path) -> None:
    path = tmp_path / kind
    path.write_text("state_dir: s\nlog_level: loud\n")
    assert _error(kind, str(path)).startswith(f"{path}:2: log_level: expected one of ")


def test_yes_and_no_are_still_booleans_in_config_files(tmp_path: Path) -> None:
    path = tmp_path / "master.yaml"
    path.write_text("auto_accept: yes\n")
    assert load_master_config(str(path)).auto_accept is True


def test_values_read_from_a_config_are_plain_dicts(tmp_path: Path) -> None:
    path = tmp_path / "minion.yaml"
    path.write_text("id: web01\ngrains: {roles: {web: {tier: 1}}}\nbeacons: {load: {interval: 5}}\n")
    config = load_minion_config(str(path))
    assert type(config.grains["roles"]["web"]) is dict
    assert type(config.beacons["load"]) is dict


def test_the_command_line_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "master.yaml"
    path.write_text("event_port: 1\nevent_port: 2\n")
    result = CliRunner().invoke(cli, ["status", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}:2: invalid YAML: duplicate key 'event_port'\n"
