"""``reactord init``: write a ready local setup (master, one minion, example rules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reactord.keystore import KeyStore
from reactord.protocol.keys import CurveKeys
from reactord.protocol.tags import validate_minion_id

MASTER_TEMPLATE = """\
# reactord master: a local setup written by `reactord init`.
# Every key, with its default and what it does: conf/master.yaml in the source tree.
interface: 127.0.0.1
event_port: {event_port}
command_port: {command_port}
key_port: {key_port}
pki_dir: pki/master        # relative paths resolve against this file's folder
state_dir: state/master
rules:
  - reactor.d/*.yaml
auto_accept: false
presence:
  heartbeat: 2s
  suspect_after: 6s
  down_after: 12s
log_level: info
"""

MINION_TEMPLATE = """\
# reactord minion: a local setup written by `reactord init`.
# Every key, with its default and what it does: conf/minion.yaml in the source tree.
id: {minion_id}
master: 127.0.0.1
event_port: {event_port}
command_port: {command_port}
key_port: {key_port}
# The master's key fingerprint: the minion refuses a master with any other key.
master_finger: "{finger}"
pki_dir: pki/minion
state_dir: state/minion
grains:
  roles: [demo]
log_level: info
"""

RULES_TEMPLATE = """\
# Example rules written by `reactord init`; reference: docs/rules.md.
rules:
  # When a minion comes up, ask it to prove it can run functions.
  - name: ping-new-minion
    on: "reactor/presence/*/up"
    do:
      - run: test.ping
        target: "{{ data.id }}"
        timeout: 10s
      - log: "minion {{ data.id }} is up"

  # An application tells us it was deployed (`reactord event send app/deployed`).
  - name: deployed
    on: "minion/*/app/deployed"
    do:
      - fire: ops/deploy/seen
        data: {host: "{{ source }}", version: "{{ data.version }}"}
"""


@dataclass(frozen=True, slots=True)
class InitResult:
    directory: Path
    files: list[Path]
    master_finger: str
    accepted_local: bool


def init_setup(
    directory: Path,
    *,
    minion_id: str,
    event_port: int,
    command_port: int,
    key_port: int,
    accept_local: bool = False,
    force: bool = False,
) -> InitResult:
    """Write master.yaml, minion.yaml and reactor.d/ under ``directory``.

    The master's keys are made now so that minion.yaml can pin their fingerprint. With
    ``accept_local`` the local minion's keys are made too and pre-accepted: only this demo
    setup trusts a minion without an operator's ``key accept``.
    """
    validate_minion_id(minion_id)
    master_yaml, minion_yaml = directory / "master.yaml", directory / "minion.yaml"
    rules_dir = directory / "reactor.d"
    existing = [p for p in (master_yaml, minion_yaml) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists (use --force to overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    rules_dir.mkdir(exist_ok=True)
    master_keys = CurveKeys.load_or_create(directory / "pki" / "master", "master")
    ports = {"event_port": event_port, "command_port": command_port, "key_port": key_port}
    master_yaml.write_text(MASTER_TEMPLATE.format(**ports))
    minion_yaml.write_text(MINION_TEMPLATE.format(minion_id=minion_id, finger=master_keys.finger, **ports))
    rules_file = rules_dir / "example.yaml"
    if not rules_file.exists() or force:
        rules_file.write_text(RULES_TEMPLATE)
    if accept_local:
        minion_keys = CurveKeys.load_or_create(directory / "pki" / "minion", "minion")
        store = KeyStore(directory / "pki" / "master")
        if store.accepted_key(minion_id) != minion_keys.public:
            if store.entries(minion_id):
                store.delete(minion_id)
            store.preaccept(minion_id, minion_keys.public)
    return InitResult(directory, [master_yaml, minion_yaml, rules_file], master_keys.finger, accept_local)
