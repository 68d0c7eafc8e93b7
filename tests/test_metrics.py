"""The Prometheus metrics view: who may scrape it, what it reports, and without the extra."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.delivery import flow
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery, Event, VendorPause
from django_eventtrack.vendors import Outcome, OutcomeKind
from tests.test_admin import _admin_settings  # noqa: F401 (an autouse fixture: sessions, auth)
from tests.test_dashboard import finished

Status = Delivery.Status
TOKEN = "scrape-token-0123456789"
URL = "/metrics"


@pytest.fixture
def token(settings: Settings) -> str:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "METRICS_TOKEN": TOKEN}
    return TOKEN


@pytest.fixture
def closed_breakers() -> Iterator[None]:
    flow.breaker.reset()
    yield
    flow.breaker.reset()


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    response = client.get(URL, headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("closed_breakers")
def test_metrics_report_outcomes_backlog_latency_and_circuit_per_vendor(
    client: Client, token: str
) -> None:
    for took in (0.2, 0.2, 3.0):
        finished("hackle", Status.DELIVERED, took=timedelta(seconds=took))
    finished("hackle", Status.FAILED, reason="HTTP 401")
    finished("hackle", Status.DELIVERED, ago=timedelta(hours=2))  # not in the last hour
    finished("browsee", Status.SKIPPED)
    Delivery.objects.create(
        event=Event.objects.create(name="cart.added", timestamp=timezone.now()),
        vendor="primedata",
        created_at=timezone.now() - timedelta(minutes=20),
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    retry = Outcome(OutcomeKind.RETRY, 503, "HTTP 503")
    flow.breaker.record("browsee", retry, threshold=1, pause=60)
    VendorPause.objects.create(
        vendor="primedata",
        paused_until=timezone.now() + timedelta(seconds=120),
        reason="HTTP 429, Retry-After 120s",
    )

    samples = scrape(client, authorization=f"Bearer {token}")

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert sample("eventtrack_deliveries_last_hour", vendor="hackle", outcome="delivered") == 3
    assert sample("eventtrack_deliveries_last_hour", vendor="hackle", outcome="failed") == 1
    assert sample("eventtrack_deliveries_last_hour", vendor="browsee", outcome="skipped") == 1
    assert sample("eventtrack_deliveries_last_hour", vendor="hellotext", outcome="failed") == 0
    assert sample("eventtrack_pending_deliveries", vendor="primedata") == 1
    assert sample("eventtrack_due_deliveries", vendor="primedata") == 0
    assert sample("eventtrack_oldest_pending_age_seconds", vendor="primedata") == pytest.approx(
        1200, abs=30
    )
    assert sample("eventtrack_oldest_pending_age_seconds", vendor="hackle") == 0
    bucket = "eventtrack_delivery_latency_seconds_bucket"
    assert sample(bucket, vendor="hackle", le="0.25") == 2
    assert sample(bucket, vendor="hackle", le="2.5") == 2
    assert sample(bucket, vendor="hackle", le="5.0") == 3
    assert sample(bucket, vendor="hackle", le="+Inf") == 3
    assert sample("eventtrack_delivery_latency_seconds_gcount", vendor="hackle") == 3
    assert sample("eventtrack_delivery_latency_seconds_gsum", vendor="hackle") == pytest.approx(3.4)
    assert sample("eventtrack_vendor_paused", vendor="browsee") == 1  # this process's breaker
    assert sample("eventtrack_vendor_paused", vendor="primedata") == 1  # another process's 429
    assert sample("eventtrack_vendor_paused", vendor="hackle") == 0


@pytest.mark.django_db
def test_a_scrape_costs_the_same_queries_whatever_the_outbox_holds(
    client: Client, token: str
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            scrape(client, authorization=f"Bearer {token}")
        return len(captured)

    few = queries()
    for index in range(20):
        finished(("hackle", "browsee")[index % 2], (Status.DELIVERED, Status.FAILED)[index % 3 % 2])
    # The backlog (deliveries, events not yet routed), the last hour and the pauses.
    assert queries() == few == 4


@pytest.mark.django_db
def test_only_the_token_or_staff_may_scrape(
    client: Client, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert client.get(URL).status_code == 403
    for wrong in (f"Bearer {token}x", token, f"Basic {token}", "Bearer ", f"bearer  {token}"):
        assert client.get(URL, headers={"authorization": wrong}).status_code == 403, wrong
    shopper = User.objects.create_user("shopper")
    client.force_login(shopper)
    assert client.get(URL).status_code == 403
    client.force_login(User.objects.create_user("operator", is_staff=True))
    assert client.get(URL).status_code == 200
    assert client.post(URL, headers={"authorization": f"Bearer {token}"}).status_code == 405
    assert token not in caplog.text


@pytest.mark.django_db
def test_without_a_token_setting_no_bearer_opens_it(client: Client) -> None:
    assert conf.get_config().metrics_token == ""
    assert client.get(URL, headers={"authorization": "Bearer "}).status_code == 403


def test_the_token_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTTRACK_METRICS_TOKEN", TOKEN)
    conf.reload()
    assert conf.get_config().metrics_token == TOKEN
    assert TOKEN not in repr(conf.get_config())
    monkeypatch.setenv("EVENTTRACK_METRICS_TOKEN", "two words")
    conf.reload()
    with pytest.raises(ConfigurationError, match=r"METRICS_TOKEN.*contains whitespace"):
        conf.get_config()


@pytest.mark.django_db
def test_without_prometheus_client_the_view_says_what_to_install(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    response = client.get(URL, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 501
    assert response.content.decode() == (
        "prometheus_client is not installed: pip install prometheus-client "
        "(the [metrics] extra of django-eventtrack)"
    )
    assert client.get(URL).status_code == 403  # still not public


@pytest.mark.django_db
def test_the_refusal_is_plain_text_naming_the_header(client: Client, token: str) -> None:
    """Served as HTML, ``<METRICS_TOKEN>`` was read as a tag: the page said "Bearer ."."""
    response = client.get(URL)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Forbidden: send Authorization: Bearer <METRICS_TOKEN>."


@pytest.mark.django_db
def test_the_metrics_and_the_admin_give_no_visitor_cookie(
    client: Client, settings: Settings, token: str
) -> None:
    """Staff and scrapers are not visitors: only the pages of the site set the cookie."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django_eventtrack.middleware.EventTrackMiddleware",
    ]
    scraped = client.get(URL, headers={"authorization": f"Bearer {token}"})
    assert scraped.status_code == 200
    refused = client.get(URL)
    client.force_login(User.objects.create_user("operator", is_staff=True, is_superuser=True))
    admin_pages = [client.get("/admin/"), client.get("/admin/django_eventtrack/delivery/")]
    for response in (scraped, refused, *admin_pages):
        assert response.status_code in (200, 403)
        assert "eventtrack_aid" not in response.cookies, response.request["PATH_INFO"]
    visitor_page = client.get("/identity/whoami/")
    assert visitor_page.cookies["eventtrack_aid"].value
