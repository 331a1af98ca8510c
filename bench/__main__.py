"""``make bench``: every scenario, a table on stdout, and the numbers as JSON in bench/results/."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scenarios

RESULTS = Path(__file__).resolve().parent / "results"


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median of the runs (all its numbers come from one run)."""
    ordered = sorted(runs, key=lambda r: r[key])
    row = dict(ordered[len(ordered) // 2])
    row["runs"] = [r[key] for r in runs]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per throughput scenario (median reported)")
    parser.add_argument("--quick", action="store_true", help="smaller loads, one run (a smoke test)")
    parser.add_argument("--no-cluster", action="store_true", help="leave out the cluster scenarios (f, g)")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    events = 100_000 if args.quick else 300_000
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reactord-bench-") as tmp:
        root = Path(tmp)

        def go(name: str, key: str, fn: Any) -> dict[str, Any]:
            results = [fn(root / f"{name}-{n}") for n in range(runs)]
            row = _median(results, key)
            rows.append(row)
            _print_row(row)
            return row

        go(
            "a",
            "accepted_per_s",
            lambda d: scenarios.ingest(d, "(a) ingest, no rules", minions=100, events=events),
        )
        rules_1000 = scenarios.realistic_rules(1000)
        go(
            "b",
            "accepted_per_s",
            lambda d: scenarios.ingest(
                d, "(b) ingest, 1,000 rules, 1% firing", minions=100, events=events, rules=rules_1000
            ),
        )
        # (c) interleaved (10, 100, 1,000, 10,000, then again): drift on a shared machine hits all alike
        by_count: dict[int, list[dict[str, Any]]] = {count: [] for count in (10, 100, 1000, 10_000)}
        rule_sets = {count: scenarios.realistic_rules(count) for count in by_count}
        for n in range(runs):
            for count, results in by_count.items():
                results.append(
                    scenarios.ingest(
                        root / f"c{count}-{n}",
                        f"(c) {count} rules",
                        minions=100,
                        events=events,
                        rules=rule_sets[count],
                    )
                )
        rates = {}
        for count, results in by_count.items():
            row = _median(results, "accepted_per_s")
            rows.append(row)
            _print_row(row)
            rates[count] = row["accepted_per_s"]
        rows.append(
            {"scenario": "(c) 10,000 rules vs 10 rules", "ratio": round(rates[10_000] / rates[10], 3)}
        )
        _print_row(rows[-1])
        rows.append(scenarios.many_minions(root / "d", minions=200 if args.quick else 1000))
        _print_row(rows[-1])
        rows.append(scenarios.latency(root / "e", rate=1000, seconds=5 if args.quick else 20))
        _print_row(rows[-1])
        rows.append(scenarios.idle_minion(root / "idle", seconds=10 if args.quick else 30))
        _print_row(rows[-1])
        if not args.no_cluster:
            from bench import cluster  # needs the cluster extra and nats-server (make bench)

            for count in (1, 2, 3):
                go(
                    f"f{count}",
                    "acked_per_s",
                    lambda d, count=count: cluster.ingest(d, count=count, events=events),
                )
            rows.append(cluster.failover(root / "g"))
            _print_row(rows[-1])
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out} ({report['seconds']}s)")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _print_row(row: dict[str, Any]) -> None:
    name = row["scenario"]
    rest = ", ".join(f"{k}={v}" for k, v in row.items() if k != "scenario")
    print(f"{name:<44} {rest}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
