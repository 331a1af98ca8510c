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

from bench import correlation, realpath, scenarios

RESULTS = Path(__file__).resolve().parent / "results"
#: What ``--only`` selects: (b) brings (b2), (i) the cluster scenarios (i) and (j).
GROUPS = ("a", "b", "c", "d", "e", "idle", "f", "g", "h", "i")


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
    parser.add_argument("--no-cluster", action="store_true", help="leave out the cluster scenarios (i, j)")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=None,
        help=f"run only these scenarios, e.g. 'b' for (b) and (b2) (of: {', '.join(GROUPS)})",
    )
    args = parser.parse_args(argv)
    only = args.only or set(GROUPS)
    if only - set(GROUPS):
        parser.error(f"--only: unknown {', '.join(sorted(only - set(GROUPS)))} (known: {', '.join(GROUPS)})")
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

        if "a" in only:
            go(
                "a",
                "accepted_per_s",
                lambda d: scenarios.ingest(d, "(a) ingest, no rules", minions=100, events=events),
            )
        if "b" in only:
            for row in _rules_plain_and_correlated(root, runs, events):
                rows.append(row)
                _print_row(row)
        if "c" in only:
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
        if "d" in only:
            rows.append(scenarios.many_minions(root / "d", minions=200 if args.quick else 1000))
            _print_row(rows[-1])
        if "e" in only:
            rows.append(scenarios.latency(root / "e", rate=1000, seconds=5 if args.quick else 20))
            _print_row(rows[-1])
        if "idle" in only:
            rows.append(scenarios.idle_minion(root / "idle", seconds=10 if args.quick else 30))
            _print_row(rows[-1])
        if "f" in only:
            for row in _real_ingest(root, runs, per_minion=10_000 if args.quick else 50_000):
                rows.append(row)
                _print_row(row)
        if "g" in only:
            go(
                "g",
                "reactions_per_s",
                lambda d: realpath.burst(d, minions=2, events=500 if args.quick else 2000),
            )
        if "h" in only:
            for handover in ("cli", "socket"):
                rows.append(
                    realpath.one_at_a_time(
                        root / f"h-{handover}", count=50 if args.quick else 200, handover=handover
                    )
                )
            _print_row(rows[-1])
        if not args.no_cluster and "i" in only:
            from bench import cluster  # needs the cluster extra and nats-server (make bench)

            for count in (1, 2, 3):
                go(
                    f"i{count}",
                    "acked_per_s",
                    lambda d, count=count: cluster.ingest(d, count=count, events=events),
                )
            rows.append(cluster.failover(root / "j"))
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


def _rules_plain_and_correlated(root: Path, runs: int, events: int) -> list[dict[str, Any]]:
    """(b) and (b2) interleaved, like (c), so that drift on a shared machine hits both alike;
    their medians, and (b2)'s rate over (b)'s."""
    plain, correlated = scenarios.realistic_rules(1000), correlation.correlation_rules(1000)
    b_runs: list[dict[str, Any]] = []
    b2_runs: list[dict[str, Any]] = []
    for n in range(runs):
        b_runs.append(
            scenarios.ingest(
                root / f"b-{n}", "(b) ingest, 1,000 rules, 1% firing", minions=100, events=events, rules=plain
            )
        )
        b2_runs.append(
            correlation.ingest(
                root / f"b2-{n}",
                "(b2) ingest, 1,000 correlation rules, 10,000 live keys",
                minions=100,
                events=events,
                rules=correlated,
            )
        )
    b, b2 = _median(b_runs, "accepted_per_s"), _median(b2_runs, "accepted_per_s")
    ratio = round(b2["accepted_per_s"] / b["accepted_per_s"], 3)
    return [b, b2, {"scenario": "(b2) correlation rules vs (b)", "ratio": ratio}]


def _real_ingest(root: Path, runs: int, per_minion: int) -> list[dict[str, Any]]:
    """(f) with 2 and 4 real minions, interleaved like (c); the same events in all (4 minions
    send half of ``per_minion`` each)."""
    rules = scenarios.realistic_rules(1000)
    by_count: dict[int, list[dict[str, Any]]] = {2: [], 4: []}
    for n in range(runs):
        for count, results in by_count.items():
            share = per_minion * 2 // count
            results.append(
                realpath.ingest(root / f"f{count}-{n}", minions=count, per_minion=share, rules=rules)
            )
    return [_median(results, "accepted_per_s") for results in by_count.values()]


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _print_row(row: dict[str, Any]) -> None:
    name = row["scenario"]
    rest = ", ".join(f"{k}={v}" for k, v in row.items() if k != "scenario")
    print(f"{name:<44} {rest}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
