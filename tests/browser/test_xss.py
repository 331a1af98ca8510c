"""Markup sent by a minion stays text on every page of the dashboard.

A minion (a host that may be taken over) controls an event's data, its tag's segments, its
grains, and what its functions return. Here each carries markup that would run a script if a
page put it in as HTML; the pages must show it as the literal text, open no dialog, raise no
script error and trip no Content-Security-Policy violation.

A tag segment may only hold ``A-Za-z0-9_.:@=+,~%-`` (reactord/protocol/tags.py): ``<img
src=x onerror=alert(3)>`` is refused there (checked below), so the tag carries the most
hostile segments allowed: the same markup percent-encoded (harmless unless a page decodes it
into HTML) and a ``javascript:`` URL (harmless unless a page makes it a link's target).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Fleet, Watched, log_in, start_fleet, stop_fleet
from tests.support import wait_until

pytestmark = pytest.mark.slow

DATA = {
    "html": "<img src=x onerror=alert(1)>",
    "script": "</script><script>alert(2)</script>",
    "attribute": '"><svg onload=alert(5)>',
    "link": "javascript:alert(6)",
    "<img src=x onerror=alert(7)>": "a hostile key",
}
SEGMENTS = ("%3Cimg%20src=x%20onerror=alert%283%29%3E", "javascript:alert%284%29")
TAG = "app/" + "/".join(SEGMENTS)
GRAINS = {"note": "<img src=x onerror=alert(8)>", "roles": ["</script><script>alert(9)</script>"]}
ECHOED = "<img src=x onerror=alert(10)>"

#: Nothing the data could have made: an element a script could ride in, a script that is not
#: one of the dashboard's own files, a link to javascript:.
INJECTED = """() => [
  ...document.querySelectorAll('img[src="x"], svg, iframe, object, embed, [onerror], [onload]'),
  ...[...document.scripts].filter((s) => !s.src.startsWith(location.origin + "/ui/static/")),
  ...[...document.links].filter((a) => a.protocol !== "http:"),
].map((e) => e.outerHTML)"""


@dataclass
class Hostile:
    fleet: Fleet
    event_id: str
    tag: str
    jid: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    fleet = start_fleet(tmp_path_factory.mktemp("xss") / "setup", grains=GRAINS)
    try:
        setup = fleet.setup
        refused = setup.send("web01", "app/<img src=x onerror=alert(3)>")
        assert refused.returncode != 0 and "bad tag segment" in refused.stderr, refused
        sent = setup.send("web01", TAG, "--data", json.dumps(DATA))
        assert sent.returncode == 0, sent.stderr
        event = wait_until(lambda: setup.events("--tag", "minion/web01/app/**"), 10, "the hostile event")[-1]
        assert event["tag"] == f"minion/web01/{TAG}" and event["data"] == DATA
        ran = setup.cli_json("run", "web01", "test.echo", ECHOED)
        assert ran["returns"]["web01"]["return"] == ECHOED
        yield Hostile(fleet, event["id"], event["tag"], ran["jid"])
    finally:
        stop_fleet(fleet)


def _assert_text_only(page: Page, *literals: str) -> None:
    text = page.locator("main").inner_text()
    for literal in literals:
        assert literal in text, f"{literal!r} not shown as text on {page.url}"
    assert page.evaluate(INJECTED) == [], page.url


def test_markup_from_a_minion_is_shown_as_text_on_every_page(
    page: Page, hostile: Hostile, watched: Watched
) -> None:
    fleet = hostile.fleet
    log_in(page, fleet, "admin")

    page.goto(fleet.url + "/ui/events")
    row = page.locator(f'#events tr[data-id="{hostile.event_id}"]')
    expect(row).to_contain_text(hostile.tag)  # percent-encoded as sent: never decoded
    _assert_text_only(page, hostile.tag, DATA["html"])
    expect(row.get_by_role("link")).to_have_attribute(
        "href", "/ui/event?" + urllib.parse.urlencode({"id": hostile.event_id})
    )

    row.get_by_role("link").click()
    expect(page.get_by_test_id("event-data")).to_contain_text(DATA["script"])
    _assert_text_only(page, hostile.tag, *DATA.values(), *[k for k in DATA if k.startswith("<")])

    page.goto(fleet.url + "/ui/state")
    state = page.locator("tr[data-key]", has_text=SEGMENTS[0])
    state.locator("details summary").click()
    expect(state.locator("details pre")).to_contain_text(DATA["attribute"])
    _assert_text_only(page, hostile.tag, *DATA.values())

    page.goto(fleet.url + "/ui/minions")
    minion = page.locator('tr[data-key="web01"]')
    minion.locator("details summary").click()
    expect(minion.locator("details pre")).to_contain_text(GRAINS["note"])
    _assert_text_only(page, GRAINS["note"], GRAINS["roles"][0])

    page.goto(fleet.url + f"/ui/job?jid={hostile.jid}")
    expect(page.get_by_test_id("returns-table")).to_contain_text(ECHOED)
    _assert_text_only(page, ECHOED)
    page.goto(fleet.url + "/ui/jobs")
    expect(page.locator(f'tr[data-key="{hostile.jid}"]')).to_contain_text(ECHOED)
    _assert_text_only(page, ECHOED)

    # The gate's reasons quote the minion's state and the condition typed: as text too.
    page.goto(fleet.url + "/ui/state")
    page.get_by_test_id("gate-glob").fill("minion/*/app/**")
    page.get_by_test_id("gate-condition").fill("data.html == '<script>alert(15)</script>'")
    page.get_by_role("button", name="Check").click()
    verdict = page.get_by_test_id("gate-verdict")
    expect(verdict).to_contain_text("the gate is closed")
    expect(verdict).to_contain_text(f'got "{DATA["html"]}"')
    _assert_text_only(page, "<script>alert(15)</script>", DATA["html"])
    watched.assert_clean(page)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/ui/events?tag=", "<img src=x onerror=alert(11)>"),
        ("/ui/state?tag=", "<img src=x onerror=alert(12)>"),
        ("/ui/event?id=", "<img src=x onerror=alert(13)>"),
        ("/ui/job?jid=", "<svg onload=alert(14)>"),
    ],
)
def test_markup_in_the_address_is_shown_as_text(
    page: Page, hostile: Hostile, watched: Watched, path: str, shown: str
) -> None:
    """A link someone was sent: the page's own query string, refused by the API, whose error
    quotes it back."""
    log_in(page, hostile.fleet, "read")
    page.goto(hostile.fleet.url + path + urllib.parse.quote(shown))
    expect(page.locator("#message")).to_be_visible()
    _assert_text_only(page, shown)
    # The API's refusal is in the console (the failed request, the message shown); a CSP
    # violation would be too, and may not.
    assert not [c for c in watched.console if "Content Security Policy" in c], watched.console
    watched.console = []
    watched.assert_clean(page)
