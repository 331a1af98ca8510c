"""Issue 8 through real daemons: /metrics, webhooks in, JSON logs, log rotation, status, units."""

from __future__ import annotations

import configparser
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, Setup, free_ports, wait_until


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_of_master_and_minion_move_with_events_and_jobs(setup: Setup) -> None:
    master_port, minion_port = free_ports(2)
    setup.edit_master(metrics={"address": f"127.0.0.1:{master_port}"})
    (setup.root / "reactor.d" / "example.yaml").unlink()  # only this test's jobs and events
    setup.start_master()
    setup.start_minion("web01", metrics={"address": f"127.0.0.1:{minion_port}"})
    setup.accept_all("web01")
    before, minion_before = scrape(master_port), scrape(minion_port)

    for _ in range(3):
        assert setup.cli("run", "web01", "test.ping").returncode == 0
    assert setup.send("web01", "app/x", "--count", "25").returncode == 0
    # Metrics are a snapshot each daemon refreshes every second, on its own: a minion's acks
    # can show before the master's snapshot counts the events. Wait for both to arrive.
    accepted = before["reactord_events_accepted_total"] + 25 + 6  # 3 jobs: a new and a ret each
    wait_until(
        lambda: (
            scrape(minion_port)["reactord_minion_events_acked_total"] >= 25
            and scrape(minion_port)['reactord_minion_jobs_total{outcome="ok"}'] >= 3
            and scrape(master_port).get("reactord_jobs_started_total", 0) >= 3
            and scrape(master_port)["reactord_events_accepted_total"] >= accepted
        ),
        20,
        "the metrics to move",
    )
    after, minion_after = scrape(master_port), scrape(minion_port)

    assert after["reactord_events_accepted_total"] >= accepted
    assert after["reactord_jobs_started_total"] == before.get("reactord_jobs_started_total", 0) + 3
    assert after['reactord_minions{presence="up"}'] == 1
    assert after['reactord_keys{state="accepted"}'] == 1
    assert (
        minion_after['reactord_minion_jobs_total{outcome="ok"}']
        == minion_before['reactord_minion_jobs_total{outcome="ok"}'] + 3
    )
    assert minion_after["reactord_minion_events_total"] == minion_before["reactord_minion_events_total"] + 25
    assert minion_after['reactord_minion_master_status{status="accepted"}'] == 1


def test_webhooks_in_alertmanager_cloudevents_and_refusals(setup: Setup) -> None:
    port = free_ports(1)[0]
    secret = "s3cr3t"
    (setup.root / "token").write_text("tok-123\n")
    (setup.root / "token").chmod(0o600)  # a secret file readable by others is refused
    setup.edit_master(
        webhooks={
            "address": f"127.0.0.1:{port}",
            "max_body": 4096,
            "endpoints": {
                "alerts": {"kind": "alertmanager", "token_file": "token"},
                "ce": {"kind": "cloudevents", "secret": secret},
                "raw": {"kind": "json", "secret": secret},
            },
        }
    )
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "hooks.yaml").write_text("""
rules:
  - name: page
    on: webhook/alerts/**
    when: {data.status: firing, data.labels.severity: critical}
    do: [{fire: ops/page, data: {alert: "{{ data.labels.alertname }}", host: "{{ data.labels.instance }}"}}]
  - name: cleared
    on: webhook/alerts/**
    when: {data.status: resolved}
    do: [{fire: ops/cleared, data: {alert: "{{ data.labels.alertname }}"}}]
  - name: deployed
    on: webhook/ce/com.example.deploy.finished
    do: [{fire: ops/deploy/seen, data: {by: "{{ data.ce.source }}", version: "{{ data.data.version }}"}}]
""")
    setup.start_master()

    def post(path: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def sign(body: bytes) -> str:
        return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    alert = {
        "labels": {"alertname": "DiskFull", "instance": "web01:9100", "severity": "critical"},
        "annotations": {"summary": "/ is 97% full"},
        "startsAt": "2026-11-26T13:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "c0ffee",
    }
    firing = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "status": "firing",
        "receiver": "reactord",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "truncatedAlerts": 0,
        "alerts": [
            {**alert, "status": "firing"},
            {
                **alert,
                "labels": {**alert["labels"], "instance": "web02:9100"},
                "status": "firing",
                "fingerprint": "beef",
            },
        ],
    }
    resolved = {
        **firing,
        "status": "resolved",
        "alerts": [{**alert, "status": "resolved", "endsAt": "2026-11-26T13:10:00Z"}],
    }
    status, answer = post("/hooks/alerts", json.dumps(firing).encode(), Authorization="Bearer tok-123")
    assert (status, answer["accepted"]) == (202, 2)
    assert post("/hooks/alerts", json.dumps(resolved).encode(), Authorization="Bearer tok-123")[0] == 202

    cloud = {
        "specversion": "1.0",
        "id": "A234-1234",
        "source": "ci.example.com/pipelines/7",
        "type": "com.example.deploy.finished",
        "time": "2026-11-26T13:05:00Z",
        "datacontenttype": "application/json",
        "data": {"version": "1.4.2"},
    }
    body = json.dumps(cloud).encode()
    assert post("/hooks/ce", body, **{"X-Hub-Signature-256": sign(body)})[0] == 202

    raw = json.dumps({"ref": "main"}).encode()
    assert post("/hooks/raw/push", raw, **{"X-Hub-Signature-256": sign(raw)})[0] == 202
    refused = [
        post("/hooks/raw/push", raw, **{"X-Hub-Signature-256": "sha256=" + "0" * 64}),
        post("/hooks/raw/push", raw),
        post("/hooks/alerts", json.dumps(firing).encode(), Authorization="Bearer wrong"),
        post("/hooks/ce", b"x" * 5000, **{"X-Hub-Signature-256": sign(b"x" * 5000)}),
        post("/hooks/nowhere", raw),
    ]
    assert [status for status, _ in refused] == [401, 401, 401, 413, 404]

    pages = wait_until(lambda: len(e := setup.events("--tag", "ops/page")) == 2 and e, 20, "two pages")
    assert sorted(p["data"]["host"] for p in pages) == ["web01:9100", "web02:9100"]
    assert wait_until(lambda: setup.events("--tag", "ops/cleared"), 20, "the clear")[0]["data"] == {
        "alert": "DiskFull"
    }
    seen = wait_until(lambda: setup.events("--tag", "ops/deploy/seen"), 20, "the deploy")[0]
    assert seen["data"] == {"by": "ci.example.com/pipelines/7", "version": "1.4.2"}
    pushes = setup.events("--tag", "webhook/raw/**")
    assert [(e["tag"], e["source"], e["data"]) for e in pushes] == [
        ("webhook/raw/push", "webhook/raw", {"ref": "main"})
    ]
    counters = setup.counters()
    assert counters["webhook.refused.401"] == 3 and counters["webhook.refused.413"] == 1


def test_json_logs_carry_event_ids_and_rule_names_and_reopen_on_sighup(setup: Setup) -> None:
    log_file = setup.root / "logs" / "master.log"
    setup.edit_master(log_format="json", log_file="logs/master.log")
    (setup.root / "reactor.d" / "example.yaml").unlink()
    (setup.root / "reactor.d" / "log.yaml").write_text(
        "rules:\n  - name: note\n    on: ops/x\n    do: [{log: hi}]\n"
    )
    master = setup.start_master(level="info")
    event_id = setup.cli("event", "fire", "ops/x").stdout.strip()
    lines = wait_until(
        lambda: [
            json.loads(line)
            for line in log_file.read_text().splitlines()
            if '"rule"' in line and event_id in line
        ],
        20,
        "the rule's log line",
    )
    assert lines[0]["rule"] == "note" and lines[0]["event_id"] == event_id and lines[0]["level"] == "info"

    log_file.rename(log_file.with_suffix(".log.1"))  # what logrotate does
    master.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: log_file.exists(), 10, "the log file to be reopened")
    setup.cli("event", "fire", "ops/x")
    wait_until(lambda: '"rule":"note"' in log_file.read_text().replace(" ", ""), 20, "a line in the new file")


def test_status_says_how_the_master_is_doing(setup: Setup) -> None:
    setup.start_master()
    setup.start_minion("web01")
    setup.accept_all("web01")
    setup.cli("event", "fire", "ops/x")
    info = setup.cli_json("status")
    assert info["minions"]["up"] == 1 and info["rules_loaded"] >= 1
    assert info["events_per_second"] > 0 and info["database_bytes"] > 0
    text = setup.cli("status").stdout
    assert re.search(r"events: +\d+ in the log, [\d.]+/s over the last minute", text)


def test_version_and_shell_completion(setup: Setup) -> None:
    version = subprocess.run(
        ["reactord", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"},
    )
    assert re.fullmatch(r"reactord, version \d+\.\d+\.\d+\n", version.stdout)
    completion = subprocess.run(
        ["reactord"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_REACTORD_COMPLETE": "bash_source",
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        },
    )
    assert "_reactord_completion" in completion.stdout


@pytest.mark.parametrize("unit", ["reactord-master.service", "reactord-minion.service"])
def test_systemd_units_are_valid(unit: str, tmp_path: Path) -> None:
    text = (ROOT / "conf" / "systemd" / unit).read_text()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    assert parser["Service"]["Restart"] == "on-failure"
    assert parser["Service"]["ExecStart"].startswith("/usr/local/bin/reactord ")
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze") is None:
        return
    local = tmp_path / unit
    local.write_text(text.replace("/usr/local/bin/reactord", str(ROOT / ".venv" / "bin" / "reactord")))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
