"""``reactord init``: write a ready local setup (master, one minion, example rules)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from reactord.keystore import KeyStore
from reactord.protocol.keys import CurveKeys
from reactord.protocol.tags import validate_minion_id
from reactord.store.database import Database
from reactord.store.schema import MIGRATIONS
from reactord.store.tokens import TokenStore

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

HTTP_TEMPLATE = """\
# The API and the dashboard (docs/api.md, docs/ui.md): http://127.0.0.1:{http_port}/ui/
# Log in with the admin token `reactord init` wrote to {token_file} (owner only);
# make more with `reactord token create --role read|operate|admin`.
http:
  address: 127.0.0.1:{http_port}
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
    http_url: str | None = None
    token_file: Path | None = None


def init_setup(
    directory: Path,
    *,
    minion_id: str,
    event_port: int,
    command_port: int,
    key_port: int,
    accept_local: bool = False,
    force: bool = False,
    http_port: int | None = None,
) -> InitResult:
    """Write master.yaml, minion.yaml and reactor.d/ under ``directory``.

    The master's keys are made now so that minion.yaml can pin their fingerprint. With
    ``accept_local`` the local minion's keys are made too and pre-accepted: only this demo
    setup trusts a minion without an operator's ``key accept``. With ``http_port`` the API and
    the dashboard listen on 127.0.0.1 and an admin token is made, written owner-only to
    ``admin.token`` beside master.yaml.
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
    master_text = MASTER_TEMPLATE.format(**ports)
    token_file = directory / "admin.token"
    if http_port is not None:
        master_text += HTTP_TEMPLATE.format(http_port=http_port, token_file=token_file.name)
    master_yaml.write_text(master_text)
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
    files = [master_yaml, minion_yaml, rules_file]
    if http_port is None:
        return InitResult(directory, files, master_keys.finger, accept_local)
    _admin_token(directory / "state" / "master" / "master.db", token_file)
    return InitResult(
        directory,
        [*files, token_file],
        master_keys.finger,
        accept_local,
        f"http://127.0.0.1:{http_port}/ui/",
        token_file,
    )


def _admin_token(database: Path, token_file: Path) -> None:
    """An admin token in the master's database, written to ``token_file`` (0600)."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(database, MIGRATIONS)
    try:
        _token, secret = TokenStore(db).create("admin", "init", time.time())
    finally:
        db.close()
    token_file.unlink(missing_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
