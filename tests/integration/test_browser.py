"""The example shop and the delivery dashboard in a real browser.

Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it) driven by
Playwright, against the example project's own ``runserver`` (default ``thread``
delivery, a SQLite file) and the vendor sandbox, both on 127.0.0.1. Two shoppers use
one browser: the first lands from a Hellotext short link, buys and signs out; the
second signs up and buys. Each vendor must have received each shopper's events under
that shopper's ids only; a browser sending Global Privacy Control must reach no
vendor; a superuser's dashboard must show every vendor's chart and the numbers the
outbox holds; and no page may log a console error or answer an error status.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.example_project import MANAGE, environment, manage
from tests.integration.conftest import unavailable
from tests.processes.helpers import VENDORS, free_port, wait_until
from tests.settings import TEST_ADAPTERS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Response, ViewportSize

pytestmark = pytest.mark.integration

SUPERUSER, SUPERUSER_PASSWORD = "boss", "a-superuser-pass-phrase"
SHOPPER, SHOPPER_PASSWORD = "ada", "demo-only-password"  # shop.seed's customer
NEWCOMER, NEWCOMER_PASSWORD = "grace", "grace-long-pass-phrase-1"
BOUGHT = {"product.viewed", "cart.added", "order.placed"}
LAPTOP: ViewportSize = {"width": 1366, "height": 768}


def chromium() -> str:
    """Debian's Chromium, or skip (fail under EVENTTRACK_TEST_REQUIRE_SERVERS=1)."""
    if importlib.util.find_spec("playwright") is None:
        unavailable("needs playwright: pip install -e '.[integration]' (tox installs it)")
    path = os.environ.get("EVENTTRACK_TEST_CHROMIUM") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        unavailable(
            "no Chromium: apt-get install chromium (.ci/run installs it), or set "
            "EVENTTRACK_TEST_CHROMIUM to its path"
        )
    return str(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright's own browser download is never used: the system's Chromium.
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Shop:
    url: str
    database: Path
    log: Path

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as connection:
            return connection.execute(sql, params).fetchall()


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.fixture
def shop(tmp_path: Path, sandbox: Sandbox) -> Iterator[Shop]:
    """The example project's runserver on a free 127.0.0.1 port, vendors at the sandbox."""
    database = tmp_path / "shop.sqlite3"
    env = environment(
        database,
        DEBUG="true",  # runserver serves the static files (admin CSS, favicon)
        DJANGO_SUPERUSER_PASSWORD=SUPERUSER_PASSWORD,
        # The test suite's vendor registry, its fifth vendor (tests/fifthvendor/) included.
        EVENTTRACK_ADAPTERS=",".join(TEST_ADAPTERS),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        **sandbox.env(),
    )
    for command in (
        ["migrate", "-v0"],
        ["seed"],
        ["createsuperuser", "--noinput", "--username", SUPERUSER, "--email", "boss@example.com"],
    ):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    log = tmp_path / "runserver.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(  # noqa: S603 - our own manage.py
            [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: answers(port) or server.poll() is not None, 60, "runserver")
        assert server.poll() is None, log.read_text()
        yield Shop(f"http://127.0.0.1:{port}", database, log)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@dataclass
class Problems:
    """What went wrong in the browser: console errors, page errors, error answers."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("response", self._response)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console error on {message.location}: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.seen.append(f"{response.status} for {response.request.method} {response.url}")


def buy(page: Page, product: str) -> None:
    page.get_by_role("link", name=product).click()
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/cart/")
    page.get_by_role("button", name="Place order").click()
    page.get_by_role("heading", name="Thank you!").wait_for()


def event_name(vendor: str, payload: dict[str, Any]) -> str | None:
    """The event a vendor received (None for an identify call)."""
    if vendor == "hellotext":
        return payload.get("action")
    if vendor == "hackle":
        return (payload.get("event") or {}).get("key")
    if vendor == "browsee":
        return payload.get("event")
    # PrimeData's eventType (its identify is an event too); a batch vendor's type otherwise.
    name = payload.get("eventType", payload.get("type"))
    return None if name == "identify" else name


def strings(value: Any) -> set[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(strings(item) for item in value))
    return set()


def test_two_shoppers_one_browser_and_the_dashboard(
    browser: Browser, shop: Shop, sandbox: Sandbox, tmp_path: Path
) -> None:
    problems = Problems()
    context = browser.new_context(base_url=shop.url, viewport=LAPTOP)
    page = problems.watch(context.new_page())

    # The first shopper lands from a Hellotext short link, signs in, buys, signs out.
    short_link_session = str(uuid.uuid4())
    page.goto(f"/?hello_session={short_link_session}&utm_source=hellotext&utm_medium=sms")
    page.get_by_role("link", name="Organic cotton tee").click()
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_label("username").fill(SHOPPER)
    page.get_by_label("password").fill(SHOPPER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {SHOPPER}").wait_for()
    page.goto("/cart/")
    page.get_by_role("button", name="Place order").click()
    page.get_by_role("heading", name="Thank you!").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()

    # The second shopper, on the same browser, signs up and buys.
    page.get_by_role("link", name="sign up").click()
    form = page.locator("main form")
    form.get_by_label("Username").fill(NEWCOMER)
    form.get_by_label("Email").fill("grace@example.com")
    form.get_by_label("Password:", exact=True).fill(NEWCOMER_PASSWORD)
    form.get_by_label("Password confirmation").fill(NEWCOMER_PASSWORD)
    form.get_by_role("button", name="Create my account").click()
    page.get_by_text(f"Signed in as {NEWCOMER}").wait_for()
    # Her Hellotext profile exists once the sign-in's identify() is delivered; her
    # events name it (she came from no short link, so has no Hellotext session).
    wait_until(
        lambda: shop.query(
            "SELECT 1 FROM eventtrack_vendor_profile p JOIN auth_user u ON p.user_id = u.id "
            "WHERE u.username = ?",
            NEWCOMER,
        ),
        timeout=20,
        what="the newcomer's Hellotext profile",
    )
    buy(page, "Stoneware mug")
    context.close()

    # A browser sending Global Privacy Control reaches no vendor.
    private = browser.new_context(
        base_url=shop.url, viewport=LAPTOP, extra_http_headers={"Sec-GPC": "1"}
    )
    private_page = problems.watch(private.new_page())
    private_page.goto("/")
    private_page.get_by_text("We do not track this browser").wait_for()
    buy(private_page, "Organic cotton tee")
    private.close()

    wait_until(
        lambda: (
            shop.query("SELECT COUNT(*) FROM eventtrack_delivery WHERE status = 'pending'")
            == [(0,)]
        ),
        timeout=30,
        what="every delivery to be sent",
    )
    assert shop.query(
        "SELECT status, COUNT(*) FROM eventtrack_delivery d JOIN eventtrack_event e "
        "ON d.event_id = e.id WHERE json_extract(e.identity, '$.opted_out') GROUP BY status"
    ) == [("skipped", len(BOUGHT) * len(VENDORS))]
    assert shop.query("SELECT COUNT(*) FROM eventtrack_delivery WHERE status = 'failed'") == [(0,)]

    # Each vendor received each shopper's events under that shopper's ids only.
    ids = {
        username: {
            str(value)
            for row in shop.query(
                "SELECT e.identity FROM eventtrack_event e JOIN auth_user u "
                "ON json_extract(e.identity, '$.user_id') = CAST(u.id AS TEXT) "
                "WHERE u.username = ?",
                username,
            )
            for key, value in json.loads(row[0]).items()
            if key in ("anonymous_id", "session", "profile")
        }
        | {
            profile
            for (profile,) in shop.query(
                "SELECT profile_id FROM eventtrack_vendor_profile p JOIN auth_user u "
                "ON p.user_id = CAST(u.id AS TEXT) WHERE u.username = ?",
                username,
            )
        }
        for username in (SHOPPER, NEWCOMER)
    }
    assert short_link_session in ids[SHOPPER]
    assert not ids[SHOPPER] & ids[NEWCOMER]
    for vendor in VENDORS:
        bought: dict[str, list[str]] = {SHOPPER: [], NEWCOMER: []}
        for payload in sandbox.events(vendor):
            name = event_name(vendor, payload)
            if name is None:
                continue
            whose = [user for user, known in ids.items() if strings(payload) & known]
            assert len(whose) == 1, (vendor, payload, whose)
            bought[whose[0]].append(name)
        assert {user: sorted(names) for user, names in bought.items()} == {
            SHOPPER: sorted(BOUGHT),
            NEWCOMER: sorted(BOUGHT),
        }, vendor

    # The superuser's dashboard: every vendor's chart and the numbers the outbox holds.
    admin = browser.new_context(base_url=shop.url, viewport=LAPTOP)
    admin_page = problems.watch(admin.new_page())
    admin_page.goto("/admin/")
    admin_page.get_by_label("Username").fill(SUPERUSER)
    admin_page.get_by_label("Password").fill(SUPERUSER_PASSWORD)
    admin_page.get_by_role("button", name="Log in").click()
    admin_page.get_by_role("link", name="Event tracking").first.click()
    admin_page.get_by_role("link", name="Delivery dashboard").first.click()
    admin_page.get_by_role("heading", name="Delivery dashboard").wait_for()
    charts = admin_page.locator("svg.eventtrack-chart")
    assert charts.count() == len(VENDORS)
    for index in range(len(VENDORS)):
        assert charts.nth(index).locator("g.bar rect.delivered").count() >= 24
    delivered = dict(
        shop.query(
            "SELECT vendor, COUNT(*) FROM eventtrack_delivery WHERE status = 'delivered' "
            "GROUP BY vendor"
        )
    )
    for vendor in VENDORS:
        first_row = admin_page.locator(f"#vendor-{vendor} tr").first.locator("td")
        cells = [text.strip() for text in first_row.all_inner_texts()]
        # pending and due, oldest pending, paused, window, delivered, failed, skipped
        assert re.fullmatch(r"0\s+0 due", cells[0]), cells
        expected = ["-", "no", "last hour", str(delivered[vendor]), "0", cells[6]]
        assert cells[1:7] == expected, cells
    screenshot = tmp_path / "dashboard.png"
    admin_page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    admin.close()

    assert problems.seen == [], "\n".join(problems.seen) + "\n" + shop.log.read_text()


def test_the_consent_banner_and_forget_me(browser: Browser, shop: Shop, sandbox: Sandbox) -> None:
    """A visitor who accepts analytics and refuses marketing reaches the analytics vendors
    only; "Forget me" on the account page erases them and nothing is tracked after."""
    problems = Problems()
    context = browser.new_context(base_url=shop.url, viewport=LAPTOP)
    page = problems.watch(context.new_page())
    page.goto("/")
    banner = page.locator("#consent-banner")
    banner.get_by_label("marketing").uncheck()
    banner.get_by_role("button", name="Save my choices").click()
    page.wait_for_load_state()
    assert page.locator("#consent-banner").get_by_label("analytics").is_checked()
    assert not page.locator("#consent-banner").get_by_label("marketing").is_checked()

    page.get_by_role("link", name="sign up").click()
    form = page.locator("main form")
    form.get_by_label("Username").fill("lin")
    form.get_by_label("Email").fill("lin@example.com")
    form.get_by_label("Password:", exact=True).fill(NEWCOMER_PASSWORD)
    form.get_by_label("Password confirmation").fill(NEWCOMER_PASSWORD)
    form.get_by_role("button", name="Create my account").click()
    page.get_by_text("Signed in as lin").wait_for()
    buy(page, "Stoneware mug")
    ((lin,),) = shop.query("SELECT id FROM auth_user WHERE username = 'lin'")
    # Settled: no delivery pending, and no event left whose deliveries a sender has yet to
    # write (its routes): those count as pending too.
    settled = (
        "SELECT (SELECT COUNT(*) FROM eventtrack_delivery WHERE status = 'pending')"
        " + (SELECT COUNT(*) FROM eventtrack_event WHERE routes IS NOT NULL)"
    )
    wait_until(lambda: shop.query(settled) == [(0,)], timeout=30, what="every delivery sent")

    rows = shop.query(
        "SELECT d.vendor, d.status, d.last_error FROM eventtrack_delivery d "
        "JOIN eventtrack_event e ON d.event_id = e.id "
        "WHERE json_extract(e.identity, '$.user_id') = ? AND e.name = ?",
        str(lin),
        "order.placed",
    )
    outcome = {vendor: (status, reason) for vendor, status, reason in rows}
    for vendor in ("hackle", "browsee"):
        assert outcome[vendor] == ("delivered", ""), outcome
    for vendor in ("hellotext", "primedata"):
        assert outcome[vendor] == ("skipped", "no consent for marketing"), outcome
    lin_ids = {str(lin)}
    for vendor in ("hellotext", "primedata"):
        assert not [p for p in sandbox.events(vendor) if strings(p) & lin_ids], vendor
    assert [p for p in sandbox.events("hackle") if strings(p) & lin_ids]

    # "Forget me" on the account page.
    page.get_by_role("link", name="lin").click()
    page.get_by_role("button", name="Forget me").click()
    page.get_by_role("heading", name="We have forgotten you").wait_for()
    assert shop.query(
        "SELECT COUNT(*) FROM eventtrack_event WHERE json_extract(identity, '$.user_id') = ?",
        str(lin),
    ) == [(0,)]
    assert (
        shop.query(
            "SELECT COUNT(*) FROM eventtrack_event "
            "WHERE scrubbed_at IS NOT NULL AND identity = '{}'"
        )[0][0]
        >= 2
    )
    ((tasks,),) = shop.query("SELECT COUNT(*) FROM eventtrack_erasure_task WHERE status = 'todo'")
    assert tasks == len(VENDORS)

    # Signed in again, a purchase is stored and sent nowhere.
    received = len(sandbox.requests())
    page.get_by_label("username").fill("lin")
    page.get_by_label("password").fill(NEWCOMER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as lin").wait_for()
    buy(page, "Organic cotton tee")
    assert shop.query(
        "SELECT COUNT(*) FROM eventtrack_event WHERE json_extract(identity, '$.user_id') = ?",
        str(lin),
    ) == [(0,)]
    assert not [
        r for r in sandbox.requests()[received:] if str(lin) in r.raw or "lin@example" in r.raw
    ]
    context.close()
    assert not problems.seen, problems.seen


#: In the page: what overflows, as "what: how much wider than its box" lines. The page
#: itself must be no wider than the window, and no scrolling box (the admin wraps its lists
#: in one) may hide part of what it holds: a cut column.
OVERFLOWS = """() => {
    const found = [];
    const root = document.documentElement;
    if (root.scrollWidth > window.innerWidth) {
        found.push(`page: ${root.scrollWidth} > ${window.innerWidth}`);
    }
    for (const box of document.querySelectorAll("body *")) {
        const style = getComputedStyle(box);
        const clips = ["auto", "scroll", "hidden"].includes(style.overflowX);
        if (clips && box.clientWidth > 1 && box.scrollWidth > box.clientWidth + 1) {
            found.push(`${box.tagName}.${box.className}: ${box.scrollWidth} > ${box.clientWidth}`);
        }
    }
    return found;
}"""


def fits(page: Page) -> list[str]:
    return list(page.evaluate(OVERFLOWS))


def column_visible(page: Page, selector: str) -> bool:
    """The column's header lies wholly inside the window and inside its scrolling box."""
    return bool(
        page.evaluate(
            """(selector) => {
                const header = document.querySelector(selector);
                if (!header) return false;
                const edge = header.getBoundingClientRect();
                const box = header.closest(".results") || document.documentElement;
                const frame = box.getBoundingClientRect();
                return edge.width > 0 && edge.right <= Math.min(window.innerWidth, frame.right) + 1;
            }""",
            selector,
        )
    )


def test_the_dashboard_and_the_lists_fit_a_phone_and_a_laptop_during_an_incident(
    browser: Browser, shop: Shop, sandbox: Sandbox
) -> None:
    """An incident (Hackle refusing its key, PrimeData down) shown at 390 and 1280 pixels:
    nothing wider than the page, no column cut off, when it began and what to do."""
    problems = Problems()
    sandbox.inject("hackle", status=401, count=1000, body={"message": "Unauthorized"})
    sandbox.inject("primedata", status=503, count=1000, retry_after="60")
    visitor = browser.new_context(base_url=shop.url, viewport=LAPTOP)
    visit = problems.watch(visitor.new_page())
    visit.goto(f"/?hello_session={uuid.uuid4()}")
    for _ in range(3):
        visit.get_by_role("link", name="Organic cotton tee").click()
        visit.go_back()
    visitor.close()
    wait_until(
        lambda: (
            {
                vendor
                for (vendor,) in shop.query(
                    "SELECT vendor FROM eventtrack_incident WHERE count > 0"
                )
            }
            >= {"hackle", "primedata"}
        ),
        timeout=30,
        what="Hackle's and PrimeData's incidents",
    )
    ((first_seen,),) = shop.query(
        "SELECT first_seen FROM eventtrack_incident WHERE vendor = 'hackle'"
    )
    first_seen_text = first_seen[:19].replace("T", " ") + " UTC"

    for width in (390, 1280):
        admin = browser.new_context(base_url=shop.url, viewport={"width": width, "height": 900})
        page = problems.watch(admin.new_page())
        page.goto("/admin/login/")
        page.get_by_label("Username").fill(SUPERUSER)
        page.get_by_label("Password").fill(SUPERUSER_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto("/admin/django_eventtrack/delivery/dashboard/")
        page.get_by_role("heading", name="Delivery dashboard").wait_for()
        assert fits(page) == [], width
        hackle = page.locator('#incidents article[data-vendor="hackle"]')
        assert hackle.locator(".first-seen time").inner_text() == first_seen_text
        advice = hackle.locator(".advice").inner_text()
        assert 'check EVENTTRACK["VENDORS"]["hackle"]["API_KEY"]' in advice, advice
        assert "EVENTTRACK_HACKLE_API_KEY" in advice
        primedata = page.locator('#incidents article[data-vendor="primedata"]')
        assert "HTTP 503" in primedata.locator(".answer").inner_text()
        if width == 1280:
            for url, column in (
                ("/admin/django_eventtrack/event/", "th.column-deliveries_column"),
                ("/admin/django_eventtrack/delivery/", "th.column-reason"),
            ):
                page.goto(url)
                assert fits(page) == [], url
                assert column_visible(page, column), (url, column)
        admin.close()
    # The vendors' refusals are the incident's, not the pages': every page answered.
    assert [seen for seen in problems.seen if "/admin/" in seen] == []
