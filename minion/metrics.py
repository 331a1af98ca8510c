"""The minion's Prometheus metrics: its outbox, its beacons and its jobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from minion.agent import Agent


class MinionCollector:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        outbox = agent.outbox
        yield GaugeMetricFamily(
            "reactord_minion_outbox_depth", "Events in the outbox, not yet acknowledged", value=outbox.depth
        )
        yield GaugeMetricFamily("reactord_minion_outbox_max", "The outbox's bound", value=outbox.max_events)
        yield CounterMetricFamily(
            "reactord_minion_outbox_dropped_total", "Events dropped from a full outbox", value=outbox.dropped
        )
        yield CounterMetricFamily(
            "reactord_minion_events_total", "Events put in the outbox", value=outbox.next_seq - 1
        )
        acked = agent.delivery.acked if agent.delivery else 0
        yield CounterMetricFamily(
            "reactord_minion_events_acked_total", "Events the master acknowledged", value=acked
        )
        connected = GaugeMetricFamily(
            "reactord_minion_master_status", "1 for the current key status", labels=["status"]
        )
        connected.add_metric([agent.status], 1)
        yield connected
        polls = CounterMetricFamily("reactord_minion_beacon_polls_total", "Beacon polls", labels=["beacon"])
        errors = CounterMetricFamily(
            "reactord_minion_beacon_errors_total", "Beacon polls that failed or timed out", labels=["beacon"]
        )
        emitted = CounterMetricFamily(
            "reactord_minion_beacon_events_total", "Events beacons reported", labels=["beacon"]
        )
        for slot in agent.beacons.slots.values():
            polls.add_metric([slot.name], slot.polls)
            errors.add_metric([slot.name], slot.errors)
            emitted.add_metric([slot.name], slot.emitted)
        yield from (polls, errors, emitted)
        jobs = CounterMetricFamily(
            "reactord_minion_jobs_total", "Jobs by outcome (refused: not allowed)", labels=["outcome"]
        )
        for outcome in ("ok", "failed", "timed_out", "refused"):
            jobs.add_metric([outcome], agent.executor.counts[outcome])
        yield jobs
        yield GaugeMetricFamily(
            "reactord_minion_jobs_running", "Jobs running now", value=len(agent.executor.running)
        )
