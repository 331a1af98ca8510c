"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
master and minion started through the CLI (tests.support.Setup), logged in with tokens the
real CLI made.

One browser for the session; one master and minion per module (``fleet``); a fresh browser
context (its own cookies) per test. Every page a test opens records what would mean a broken
or attacked page: console errors, uncaught script errors, dialogs, CSP violations.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import Setup, free_ports, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}

#: Beside the example rules of ``reactord init`` (``deployed``: minion/*/app/deployed fires
#: ops/deploy/seen): a rule whose webhook goes to a port nothing listens on (until a test
#: listens there), so each ``ops/hook`` event ends in a dead letter after two quick tries; and
#: a rule on deployments that does not fire, to show why.
RULES = """
rules:
  - name: big-deploys
    on: minion/*/app/deployed
    when: {{data.version: "9.9.9"}}
    do: [{{log: "a big one"}}]
  - name: hook
    on: ops/hook
    do:
      - webhook: "http://127.0.0.1:{port}/hook"
        timeout: 2s
        retry: {{attempts: 2, backoff: 50ms}}
"""

#: Records CSP violations where a test can read them (injected by Playwright, so the page's
#: own policy does not apply to it).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@dataclass
class Fleet:
    """A master with the dashboard on ``url``, a minion ``web01``, and a token per role."""

    setup: Setup
    url: str
    hook_port: int
    tokens: dict[str, str] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        return self.setup.cli_json("status")  # type: ignore[no-any-return]


@dataclass
class Watched:
    """What went wrong in a page: console errors, uncaught errors, dialogs."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def csp(self, page: Page) -> list[str]:
        return page.evaluate("window.__csp || []")  # type: ignore[no-any-return]

    def assert_clean(self, page: Page) -> None:
        assert not self.dialogs, f"dialogs opened: {self.dialogs}"
        assert not self.errors, f"script errors: {self.errors}"
        assert not self.console, f"console errors: {self.console}"
        assert not self.csp(page), f"CSP violations: {self.csp(page)}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per test module. Not per session: Playwright's sync API keeps an asyncio
    loop running in the main thread while it is open, and every later test that runs a loop
    of its own (asyncio.run) would fail."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def start_fleet(root: Path, grains: dict[str, Any] | None = None) -> Fleet:
    """A master with ``http.address`` on a free port, the hook rule, and ``web01`` up."""
    setup = Setup.create(root)
    http_port, hook_port = free_ports(2)
    setup.edit_master(http={"address": f"127.0.0.1:{http_port}"})
    (setup.root / "reactor.d" / "hook.yaml").write_text(RULES.format(port=hook_port))
    fleet = Fleet(setup, f"http://127.0.0.1:{http_port}", hook_port)
    try:
        setup.start_master()
        wait_until(lambda: _answers(fleet.url + "/ui/login"), 15, "the dashboard to answer")
        setup.start_minion("web01", grains=grains or {"roles": ["web"]})
        setup.accept_all("web01")
        for role in ("read", "operate", "admin"):
            made = setup.cli_json("token", "create", "--role", role, "--name", f"ui-{role}")
            fleet.tokens[role] = made["token"]
    except BaseException:
        setup.close()
        raise
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    unclean = fleet.setup.close()
    assert not unclean, "daemons that did not stop cleanly on SIGTERM:\n" + "\n".join(unclean)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200  # type: ignore[no-any-return]
    except OSError:
        return False


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("ui") / "setup")
    yield fleet
    stop_fleet(fleet)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, watched: Watched) -> Iterator[Page]:
    """A page in a fresh context (no cookies), watched for errors, dialogs and CSP violations."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.add_init_script(WATCH_CSP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and watched.console.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: watched.errors.append(f"{page.url}: {e}"))

    def dialog(d: Any) -> None:
        watched.dialogs.append(f"{page.url}: {d.type} {d.message!r}")
        d.dismiss()

    page.on("dialog", dialog)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $REACTORD_SCREENSHOTS (docs/images, to commit them), else a temp dir."""
    folder = os.environ.get("REACTORD_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_in(page: Page, fleet: Fleet, role: str) -> None:
    """Through the login form, as a person would."""
    page.goto(fleet.url + "/ui/login")
    page.get_by_label("Token").fill(fleet.tokens[role])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(fleet.url + "/ui/")
    expect(page.get_by_test_id("token-role")).to_have_text(role)
