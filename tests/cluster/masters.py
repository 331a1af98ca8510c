"""Real masters in cluster mode for the cluster tests: one setup folder per master, on
127.0.0.<n> with the same ports (all loopback), the same master key pair (copied, as an
operator does), each pointed at the same nats-servers."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.natsserver import NatsServer
from tests.support import Daemon, Setup, wait_until


def address(index: int) -> str:
    return f"127.0.0.{index + 1}"


@dataclass
class Cluster:
    """``masters[i]`` listens on ``address(i)``; minions are started from ``masters[0]``'s folder."""

    masters: list[Setup]
    servers: list[NatsServer]
    daemons: dict[int, Daemon] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, servers: list[NatsServer], count: int = 3, **cluster: Any) -> Cluster:
        first = Setup.create(root / "m0", "web01")
        settings = {
            "servers": [s.url for s in servers],
            "partitions": 8,
            "lease_ttl": "2s",
            "replicas": min(3, len(servers)),
            "duplicate_window": "60s",
            "watchdog": "5s",
            **cluster,
        }
        first.edit_master(interface=address(0), cluster={**settings, "name": "m0"})
        masters = [first]
        for index in range(1, count):
            folder = root / f"m{index}"
            folder.mkdir()
            config = yaml.safe_load(first.master_yaml.read_text())
            config["interface"] = address(index)
            config["cluster"] = {**settings, "name": f"m{index}"}
            (folder / "master.yaml").write_text(yaml.safe_dump(config))
            shutil.copytree(first.root / "reactor.d", folder / "reactor.d")
            masters.append(Setup(folder, first.ports))
        return cls(masters, servers)

    def share_master_keys(self) -> None:
        """Every master presents the first one's keys (pki_dir/master*); run once it has made them."""
        source = self.masters[0].root / "pki" / "master"
        for other in self.masters[1:]:
            target = other.root / "pki" / "master"
            target.mkdir(parents=True, mode=0o700, exist_ok=True)
            for key in sorted(source.glob("master*")):
                shutil.copy2(key, target / key.name)

    def start_all(self) -> None:
        """Start the first master (it makes its key pair), give the others its keys, start
        them, and wait until every partition has an owner."""
        self.start(0)
        self.share_master_keys()
        for index in range(1, len(self.masters)):
            self.start(index)
        self.wait_owned()

    def start(self, index: int) -> Daemon:
        daemon = self.masters[index].start_master(timeout=60)  # a recovering engine: up to 30s more
        self.daemons[index] = daemon
        return daemon

    def rules(self, text: str) -> None:
        for master in self.masters:
            (master.root / "reactor.d" / "cluster.yaml").write_text(text)

    def status(self, index: int) -> dict[str, Any]:
        return self.masters[index].cli_json("cluster", "status")  # type: ignore[no-any-return]

    def start_minion(self, minion_id: str, order: list[int], **changes: Any) -> Daemon:
        return self.masters[0].start_minion(minion_id, master=[address(i) for i in order], **changes)

    def minion_status(self, minion_id: str) -> dict[str, Any]:
        from tests.support import minion_cli

        result = minion_cli(
            "status", "-c", str(self.masters[0].root / f"minion-{minion_id}.yaml"), timeout=30
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def wait_owned(self, timeout: float = 30) -> None:
        """Until every partition has an owner and the live members agree on them."""

        def settled() -> bool:
            live = [i for i, d in self.daemons.items() if d.alive()]
            views = [self.status(i) for i in live]
            return all(
                not v["unowned"] and sorted(v["members"]) == sorted(f"m{i}" for i in live) for v in views
            )

        wait_until(settled, timeout, "every partition owned")

    def close(self) -> list[str]:
        unclean: list[str] = []
        for master in reversed(self.masters):
            unclean += master.close()
        return unclean
