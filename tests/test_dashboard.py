"""The admin's delivery dashboard: who may see it, its numbers and chart, the failures by
reason and the confirmed retry, and the queries it costs."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.models import Delivery, Event, Incident, VendorPause
from django_eventtrack.monitoring import dashboard, incidents
from tests.processes.helpers import VENDORS
from tests.test_admin import _admin_settings, cells  # noqa: F401 (an autouse fixture)

Status = Delivery.Status
DASHBOARD = reverse("admin:eventtrack_dashboard")
RETRY = reverse("admin:eventtrack_retry_failed")
DELIVERIES = reverse("admin:django_eventtrack_delivery_changelist")
VENDOR_NAMES = ("Hellotext", "Hackle", "Browsee", "PrimeData")


def finished(
    vendor: str,
    state: str,
    *,
    ago: timedelta = timedelta(minutes=10),
    took: timedelta = timedelta(seconds=1),
    reason: str = "",
    attempts: int = 1,
) -> Delivery:
    """A delivery that became ``state`` ``ago`` before now, ``took`` after it was tracked."""
    done = timezone.now() - ago
    tracked = done - took
    event = Event.objects.create(name="order.placed", timestamp=tracked, created_at=tracked)
    row = Delivery.objects.create(
        event=event,
        vendor=vendor,
        status=state,
        created_at=tracked,
        attempts=attempts,
        last_error=reason,
        delivered_at=done if state == Status.DELIVERED else None,
    )
    Delivery.objects.filter(pk=row.pk).update(updated_at=done)
    return row


@pytest.fixture
def outbox() -> None:
    hour = timedelta(hours=1)
    for _ in range(3):
        finished("hackle", Status.DELIVERED, took=timedelta(milliseconds=200))
    finished("hackle", Status.DELIVERED, ago=5 * hour, took=timedelta(seconds=20), attempts=3)
    finished("hackle", Status.FAILED, reason="HTTP 401: bad key")
    finished("hackle", Status.FAILED, ago=2 * hour, reason="HTTP 401: bad key")
    finished("browsee", Status.FAILED, ago=3 * 24 * hour, reason="HTTP 400: no anonymousId")
    finished("browsee", Status.SKIPPED, reason="visitor opted out of tracking")
    finished("segment", Status.DELIVERED)  # a vendor no longer in the registry
    pending = Event.objects.create(name="cart.added", timestamp=timezone.now())
    Delivery.objects.create(
        event=pending, vendor="primedata", created_at=timezone.now() - timedelta(hours=3)
    )


CELL = r"<t[hd][^>]*>(.*?)</t[hd]>"


def rows(content: str, vendor: str) -> list[list[str]]:
    """The dashboard table's rows for ``vendor``: its cells, tags dropped."""
    body = re.search(rf'<tbody class="vendor" id="vendor-{vendor}">(.*?)</tbody>', content, re.S)
    assert body, vendor
    return [
        [
            " ".join(html.unescape(re.sub("<[^>]+>", " ", cell)).split())
            for cell in re.findall(CELL, row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body[1], re.S)
    ]


@pytest.mark.django_db
@pytest.mark.usefixtures("outbox")
def test_superuser_sees_every_vendors_numbers_and_a_chart_each(admin_client: Client) -> None:
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    content = response.content.decode()
    for name in VENDOR_NAMES:
        assert name in content
    # every vendor of the registry, and "segment" (a name found only in the outbox)
    assert content.count('<svg class="eventtrack-chart"') == len(VENDORS) + 1
    hackle = ["Hackle Retry failed…", "0 0 due", "-", "no"]
    assert rows(content, "hackle") == [
        # vendor (and the retry link), pending, oldest, paused, window, delivered, failed,
        # skipped, retried, p50, p95
        [*hackle, "last hour", "3", "1", "0", "0.0%", "≤ 250 ms", "≤ 250 ms"],
        ["last day", "4", "2", "0", "16.7%", "≤ 250 ms", "≤ 30 s"],
        ["last week", "4", "2", "0", "16.7%", "≤ 250 ms", "≤ 30 s"],
    ]
    assert rows(content, "browsee")[2] == ["last week", "0", "1", "1", "0.0%", "-", "-"]
    assert rows(content, "primedata")[0][:3] == ["PrimeData", "1 1 due", "3h"]
    assert rows(content, "segment")[0][5] == "1"
    assert 'aria-label="hackle: 4 delivered and 2 failed in the last day"' in content


@pytest.mark.django_db
@pytest.mark.usefixtures("outbox")
def test_failures_by_reason_link_to_exactly_those_deliveries(admin_client: Client) -> None:
    content = admin_client.get(DASHBOARD, {"window": "hour"}).content.decode()
    reasons = re.findall(r'<td class="reason" title="([^"]*)">', content)
    assert reasons == ["HTTP 401: bad key"]  # the week's browsee failure is out of the hour
    (link,) = re.findall(r'<a href="([^"]+)">List them</a>', content)
    listed = admin_client.get(link.replace("&amp;", "&"))
    assert listed.status_code == 200
    (only,) = listed.context["cl"].result_list
    assert (only.vendor, only.status, only.last_error) == ("hackle", "failed", "HTTP 401: bad key")

    week = admin_client.get(DASHBOARD, {"window": "week"}).content.decode()
    assert re.findall(r'<td class="reason" title="([^"]*)">', week) == [
        "HTTP 401: bad key",
        "HTTP 400: no anonymousId",
    ]


@pytest.mark.django_db
def test_a_vendor_paused_for_every_process_says_until_when_and_why(admin_client: Client) -> None:
    until = timezone.now() + timedelta(seconds=120)
    VendorPause.objects.create(
        vendor="hackle", paused_until=until, reason="HTTP 429, Retry-After 120s"
    )
    VendorPause.objects.create(
        vendor="browsee", paused_until=timezone.now() - timedelta(seconds=1), reason="over"
    )
    content = admin_client.get(DASHBOARD).content.decode()
    names = re.findall(r'<th[^>]*class="vendor-name">\s*(\w+)', content)
    states = [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
        for cell in re.findall(r'<td[^>]*class="paused[^"]*">(.*?)</td>', content, re.DOTALL)
    ]
    paused = dict(zip(names, states, strict=True))
    assert paused["Hackle"] == f"until {until:%H:%M:%S} UTC HTTP 429, Retry-After 120s"
    assert paused["Browsee"] == paused["PrimeData"] == paused["Hellotext"] == "no"


@pytest.mark.django_db
def test_an_unknown_window_falls_back_to_the_day(admin_client: Client) -> None:
    content = admin_client.get(DASHBOARD, {"window": "decade"}).content.decode()
    assert "Deliveries and failures over the last day" in content


@pytest.mark.django_db
def test_the_dashboard_costs_the_same_queries_whatever_the_outbox_holds(
    admin_client: Client,
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(DASHBOARD).status_code == 200
        return len(captured)

    finished("hackle", Status.DELIVERED)
    few = queries()
    for index in range(30):
        vendor = ("hackle", "browsee", "primedata", "hellotext")[index % 4]
        finished(vendor, Status.FAILED, reason=f"HTTP 4{index:02d}", ago=timedelta(hours=index))
        finished(vendor, Status.DELIVERED, ago=timedelta(hours=index))
    assert queries() == few
    # The session and user, then summary (deliveries, events not yet routed), finished,
    # pauses, timeline, incidents and failure reasons.
    assert few <= 9


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in_and_non_staff_refused(client: Client) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    shopper = User.objects.create_user("shopper", password="x")
    client.force_login(shopper)
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    staff = User.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(DASHBOARD).status_code == 403  # staff, but may not view deliveries


@pytest.mark.django_db
@pytest.mark.usefixtures("outbox")
def test_view_permission_shows_the_dashboard_without_retrying(client: Client) -> None:
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_delivery"))
    client.force_login(viewer)
    content = client.get(DASHBOARD).content.decode()
    assert "Hackle" in content
    assert "Retry failed" not in content
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert client.get(RETRY, {"vendor": "hackle", "since": since}).status_code == 403
    assert client.post(RETRY, {"vendor": "hackle", "since": since}).status_code == 403
    assert Delivery.objects.filter(status=Status.FAILED).count() == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("outbox")
def test_retry_failed_since_asks_first_then_retries_on_a_post_with_csrf(
    admin_user: User,
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    dashboard_page = client.get(DASHBOARD).content.decode()
    (link,) = re.findall(r'<a class="retry-link" href="([^"]+)">', dashboard_page)  # hackle only
    confirm = client.get(link.replace("&amp;", "&"))
    assert confirm.status_code == 200
    content = confirm.content.decode()
    assert "Retry the <strong>2</strong> deliveries to <strong>hackle</strong>" in content
    assert "2 &times; HTTP 401: bad key" in content
    assert Delivery.objects.filter(status=Status.FAILED).count() == 3  # nothing changed yet

    since = confirm.context["since"].isoformat()
    form = {"vendor": "hackle", "since": since}
    assert client.post(RETRY, form).status_code == 403  # no CSRF token
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', content)
    assert token
    response = client.post(RETRY, form | {"csrfmiddlewaretoken": token[1]}, follow=True)
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert [str(m) for m in response.context["messages"]] == ["2 deliveries due now."]
    assert dict(
        Delivery.objects.filter(vendor__in=["hackle", "browsee"])
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    ) == {
        "pending": 2,
        "delivered": 4,
        "failed": 1,  # browsee's, another vendor
        "skipped": 1,
    }


@pytest.mark.django_db
def test_retry_failed_refuses_bad_input_with_the_field_named(admin_client: Client) -> None:
    response = admin_client.get(RETRY, {"vendor": "segment", "since": "yesterday"})
    assert response.status_code == 400
    content = response.content.decode()
    assert "<strong>vendor</strong>: Select a valid choice. segment is not one" in content
    assert "<strong>since</strong>: Enter a valid date/time." in content
    nothing = admin_client.get(RETRY, {"vendor": "hackle", "since": "2026-01-01T00:00"})
    assert "nothing to retry" in nothing.content.decode()


@pytest.mark.django_db
def test_the_app_index_and_the_lists_link_to_the_dashboard(admin_client: Client) -> None:
    index = admin_client.get(reverse("admin:app_list", args=["django_eventtrack"]))
    assert f'href="{DASHBOARD}"' in index.content.decode()
    for changelist in (DELIVERIES, reverse("admin:django_eventtrack_event_changelist")):
        assert f'href="{DASHBOARD}"' in admin_client.get(changelist).content.decode()


# -- the timeline and its chart ---------------------------------------------------------------

NOW = datetime(2026, 11, 23, 12, 7, 30, tzinfo=UTC)


@pytest.mark.django_db
def test_timeline_puts_each_delivery_in_its_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    for minutes_ago, state in [(0, "delivered"), (7, "delivered"), (8, "failed"), (59, "failed")]:
        finished("hackle", state, ago=timedelta(minutes=minutes_ago))
    finished("hackle", Status.DELIVERED, ago=timedelta(minutes=61))  # before the window
    line = dashboard.timeline(dashboard.WINDOWS["hour"], NOW)
    # 11:07:30 to 12:07:30 in 5-minute bars on whole steps: 11:05 (partly) to 12:05.
    assert line.starts[0] == datetime(2026, 11, 23, 11, 5, tzinfo=UTC)
    assert line.starts[-1] == datetime(2026, 11, 23, 12, 5, tzinfo=UTC)
    assert len(line.starts) == 13
    assert line.counts("hackle") == (
        [0] * 11 + [1, 1],  # 12:00:30 and 12:07:30
        [1] + [0] * 9 + [1, 0, 0],  # 11:08:30 and 11:59:30
    )
    assert line.counts("browsee") == ([0] * 13, [0] * 13)


def test_the_chart_titles_each_bar_and_scales_to_the_busiest() -> None:
    starts = [NOW - timedelta(hours=23 - index) for index in range(24)]
    line = dashboard.Timeline(
        dashboard.WINDOWS["day"], starts, {"hackle": [0] * 23 + [30]}, {"hackle": [0] * 23 + [7]}
    )
    svg = str(dashboard.chart(line, "hackle"))
    assert svg.startswith('<svg class="eventtrack-chart"')
    assert svg.count('<g class="bar">') == 24
    assert "<title>12:07 to 13:07: 30 delivered, 7 failed</title>" in svg
    assert ">40</text>" in svg  # the axis top: the busiest bar (37) rounded up
    assert 'aria-label="hackle: 30 delivered and 7 failed in the last day"' in svg


@pytest.mark.django_db
def test_an_incident_says_why_since_when_and_what_to_do(admin_client: Client) -> None:
    now = timezone.now()
    ongoing = Incident.objects.create(
        vendor="primedata",
        reason="HTTP 503",
        http_status=503,
        message="HTTP 503: upstream maintenance",
        count=16,
        first_seen=now - timedelta(minutes=12),
        last_seen=now - timedelta(seconds=5),
    )
    Incident.objects.create(
        vendor="hackle",
        reason="HTTP 401",
        http_status=401,
        message='HTTP 401: {"message":"Unauthorized"}',
        count=3,
        retrying=False,
        first_seen=now - timedelta(hours=2),
        last_seen=now - timedelta(hours=1),
        resolved_at=now - timedelta(minutes=50),
    )
    Incident.objects.create(  # over before the window
        vendor="browsee",
        reason="HTTP 502",
        first_seen=now - timedelta(days=3),
        last_seen=now - timedelta(days=3),
        resolved_at=now - timedelta(days=3),
    )
    content = admin_client.get(DASHBOARD).content.decode()
    section = re.search(r'<section class="module eventtrack-incidents".*?</section>', content, re.S)
    assert section
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section[0])).split())
    assert text.index("PrimeData: HTTP 503 ongoing, retrying") < text.index("Hackle: HTTP 401")
    assert f"First seen {ongoing.first_seen:%Y-%m-%d %H:%M:%S} UTC (12m" in text
    assert "Failed attempts 16" in text
    assert "The vendor's answer HTTP 503: upstream maintenance" in text
    assert "PrimeData is failing on its side" in text
    assert "resolved" in text
    assert "Browsee" not in text
    # The vendor's row says why it is retrying, in the vendor's words, and since when.
    why = rows(content, "primedata")[0][3]
    assert (
        why
        == f"no HTTP 503 since {ongoing.first_seen:%H:%M:%S} UTC : HTTP 503: upstream maintenance"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("vendor", "places"),
    [
        ("hackle", ['EVENTTRACK["VENDORS"]["hackle"]["API_KEY"] (or EVENTTRACK_HACKLE_API_KEY)']),
        (
            "primedata",
            [
                'EVENTTRACK["VENDORS"]["primedata"]["CLIENT_ID"] '
                "(or EVENTTRACK_PRIMEDATA_CLIENT_ID)",
                'EVENTTRACK["VENDORS"]["primedata"]["ACCESS_TOKEN"] (or '
                "EVENTTRACK_PRIMEDATA_ACCESS_TOKEN)",
            ],
        ),
        ("acme", ['EVENTTRACK["VENDORS"]["acme"]["API_KEY"] (or EVENTTRACK_ACME_API_KEY)']),
    ],
)
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_credential_points_at_the_setting_that_holds_it(
    vendor: str, places: list[str], status: int
) -> None:
    """From the vendor's adapter in the registry: the test suite's fifth vendor too."""
    advice = incidents.advice(vendor, status, f"HTTP {status}")
    assert advice.startswith(
        f"{get_config().adapters[vendor].display_name} refused the credentials"
    )
    for place in places:
        assert place in advice


@pytest.mark.parametrize(
    ("status", "reason", "says"),
    [
        (429, "HTTP 429", 'lower EVENTTRACK["CONCURRENCY"]'),
        (503, "HTTP 503", "failing on its side"),
        (500, "HTTP 500", "failing on its side"),
        (400, "HTTP 400", "refused these events (HTTP 400)"),
        (None, "read timeout", 'raise EVENTTRACK["VENDORS"]["hackle"]["TIMEOUT"]'),
        (None, "connection error", 'check EVENTTRACK["VENDORS"]["hackle"]["API_URL"]'),
        (None, "internal error", "the log of django_eventtrack.sender"),
    ],
)
def test_each_kind_of_failure_has_its_advice(status: int | None, reason: str, says: str) -> None:
    assert says in incidents.advice("hackle", status, reason)
