"""The master's Prometheus metrics, collected at scrape time from what the master already counts.

Importing it imports ``prometheus_client``: the master imports it only when its metrics
endpoint is on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from reactord.base.stats import BUCKETS, Stats

if TYPE_CHECKING:
    from reactord.store.minions import MinionRecord

#: Internal counters that become one family with a label: prefix -> (metric, label).
GROUPED = {
    "drop.": ("reactord_events_dropped_total", "reason"),
    "actions.ok.": ("reactord_actions_succeeded_total", "kind"),
    "actions.failed.": ("reactord_action_attempts_failed_total", "kind"),
    "webhook.refused.": ("reactord_webhook_refused_total", "status"),
}
HELP = {
    "events.received": "Events read from minions (before checks)",
    "events.accepted": "Events logged, minion and master events alike",
    "events.duplicate": "Re-sent events already logged (deduplicated)",
    "events.lost_by_minion": "Events minions dropped from a full outbox before delivery",
    "frames.received": "Frames read on the event socket",
    "handshake.refused": "CURVE handshakes refused (rejected or denied keys)",
    "deadletters": "Actions that went to the dead letters",
    "jobs.started": "Jobs started (reactord_jobs_started_total)",
    "reactor.fired": "Rule firings",
    "storage.errors": "Writes of the database that failed for lack of space (or an I/O error)",
    "ingest.paused": "Times ingest waited for room in the action queue",
    "reactor.errors": "Rule evaluations that raised (recorded as the rule's decision: error: ...)",
    "events.lost_storage": "The master's own events lost because the disk stayed full too long",
    "webhook.duplicate": "Webhook events not logged again: an earlier delivery had logged them",
}


def counters_from(stats: Stats) -> Iterator[Metric]:
    """Every internal counter as a Prometheus counter (``reactord_…_total``)."""
    grouped: dict[str, CounterMetricFamily] = {}
    for name, value in stats.snapshot().items():
        for prefix, (metric, label) in GROUPED.items():
            if name.startswith(prefix):
                group = grouped.get(metric)
                if group is None:
                    group = grouped[metric] = CounterMetricFamily(
                        metric, metric.replace("_", " "), labels=[label]
                    )
                group.add_metric([name[len(prefix) :]], value)
                break
        else:
            metric = "reactord_" + name.replace(".", "_").replace("-", "_")
            yield CounterMetricFamily(metric, HELP.get(name, name), value=value)
    yield from grouped.values()
    for name, values in stats.labeled().items():
        label_names = [k for k, _ in next(iter(values))] if values else []
        family = CounterMetricFamily(f"reactord_{name}_total", name.replace("_", " "), labels=label_names)
        for labels, value in values.items():
            family.add_metric([v for _, v in labels], value)
        yield family
    for name, series in stats.histograms().items():
        label_names = [k for k, _ in next(iter(series))] if series else []
        histograms = HistogramMetricFamily(f"reactord_{name}", name.replace("_", " "), labels=label_names)
        for labels, histogram in series.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), histogram.counts, strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            histograms.add_metric([v for _, v in labels], buckets, histogram.total)
        yield histograms


class ActionLoad(Protocol):
    """The action outbox's load (the reactor's action dispatcher)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def queued(self) -> int: ...

    @property
    def saturated(self) -> bool: ...


class StorageLoad(Protocol):
    """Whether the database can be written, and the master's own events waiting until it can."""

    @property
    def storage_error(self) -> str | None: ...

    @property
    def held(self) -> int: ...


class MasterReadings(Protocol):
    """What the metrics read of the master at each refresh, live (the control socket's
    ``StatusParts`` has all of it: the master builds that once and hands it to both)."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def started(self) -> float: ...

    @property
    def stats(self) -> Stats: ...

    @property
    def minions(self) -> Callable[[], Iterable[MinionRecord]]: ...

    @property
    def key_listing(self) -> Callable[[], dict[str, list[str]]]: ...

    @property
    def database_bytes(self) -> Callable[[], int]: ...

    @property
    def rules_loaded(self) -> Callable[[], int]: ...

    @property
    def dead_letters(self) -> Callable[[], int]: ...

    @property
    def actions(self) -> ActionLoad: ...

    @property
    def storage(self) -> StorageLoad: ...


class MasterCollector:
    """The master's metric families: its counters, then gauges of its minions, keys, outboxes,
    rules, action queue, storage, jobs and uptime."""

    def __init__(
        self, readings: MasterReadings, outbox_depth: Mapping[str, int], jobs_stored: Callable[[], int]
    ) -> None:
        self.readings = readings
        self.outbox_depth = outbox_depth  # per minion, as its last heartbeat reported it
        self.jobs_stored = jobs_stored

    def collect(self) -> Iterator[Metric]:
        master = self.readings
        now = master.clock()
        yield from counters_from(master.stats)
        presence = GaugeMetricFamily("reactord_minions", "Accepted minions by presence", labels=["presence"])
        counts = {"up": 0, "suspect": 0, "down": 0}
        for record in master.minions():
            counts[record.presence] = counts.get(record.presence, 0) + 1
        for state, n in counts.items():
            presence.add_metric([state], n)
        yield presence
        keys = GaugeMetricFamily("reactord_keys", "Minion keys by state", labels=["state"])
        for state, ids in master.key_listing().items():
            keys.add_metric([state], len(ids))
        yield keys
        outbox = GaugeMetricFamily(
            "reactord_outbox_depth",
            "Undelivered events per minion, as its heartbeat reports",
            labels=["minion"],
        )
        for minion_id, depth in self.outbox_depth.items():
            outbox.add_metric([minion_id], depth)
        yield outbox
        yield GaugeMetricFamily("reactord_dead_letters", "Open dead letters", value=master.dead_letters())
        yield GaugeMetricFamily("reactord_rules_loaded", "Rules loaded", value=master.rules_loaded())
        yield from _action_gauges(master.actions)
        yield GaugeMetricFamily(
            "reactord_storage_writable",
            "0 while the database cannot be written (a full disk); events are then not acknowledged",
            value=int(master.storage.storage_error is None),
        )
        yield GaugeMetricFamily(
            "reactord_events_held",
            "The master's own events waiting for the database to be writable",
            value=master.storage.held,
        )
        yield GaugeMetricFamily("reactord_jobs_stored", "Jobs in the database", value=self.jobs_stored())
        yield GaugeMetricFamily(
            "reactord_events_per_second",
            "Accepted events per second over the last minute",
            value=master.stats.event_rate.per_second(now),
        )
        yield GaugeMetricFamily(
            "reactord_database_bytes", "Size of the state database", value=master.database_bytes()
        )
        yield GaugeMetricFamily(
            "reactord_uptime_seconds", "Seconds since the master started", value=now - master.started
        )


def _action_gauges(actions: ActionLoad) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "reactord_actions_in_flight", "Firings queued or running", value=actions.in_flight
    )
    yield GaugeMetricFamily(
        "reactord_actions_queued",
        "Firings waiting in the action outbox for a slot",
        value=actions.queued,
    )
    yield GaugeMetricFamily(
        "reactord_actions_queue_full",
        "1 while the action queue is at its bound (ingest waits)",
        value=int(actions.saturated),
    )
