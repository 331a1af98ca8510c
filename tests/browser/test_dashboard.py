"""The dashboard's pages in a real browser against a real master and minion: logging in, the
overview against ``reactord status --json``, live events, an event's chain, retrying a dead
letter, what each role may do, and a screenshot of every page."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import VIEWPORT, Fleet, Watched, log_in
from tests.support import wait_until

pytestmark = pytest.mark.slow

#: The overview's figures (data-testid) and where ``reactord status --json`` has each.
OVERVIEW = {
    "minions-up": ("minions", "up"),
    "minions-suspect": ("minions", "suspect"),
    "minions-down": ("minions", "down"),
    "keys-accepted": ("keys", "accepted"),
    "keys-pending": ("keys", "pending"),
    "keys-rejected": ("keys", "rejected"),
    "dead-letters": ("dead_letters",),
    "rules-loaded": ("rules_loaded",),
    "events-logged": ("events_logged",),
    "actions-in-flight": ("actions_in_flight",),
}


def _figures(page: Page) -> dict[str, str]:
    return page.evaluate(  # type: ignore[no-any-return]
        "() => Object.fromEntries([...document.querySelectorAll('main [data-testid]')]"
        ".map((e) => [e.dataset.testid, e.textContent]))"
    )


def _expected(status: dict[str, Any]) -> dict[str, str]:
    out = {}
    for testid, path in OVERVIEW.items():
        value: Any = status
        for key in path:
            value = value[key]
        out[testid] = str(value)
    return out


def _overview_matches(page: Page, fleet: Fleet) -> dict[str, str] | None:
    """The overview's figures when they equal ``reactord status --json`` read at the same moment."""
    expected = _expected(fleet.status())
    shown = {k: v for k, v in _figures(page).items() if k in OVERVIEW}
    return expected if shown == expected else None


def _fire(fleet: Fleet, tag: str, *args: str) -> str:
    fired = fleet.setup.cli("event", "fire", tag, *args)
    assert fired.returncode == 0, fired.stderr
    return fired.stdout.strip()


def _dead_letter(fleet: Fleet, event_id: str) -> dict[str, Any]:
    def letter() -> dict[str, Any] | None:
        for d in fleet.setup.cli_json("deadletters", "list", "--status", "all"):
            if d["event_id"] == event_id:
                return d  # type: ignore[no-any-return]
        return None

    return wait_until(letter, 20, f"the dead letter of {event_id}")


@contextmanager
def answering(port: int) -> Iterator[list[str]]:
    """An HTTP server on 127.0.0.1:port answering 200 to every POST; yields the paths posted."""
    posted: list[str] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            posted.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield posted
        finally:
            server.shutdown()
            thread.join(5)


def test_logging_in_and_the_overview_equals_reactord_status(
    page: Page, fleet: Fleet, watched: Watched
) -> None:
    page.goto(fleet.url + "/ui/minions")
    expect(page).to_have_url(fleet.url + "/ui/login")  # not logged in: to the login page

    page.get_by_label("Token").fill("rdt_nope_not_a_token")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(fleet.url + "/ui/login?failed=1")
    expect(page.get_by_test_id("login-failed")).to_have_text("login failed: the token is not valid")

    log_in(page, fleet, "admin")
    expect(page.get_by_test_id("token-name")).to_have_text("ui-admin")
    wait_until(lambda: _overview_matches(page, fleet), 15, "the overview to equal reactord status --json")
    expect(page.get_by_test_id("minions-up")).to_have_text("1")

    # It refreshes itself: an event and a dead letter later, it shows the new counts, no reload.
    page.evaluate("window.__same_page = true")
    before = fleet.status()
    _dead_letter(fleet, _fire(fleet, "ops/hook", "-d", "from=overview"))
    wait_until(lambda: _overview_matches(page, fleet), 15, "the overview to follow reactord status --json")
    figures = _figures(page)
    assert int(figures["events-logged"]) > before["events_logged"]
    assert int(figures["dead-letters"]) == before["dead_letters"] + 1
    assert page.evaluate("window.__same_page") is True
    assert int(figures["failed-tries"]) >= 2  # the dead letter's two tries
    assert float(figures["firings-per-second"]) >= 0  # a rate: two polls were compared

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(fleet.url + "/ui/login")
    page.goto(fleet.url + "/ui/")
    expect(page).to_have_url(fleet.url + "/ui/login")  # the login has ended
    watched.assert_clean(page)


def test_an_event_a_minion_sends_shows_live_within_a_second(
    page: Page, fleet: Fleet, watched: Watched
) -> None:
    log_in(page, fleet, "read")
    page.goto(fleet.url + "/ui/events")
    expect(page.get_by_test_id("live-state")).to_have_text("live")
    page.evaluate("window.__same_page = true")
    mark = uuid.uuid4().hex

    started = time.monotonic()
    sent = fleet.setup.send("web01", "app/deployed", "-d", "version=1.2.3", "-d", f"mark={mark}")
    returned = time.monotonic()
    assert sent.returncode == 0, sent.stderr
    row = page.locator("#events tr", has_text=mark)
    expect(row).to_be_visible(timeout=1000)
    shown = time.monotonic()
    print(
        f"live: shown {shown - started:.3f}s after the send began, {shown - returned:.3f}s after it returned"
    )
    assert shown - returned < 1.0
    assert page.evaluate("window.__same_page") is True

    logged = fleet.setup.events("--tag", "minion/web01/app/deployed")
    event_id = next(e["id"] for e in logged if e["data"].get("mark") == mark)
    expect(row.get_by_role("link")).to_have_attribute("href", f"/ui/event?id={event_id}")
    expect(row).to_contain_text("minion/web01/app/deployed")

    # A filter opens a new stream: only its tags come.
    page.get_by_test_id("tag-filter").fill("ops/ui/**")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(fleet.url + "/ui/events?tag=ops%2Fui%2F**")
    expect(page.get_by_test_id("live-state")).to_have_text("live: ops/ui/**")
    other = uuid.uuid4().hex
    assert fleet.setup.send("web01", "app/other", "-d", f"mark={other}").returncode == 0
    wait_until(lambda: fleet.setup.events("--tag", "minion/web01/app/other"), 10, "app/other logged")
    wanted = _fire(fleet, "ops/ui/filtered")
    expect(page.locator(f'#events tr[data-id="{wanted}"]')).to_be_visible(timeout=1000)
    expect(page.locator("#events tr", has_text=other)).to_have_count(0)
    expect(page.locator("#events tr", has_text="minion/")).to_have_count(0)

    # Paused, new events are held, and shown on resume.
    page.get_by_test_id("pause").click()
    held = _fire(fleet, "ops/ui/held")
    expect(page.get_by_test_id("live-state")).to_have_text("paused: 1 new held")
    expect(page.locator(f'#events tr[data-id="{held}"]')).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(f'#events tr[data-id="{held}"]')).to_be_visible()
    watched.assert_clean(page)


def test_an_event_page_shows_what_it_caused_and_why_each_rule_fired_or_not(
    page: Page, fleet: Fleet, watched: Watched
) -> None:
    mark = uuid.uuid4().hex
    assert (
        fleet.setup.send("web01", "app/deployed", "-d", "version=2.0.0", "-d", f"mark={mark}").returncode == 0
    )
    event = wait_until(
        lambda: next(
            (e for e in fleet.setup.events("--tag", "minion/**") if e["data"].get("mark") == mark), None
        ),
        10,
        "the event logged",
    )
    wait_until(lambda: fleet.setup.cli_json("event", "show", event["id"])["caused"], 10, "what it caused")

    log_in(page, fleet, "read")
    page.goto(fleet.url + "/ui/events?tag=minion/web01/app/deployed")
    page.locator(f'#events tr[data-id="{event["id"]}"] a').click()
    expect(page).to_have_url(fleet.url + f"/ui/event?id={event['id']}")
    expect(page.get_by_test_id("event-tag")).to_have_text("minion/web01/app/deployed")
    expect(page.get_by_test_id("event-data")).to_contain_text(f'"mark": "{mark}"')

    chain = page.get_by_test_id("chain")
    expect(chain.locator("li.decision", has_text="deployed").first).to_contain_text("fired")
    caused = chain.locator("li.event-node li.event-node")  # nested under the event
    expect(caused.first).to_contain_text("ops/deploy/seen")
    caused_id = fleet.setup.cli_json("event", "show", event["id"])["caused"][0]["id"]
    expect(caused.first.get_by_role("link").first).to_have_attribute("href", f"/ui/event?id={caused_id}")

    recorded = page.get_by_test_id("explain-recorded")
    expect(recorded.locator("tr", has_text="deployed").first).to_contain_text("fired")
    big = recorded.locator("tr", has_text="big-deploys")
    expect(big).to_contain_text("not fired")
    expect(big).to_contain_text("data.version")  # the reason names what did not match
    expect(page.get_by_test_id("explain-now").locator("tr", has_text="big-deploys")).to_contain_text(
        "not fired"
    )
    watched.assert_clean(page)


def test_a_dead_letter_is_retried_from_its_page(page: Page, fleet: Fleet, watched: Watched) -> None:
    letter = _dead_letter(fleet, _fire(fleet, "ops/hook", "-d", "from=retry"))
    assert (letter["attempts"], letter["status"]) == (2, "open")

    log_in(page, fleet, "operate")
    page.goto(fleet.url + "/ui/deadletters")
    row = page.locator(f'tr[data-key="{letter["id"]}"]')
    expect(row).to_contain_text("Connection refused")
    expect(row.get_by_test_id("tries")).to_have_text("2")

    # Still nothing listening: the retry fails (two more tries, its policy) and says so.
    row.get_by_role("button", name="Retry").click()
    outcome = page.get_by_test_id("retry-outcome")
    expect(outcome).to_contain_text(f"retry of {letter['id']}: failed again: POST http://127.0.0.1:")
    expect(row.get_by_test_id("tries")).to_have_text("4")
    assert _dead_letter(fleet, letter["event_id"])["attempts"] == 4

    # Now the webhook answers: the retry resolves the letter, which leaves the open list.
    with answering(fleet.hook_port) as posted:
        row.get_by_role("button", name="Retry").click()
        expect(outcome).to_have_text(f"retry of {letter['id']}: ok (resolved)")
        assert posted == ["/hook"]
    expect(row).to_have_count(0)
    after = _dead_letter(fleet, letter["event_id"])
    assert (after["attempts"], after["status"]) == (5, "resolved")
    page.get_by_test_id("status-filter").select_option("resolved")
    expect(row).to_contain_text("resolved")
    expect(row.get_by_role("button", name="Retry")).to_have_count(0)
    watched.assert_clean(page)


#: Every page, and what shows it has loaded (its data, not only its frame).
PAGES = {
    "overview": ("/ui/", "[data-testid=minions-up]:text-matches('[0-9]')"),
    "minions": ("/ui/minions", 'tr[data-key="web01"]'),
    "events": ("/ui/events", "#events tr"),
    "event": ("/ui/event?id={event}", "li.event-node"),
    "rules": ("/ui/rules", 'tr[data-key="hook"]'),
    "jobs": ("/ui/jobs", "tr[data-key]"),
    "job": ("/ui/job?jid={jid}", 'tr[data-key="web01"]'),
    "deadletters": ("/ui/deadletters", "tr[data-key]"),
    "state": ("/ui/state", "tr[data-key]"),
}
#: The write controls each role sees, by page: [data-write] elements.
WRITES = {
    "read": {},
    "operate": {"minions": 1, "deadletters": 1},
    "admin": {"minions": 1, "deadletters": 1, "rules": 1},
}
#: Buttons that only read (or log out): all a read token may be shown.
READ_BUTTONS = {"Log out", "Filter", "Pause", "Check", "Open", "Explain"}


@pytest.fixture(scope="module")
def history(fleet: Fleet) -> dict[str, str]:
    """A job, an event with a chain, and an open dead letter, for every page to show."""
    ran = fleet.setup.cli_json("run", "web01", "test.ping")
    event = _fire(fleet, "ops/hook", "-d", "from=history")
    _dead_letter(fleet, event)
    return {"jid": ran["jid"], "event": event}


@pytest.mark.parametrize("role", ["read", "operate", "admin"])
def test_each_role_sees_the_write_controls_it_may_use_and_no_other(
    browser: Browser, fleet: Fleet, history: dict[str, str], role: str
) -> None:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        log_in(page, fleet, role)
        for name, (path, ready) in PAGES.items():
            page.goto(fleet.url + path.format(**history))
            expect(page.locator(ready).first).to_be_visible()
            expect(page.get_by_test_id("token-role")).to_have_text(role)
            expect(page.locator(".message-error:visible")).to_have_count(0)
            writes = page.locator("[data-write]")
            if name == "deadletters" and WRITES[role].get(name):
                expect(writes.first).to_be_visible()  # a Retry per open letter
                assert writes.count() >= 1
            else:
                assert writes.count() == WRITES[role].get(name, 0), name
            if role == "read":
                buttons = set(page.locator("button").all_inner_texts())
                assert buttons <= READ_BUTTONS, f"{name}: {buttons - READ_BUTTONS}"
                assert page.locator("#run-form, #reload, [data-testid=retry]").count() == 0, name
    finally:
        context.close()


#: Writes a read token's page might try: (method, path, body).
WRITE_ATTEMPTS = [
    ("POST", "/api/v1/run", {"target": "web01", "fun": "test.ping"}),
    ("POST", "/api/v1/events", {"tag": "ops/sneaky"}),
    ("POST", "/api/v1/rules/reload", None),
    ("POST", "/api/v1/deadletters/{letter}/retry", None),
    ("POST", "/api/v1/keys/web01/reject", None),
    ("DELETE", "/api/v1/keys/web01", None),
]


def test_a_read_token_writing_anyway_is_refused_403(
    page: Page, fleet: Fleet, history: dict[str, str], watched: Watched
) -> None:
    letter = _dead_letter(fleet, history["event"])
    log_in(page, fleet, "read")
    attempts = [(m, p.format(letter=letter["id"]), b) for m, p, b in WRITE_ATTEMPTS]
    answers = page.evaluate(
        """async (attempts) => {
          const session = await (await fetch("/api/v1/session")).json();
          const headers = { "X-CSRF-Token": session.csrf, "Content-Type": "application/json" };
          const out = [];
          for (const [method, path, body] of attempts) {
            const sent = body === null ? undefined : JSON.stringify(body);
            const r = await fetch(path, { method, headers, body: sent });
            out.push([path, r.status, (await r.json()).error]);
          }
          // The same login and header may read through a POST (the gate check): the CSRF
          // token is right, so the refusals above are the role's.
          const gate = await fetch("/api/v1/gate", {
            method: "POST", headers, body: JSON.stringify({ conditions: ["minion/**"] }),
          });
          out.push(["/api/v1/gate", gate.status, null]);
          return { csrf: session.csrf, out };
        }""",
        attempts,
    )
    assert answers["csrf"]
    *writes, gate = answers["out"]
    assert gate[1] == 200, gate
    for path, status, error in writes:
        assert status == 403, (path, status, error)
        assert "the token has read" in error, (path, error)
    assert fleet.setup.key_state("web01") == "accepted"
    assert _dead_letter(fleet, history["event"])["attempts"] == letter["attempts"]
    assert not fleet.setup.events("--tag", "ops/sneaky")


def test_every_page_in_a_tour_with_screenshots(
    page: Page, fleet: Fleet, history: dict[str, str], watched: Watched, shots: Path
) -> None:
    def shot(name: str) -> None:
        page.screenshot(path=shots / f"ui-{name}.png")

    page.goto(fleet.url + "/ui/login")
    expect(page.get_by_label("Token")).to_be_visible()
    shot("login")
    log_in(page, fleet, "admin")
    wait_until(lambda: _overview_matches(page, fleet), 15, "the overview")
    shot("overview")

    page.goto(fleet.url + "/ui/minions")
    page.get_by_test_id("run-target").select_option("web01")
    page.get_by_test_id("run-fun").fill("test.echo")
    page.get_by_test_id("run-args").fill("hello")
    page.get_by_test_id("run-submit").click()
    returns = page.get_by_test_id("run-returns")
    expect(returns.locator("tr", has_text="web01")).to_contain_text('"hello"')
    shot("minions")
    page.locator('tr[data-key="web01"] details summary').click()
    expect(page.locator('tr[data-key="web01"] details pre')).to_contain_text('"roles"')

    page.get_by_test_id("run-result").get_by_role("link").click()
    expect(page.get_by_test_id("job-title")).to_contain_text("test.echo")
    expect(page.get_by_test_id("returns-table").locator('tr[data-key="web01"]')).to_contain_text("ok")
    shot("job")
    page.goto(fleet.url + "/ui/jobs")
    expect(page.locator("tr[data-key]", has_text="test.echo").first).to_be_visible()
    shot("jobs")

    page.goto(fleet.url + "/ui/events")
    expect(page.get_by_test_id("live-state")).to_have_text("live")
    mark = uuid.uuid4().hex[:8]
    assert (
        fleet.setup.send("web01", "app/deployed", "-d", "version=1.4.2", "-d", f"build={mark}").returncode
        == 0
    )
    row = page.locator("#events tr", has_text=mark)
    expect(row).to_be_visible()
    expect(page.locator("#events tr", has_text="ops/deploy/seen").first).to_be_visible()
    shot("events")
    row.get_by_role("link").click()
    expect(page.get_by_test_id("chain")).to_contain_text("ops/deploy/seen")
    expect(page.get_by_test_id("explain-recorded")).to_contain_text("big-deploys")
    shot("event")

    page.goto(fleet.url + "/ui/rules")
    page.get_by_test_id("reload").click()
    expect(page.locator("#message")).to_contain_text("reloaded:")
    expect(page.locator('tr[data-key="deployed"]')).to_contain_text("example.yaml:")
    explain = page.get_by_test_id("explain-form")
    explain.get_by_label("Tag").fill("minion/web01/app/deployed")
    explain.get_by_label("Data (JSON)").fill('{"version": "9.9.9"}')
    explain.get_by_role("button", name="Explain").click()
    explained = page.get_by_test_id("explained")
    expect(explained.locator("tr", has_text="big-deploys")).to_contain_text("fired")
    expect(explained.locator("tr", has_text="big-deploys")).not_to_contain_text("not fired")
    shot("rules")

    page.goto(fleet.url + "/ui/deadletters")
    expect(page.get_by_test_id("retry").first).to_be_visible()
    shot("deadletters")

    page.goto(fleet.url + "/ui/state")
    page.get_by_test_id("gate-glob").fill("minion/*/app/deployed")
    page.get_by_test_id("gate-condition").fill('data.version == "1.4.2"')
    page.get_by_test_id("gate-target").fill("web01")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_test_id("gate-verdict")).to_contain_text("the gate is open")
    expect(page.locator("tr[data-key]", has_text="app/deployed").first).to_be_visible()
    shot("state")
    watched.assert_clean(page)
