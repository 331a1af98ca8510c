"""A minion's list of masters: ``master:`` as one host or a list, the shuffle, the rotation, and
the delivery's move to another master."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from minion.config import load_minion_config
from minion.connection import MasterList
from minion.delivery import Delivery
from minion.outbox import Outbox
from reactord.protocol import messages as m
from reactord.protocol.errors import ConfigError


def test_one_host_is_a_list_of_one_and_the_endpoints_stay_those_of_today(tmp_path: Path) -> None:
    config = load_minion_config(str(_write(tmp_path, "master: 127.0.0.2\n")))
    assert config.master == ("127.0.0.2",)
    assert config.master_shuffle is False
    assert config.command_endpoint == "tcp://127.0.0.2:4511"
    assert config.event_endpoint == "tcp://127.0.0.2:4510"
    assert config.key_endpoint == "tcp://127.0.0.2:4512"
    default = load_minion_config(str(_write(tmp_path, "")))
    assert default.master == ("localhost",)


def test_a_list_of_hosts_shares_the_ports(tmp_path: Path) -> None:
    config = load_minion_config(
        str(
            _write(
                tmp_path, "master: [127.0.0.1, 127.0.0.2, '::1']\nmaster_shuffle: true\ncommand_port: 5000\n"
            )
        )
    )
    assert config.master == ("127.0.0.1", "127.0.0.2", "::1")
    assert config.master_shuffle is True
    assert config.command_endpoint == "tcp://127.0.0.1:5000"  # the first listed
    assert [config.endpoint(h, config.command_port) for h in config.master] == [
        "tcp://127.0.0.1:5000",
        "tcp://127.0.0.2:5000",
        "tcp://[::1]:5000",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "expected a host or a list of hosts, got an empty list"),
        ("[127.0.0.1, 5]", "entry 2: expected a host name or address, got int"),
        ("[127.0.0.1, [a]]", "entry 2: expected a host name or address, got a list"),
        ("{host: a}", "expected a host or a list of hosts, got a mapping"),
        ("12", "expected a host or a list of hosts, got int"),
        ("''", "expected a host name or address, got an empty string"),
        ("[a, '']", "entry 2: expected a host name or address, got an empty string"),
        ("'127.0.0.1:4511'", "expected a host without a port, got '127.0.0.1:4511'"),
        ("[a, b, a]", "'a' is listed twice"),
    ],
)
def test_a_bad_master_list_is_refused_naming_the_key(tmp_path: Path, value: str, message: str) -> None:
    path = _write(tmp_path, f"master: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_minion_config(str(path))
    assert info.value.key == "master"
    assert message in info.value.message
    assert str(path) in str(info.value)


def test_master_shuffle_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_minion_config(str(_write(tmp_path, "master: [a, b]\nmaster_shuffle: yes please\n")))
    assert info.value.key == "master_shuffle"


def test_the_order_is_the_configured_one_unless_shuffled() -> None:
    hosts = [f"m{n}" for n in range(8)]
    assert MasterList(hosts).hosts == tuple(hosts)
    assert MasterList(hosts, rng=random.Random(1)).hosts == tuple(hosts)  # no shuffle asked


def test_the_shuffle_happens_once_and_follows_the_injected_random() -> None:
    hosts = [f"m{n}" for n in range(8)]
    shuffled = MasterList(hosts, shuffle=True, rng=random.Random(7))
    expected = list(hosts)
    random.Random(7).shuffle(expected)
    assert shuffled.hosts == tuple(expected)
    assert shuffled.hosts != tuple(hosts)
    assert sorted(shuffled.hosts) == hosts
    assert MasterList(hosts, shuffle=True, rng=random.Random(7)).hosts == shuffled.hosts
    # the rotation goes through the shuffled order, and keeps it
    seen = [shuffled.current]
    for _ in range(len(hosts) * 2 - 1):
        shuffled.advance()
        seen.append(shuffled.current)
    assert seen == list(shuffled.hosts) * 2


def test_the_rotation_wraps_around_and_says_when_a_round_is_complete() -> None:
    masters = MasterList(["a", "b", "c"])
    assert (masters.current, masters.position, masters.several) == ("a", "1 of 3", True)
    steps = []
    for _ in range(7):
        full_round = masters.advance()
        steps.append((masters.current, masters.position, full_round))
    assert steps == [
        ("b", "2 of 3", False),
        ("c", "3 of 3", False),
        ("a", "1 of 3", True),  # a, b and c all tried: back off before a again
        ("b", "2 of 3", False),
        ("c", "3 of 3", False),
        ("a", "1 of 3", True),
        ("b", "2 of 3", False),
    ]


def test_a_good_master_starts_a_new_round_from_itself() -> None:
    masters = MasterList(["a", "b", "c"])
    assert masters.advance() is False  # a lost: b
    masters.settled()  # b accepted us
    assert [masters.advance() for _ in range(3)] == [False, False, True]  # c, a, then b again
    assert masters.current == "b"


def test_one_master_never_fails_over() -> None:
    masters = MasterList(["localhost"])
    assert (masters.several, masters.position, len(masters)) == (False, "1 of 1", 1)
    assert masters.advance() is True
    assert masters.current == "localhost"
    with pytest.raises(ValueError, match="no master"):
        MasterList([])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "minion.yaml"
    path.write_text("id: web01\n" + text)
    return path


class _Socket:
    """Stands in for a PUB socket: keeps what is sent, and whether it was closed."""

    def __init__(self) -> None:
        self.frames: list[m.EventBatch] = []
        self.closed = False

    async def send(self, frame: bytes, flags: int = 0) -> None:
        assert not self.closed
        batch = m.decode(frame)
        assert isinstance(batch, m.EventBatch)
        self.frames.append(batch)

    def close(self, linger: int | None = None) -> None:
        self.closed = True


def test_a_move_to_another_master_sends_again_from_the_first_unacknowledged_event(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", "web01", max_events=1000, policy="drop_oldest")
    old, new = _Socket(), _Socket()
    delivery = Delivery(outbox, old, ready=lambda: True, batch_events=4)  # type: ignore[arg-type]
    outbox.append([("load", {"n": n}) for n in range(1, 11)])
    asyncio.run(delivery._send_batch())
    asyncio.run(delivery._send_batch())
    assert [[e[0] for e in f.events] for f in old.frames] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    delivery.on_ack(outbox.epoch, 3)  # the old master acknowledged 1..3, then went away

    delivery.move_to(new)  # type: ignore[arg-type]
    assert old.closed and delivery.socket is new
    assert (delivery.acked, delivery.sent) == (3, 3)  # the in-flight window is reset
    asyncio.run(delivery._send_batch())
    asyncio.run(delivery._send_batch())
    assert [(f.base, [e[0] for e in f.events]) for f in new.frames] == [(4, [4, 5, 6, 7]), (4, [8, 9, 10])]
    assert len(old.frames) == 2  # nothing more went to the old master
    outbox.close()
