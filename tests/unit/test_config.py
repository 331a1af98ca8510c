"""Config files: read once into frozen objects; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from minion.config import load_minion_config
from reactord.base.config import load_master_config
from reactord.protocol.errors import ConfigError


def test_defaults_and_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "master.yaml"
    path.parent.mkdir()
    path.write_text("state_dir: var/state\npki_dir: /abs/pki\n")
    config = load_master_config(str(path))
    assert config.state_dir == tmp_path / "etc" / "var" / "state"
    assert config.pki_dir == Path("/abs/pki")
    assert config.command_port == 4511 and config.event_port == 4510
    assert config.auto_accept is False
    assert config.control_path == tmp_path / "etc" / "var" / "state" / "control.sock"
    with pytest.raises(AttributeError):
        config.auto_accept = True  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, key",
    [
        ("event_port: high\n", "event_port"),
        ("event_port: 99999\n", "event_port"),
        ("auto_accept: 'yes'\n", "auto_accept"),
        ("colour: blue\n", "colour"),
        ("presence: {heartbeat: 10s, suspect_after: 5s}\n", "presence"),
        ("presence: {beat: 1}\n", "presence.beat"),
        ("rules: 5\n", "rules"),
        ("log_level: loud\n", "log_level"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "master.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_master_config(str(path))
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "master.yaml"
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_master_config(str(path))
    with pytest.raises(ConfigError, match="not found"):
        load_master_config(str(tmp_path / "missing.yaml"))


def test_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "master.yaml").write_text("command_port: 1234\n")
    other = tmp_path / "other.yaml"
    other.write_text("command_port: 4321\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REACTORD_CONFIG", raising=False)
    assert load_master_config(None).command_port == 1234
    monkeypatch.setenv("REACTORD_CONFIG", str(other))
    assert load_master_config(None).command_port == 4321


def test_minion_config(tmp_path: Path) -> None:
    path = tmp_path / "minion.yaml"
    path.write_text("id: web01\nmaster_finger: 'AB' \ngrains: {role: web}\n")
    with pytest.raises(ConfigError) as info:
        load_minion_config(str(path))
    assert info.value.key == "master_finger"
    path.write_text("id: 'web/01'\n")
    with pytest.raises(ConfigError) as info:
        load_minion_config(str(path))
    assert info.value.key == "id"
    path.write_text("id: web01\ngrains: {role: web}\nmaster: 127.0.0.2\n")
    config = load_minion_config(str(path))
    assert config.grains == {"role": "web"}
    assert config.command_endpoint == "tcp://127.0.0.2:4511"
