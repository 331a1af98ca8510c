"""Scenario (b2): ingest like (b), with 1,000 ``correlate`` rules holding 10,000 live keys.

The rule set mirrors ``realistic_rules``: the same tag globs over the same beacons (so the
load stream finds one candidate rule among 1,000, as in (b)), each rule two named patterns
(on its beacon and on the one five further in the list) with a comparison each, keyed by
``{{ source }}``, within an hour. Before the measured part, every simulated minion sends one
``beacon/disk/root`` event: each rule with a pattern on it keeps a partial match per minion
(about 114 rules, 11,400 keys), live through the run, which the load stream never touches.
The one rule on the load tag joins two minions' events by sequence number (like a request's
start and end by its id): the n-th load event of sim0000 and of sim0001 (``seq_mod`` 0 and
1), so 1% of events wait as a partial match and 1% fire, as 1% fire in (b).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import Fleet, make_keys, master
from bench.scenarios import BEACONS, CACHE, _drive, _ingest_row, ids, ingest_counts, rule_glob
from reactord.control import ControlClient
from reactord.protocol import codec

#: The beacon each minion reports once before the measured part (it starts the live keys).
SEED_BEACON = "disk/root"
MIN_LIVE_KEYS = 10_000


def correlation_rules(count: int) -> str:
    """``count`` correlate rules: one on the load tag (a join by seq), the others over the
    realistic rules' globs, keyed by source."""
    lines = [
        "rules:",
        "  - name: hot-pair",
        "    correlate:",
        "      events:",
        '        hot: {on: "minion/*/beacon/load", when: {data.seq_mod: {eq: 0}}}',
        '        peer: {on: "minion/*/beacon/load", when: {data.seq_mod: {eq: 1}}}',
        "      within: 1h",
        '      key: "{{ seq }}"',
        "    do: [{log: 'load on {{ events.hot.source }} and {{ events.peer.source }}', level: debug}]",
    ]
    for n in range(count - 1):
        first = rule_glob(n, BEACONS[n % len(BEACONS)])
        second = rule_glob(n, BEACONS[(n + 5) % len(BEACONS)], app_suffix="-done")
        lines += [
            f"  - name: pair-{n}",
            "    correlate:",
            "      events:",
            f'        first: {{on: "{first}", when: {{data.value: {{gt: {n % 100}}}}}}}',
            f'        second: {{on: "{second}", when: {{data.value: {{gte: {n % 100}}}}}}}',
            "      within: 1h",
            '      key: "{{ source }}"',
            "    do: [{log: 'x', level: debug}]",
        ]
    return "\n".join(lines) + "\n"


def live_keys(root: Path) -> tuple[int, int]:
    """The keys the master's correlation rules hold, and how many their limits dropped
    (``rules list --json``: each correlation rule's ``state``)."""
    listing = ControlClient(root / "state" / "control.sock", timeout=60).call("rules.list")
    states = [r["state"] for r in listing if "state" in r]
    return sum(s["keys"] for s in states), sum(s["dropped"] for s in states)


def _seed(fleet: Fleet, timeout: float = 60) -> None:
    """One ``SEED_BEACON`` event from each minion (value 100: every pattern's comparison over
    it holds), acknowledged before the measured part starts; re-sent while it is not (a PUB
    drops what it sends before its connection is up)."""
    data = codec.pack({"value": 100, "mount": "/", "percent": 100})
    load = [(sim.tag, sim.data) for sim in fleet.minions]
    for sim in fleet.minions:
        sim.tag, sim.data = f"minion/{sim.id}/beacon/{SEED_BEACON}", data
        if fleet.send(sim, 1, time.time()) != 1:
            raise RuntimeError(f"{sim.id}: the seed event was not sent")
    deadline = time.monotonic() + timeout
    resend = time.monotonic() + 1
    while not fleet.all_acked():
        if time.monotonic() > deadline:
            raise RuntimeError("the seed events were not acknowledged")
        if time.monotonic() > resend:
            fleet.resend_unacked(time.time())  # with the seed's tag and data, still set
            resend = time.monotonic() + 1
        fleet.pump(0.05)
    for sim, (tag, payload) in zip(fleet.minions, load, strict=True):
        sim.tag, sim.data = tag, payload


def ingest(root: Path, name: str, *, minions: int = 100, events: int = 300_000, rules: str) -> dict[str, Any]:
    """(b)'s run, after the seed; the row adds the live keys before and after it."""
    names = ids(minions)
    keys = make_keys(names, CACHE)
    with master(root, names, keys, rules) as mp:
        fleet = Fleet(mp, names, keys)
        try:
            fleet.hello()
            _seed(fleet)
            seeded, _ = live_keys(root)
            if seeded < MIN_LIVE_KEYS:
                raise RuntimeError(f"the seed left {seeded} live keys, not {MIN_LIVE_KEYS}: check the rules")
            before = ingest_counts(mp, fleet)
            cpu = mp.cpu_seconds()
            seconds = _drive(fleet, events // minions)
            cpu = mp.cpu_seconds() - cpu
            row = _ingest_row(name, mp, fleet, seconds, cpu, before)
            row["live_keys"], row["dropped_keys"] = live_keys(root)
            row["live_keys_before"] = seeded
            return row
        finally:
            fleet.close()
