"""The operator's view only reads: nothing under ``monitoring/`` writes to the database.

Status, the health check, the dashboard's page and the Prometheus metrics run here over
an outbox holding every kind of row (events no sender has routed yet, claimed, due, failed,
skipped and delivered deliveries, pauses over and current, a vendor gone from the registry)
with every INSERT, UPDATE and DELETE refused and recorded. What changes rows lives in
``outbox/`` (retention's purge, the admin's retry and skip: ``outbox.manual``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.models import Delivery, Incident, VendorPause
from django_eventtrack.monitoring import dashboard, incidents, metrics, status
from django_eventtrack.sandbox import Sandbox
from tests.test_admin import _admin_settings  # noqa: F401 (an autouse fixture: sessions, auth)
from tests.test_status import delivery, stored_event

Status = Delivery.Status
#: Statements that change rows (or tables), whatever the database.
WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|MERGE|TRUNCATE|CREATE|ALTER|DROP)\b", re.I)
TOKEN = "scrape-token-0123456789"


@contextmanager
def refusing_writes() -> Iterator[list[str]]:
    """Every statement that would change a row is refused (a DatabaseError) and listed."""
    refused: list[str] = []

    def refuse(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        if WRITE.match(sql):
            refused.append(sql)
            raise DatabaseError(f"the operator's view wrote: {sql}")
        return execute(sql, *args)

    with connection.execute_wrapper(refuse):
        yield refused


@pytest.fixture
def full_outbox(settings: Settings, vendors: Sandbox) -> datetime:
    """One row of every kind the readers meet; returns now."""
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker", "METRICS_TOKEN": TOKEN}
    now = timezone.now()
    track("order.placed", {"order": "O1"}, session="S1")  # routed by no sender yet
    minute = timedelta(minutes=1)
    rows: list[tuple[str, str, timedelta, dict[str, Any]]] = [
        ("hackle", Status.PENDING, 30 * minute, {}),
        ("hackle", Status.PENDING, 20 * minute, {"next_attempt_at": now + 5 * minute}),
        ("hackle", Status.PENDING, 2 * minute, {"claimed_until": now + minute}),
        ("hackle", Status.FAILED, 50 * minute, {"last_error": "HTTP 400: bad"}),
        ("hackle", Status.SKIPPED, 40 * minute, {"last_error": "no identity"}),
        ("browsee", Status.DELIVERED, 10 * minute, {"delivered_at": now - 9 * minute}),
        ("browsee", Status.DELIVERED, 3 * 24 * 60 * minute, {"delivered_at": now}),
        ("browsee", Status.FAILED, 2 * 24 * 60 * minute, {"attempts": 3}),
        ("segment", Status.FAILED, 60 * minute, {}),  # a vendor no longer in the registry
    ]
    for vendor, state, age, extra in rows:
        delivery(stored_event(age, now=now), vendor, state, age=age, now=now, **extra)
    VendorPause.objects.create(vendor="hackle", paused_until=now + 10 * minute, reason="429")
    VendorPause.objects.create(vendor="browsee", paused_until=now - minute, reason="over")
    Incident.objects.create(vendor="hackle", reason="HTTP 401", http_status=401, count=2)
    Incident.objects.create(vendor="browsee", reason="read timeout", resolved_at=now - minute)
    Incident.objects.create(vendor="segment", reason="HTTP 503", http_status=503)  # gone
    return now


def every_reader(now: datetime) -> None:
    """What monitoring offers, with the arguments its callers pass."""
    windows = {name: window.length for name, window in dashboard.WINDOWS.items()}
    status.summary(now)
    status.finished(windows, now)
    status.overview(windows, now)
    status.health(failed_within=timedelta(hours=1), max_pending_age=timedelta(minutes=1), now=now)
    for name in (*dashboard.WINDOWS, "no such window", None):
        page = dashboard.context(name, deliveries_url="/d/", retry_url="/r/", now=now)
        assert page["vendors"]
    dashboard.failure_reasons(now - timedelta(days=7), vendor="hackle")
    assert len(incidents.recent(now - timedelta(days=7), now)) == 3
    assert list(metrics.OutboxCollector().collect())
    request = RequestFactory().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.metrics_view(request).status_code == 200


@pytest.mark.django_db
def test_nothing_under_monitoring_writes_to_the_database(full_outbox: datetime) -> None:
    rows_before = list(Delivery.objects.values().order_by("pk"))
    with refusing_writes() as refused:
        every_reader(full_outbox)
    assert refused == []
    assert list(Delivery.objects.values().order_by("pk")) == rows_before


@pytest.mark.django_db
@pytest.mark.usefixtures("full_outbox")
def test_the_status_command_and_the_dashboard_page_write_nothing(admin_client: Client) -> None:
    with refusing_writes() as refused:
        call_command("eventtrack_status", stdout=StringIO())
        call_command("eventtrack_status", "--json", stdout=StringIO())
        with pytest.raises(SystemExit):  # unhealthy: a delivery failed within the hour
            call_command("eventtrack_status", "--check", stdout=StringIO(), stderr=StringIO())
        for window in dashboard.WINDOWS:
            page = admin_client.get(reverse("admin:eventtrack_dashboard"), {"window": window})
            assert page.status_code == 200
    assert refused == []


def test_writes_are_told_from_reads() -> None:
    assert WRITE.match('UPDATE "eventtrack_delivery" SET "status" = %s')
    assert WRITE.match('\n  delete from "eventtrack_event"')
    assert not WRITE.match('SELECT "eventtrack_delivery"."updated_at" FROM "eventtrack_delivery"')
    assert not WRITE.match("SAVEPOINT s1")


@pytest.mark.django_db
@pytest.mark.usefixtures("full_outbox")
def test_a_write_under_the_refusal_is_refused_and_listed() -> None:
    with refusing_writes() as refused, pytest.raises(DatabaseError), transaction.atomic():
        Delivery.objects.filter(status=Status.FAILED).update(status=Status.PENDING)
    assert len(refused) == 1
    assert refused[0].startswith('UPDATE "eventtrack_delivery"')
    assert not Delivery.objects.filter(status=Status.PENDING, last_error="HTTP 400: bad").exists()
