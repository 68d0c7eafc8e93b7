"""The fault suite: each vendor in turn against the sandbox misbehaving in every way
the vendors' documentation (docs/vendors/) and the network allow, then the database
refusing writes during ``track()``.

Every event ends delivered exactly once, or ``failed`` with a clear reason once
retries are exhausted. The only copies a vendor receives twice are requests it
processed while the answer never arrived whole (a response slower than the read
timeout, a connection cut mid-response): at-least-once delivery, and the suite
counts those duplicates exactly. Timeouts and backoff are tiny so this runs in seconds.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.delivery import flow, worker
from django_eventtrack.errors import StorageError
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from tests.delivery.test_worker import drain_until_settled
from tests.processes.helpers import VENDORS, received, wait_until

Status = Delivery.Status
READ_TIMEOUT = 0.3
EVENTS = 3


@dataclass(frozen=True)
class FaultKind:
    """One way a vendor can misbehave, as sandbox rules, and what it costs."""

    name: str
    rules: tuple[dict[str, Any], ...]
    #: Requests the vendor processed although the client never got the answer.
    processed_unanswered: int = 0


FAULT_KINDS = [
    FaultKind(
        "5xx burst",
        ({"status": 503, "count": 2}, {"status": 500}, {"status": 502}, {"status": 504}),
    ),
    FaultKind("429 without Retry-After", ({"status": 429, "count": 2},)),
    FaultKind("429 with Retry-After", ({"status": 429, "retry_after": "1"},)),
    FaultKind("dropped connection", ({"drop": True, "count": 2},)),
    FaultKind("read timeout", ({"delay": READ_TIMEOUT + 0.2, "drop": True},)),
    FaultKind("slow, just under the timeout", ({"delay": READ_TIMEOUT - 0.1},)),
    FaultKind(
        "slow, just over the timeout", ({"delay": READ_TIMEOUT + 0.1},), processed_unanswered=1
    ),
    FaultKind("dropped mid-response", ({"truncate": True},), processed_unanswered=1),
]


def injected(kind: FaultKind) -> int:
    return sum(rule.get("count", 1) for rule in kind.rules)


@pytest.fixture(autouse=True)
def _closed_breaker() -> Iterator[None]:
    flow.breaker.reset()
    yield
    flow.breaker.reset()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def one_vendor(settings: Settings, sandbox: Sandbox) -> Callable[..., None]:
    """Configure only ``vendor``, against the sandbox (or ``url``), with tiny timeouts."""

    def configure(
        vendor: str, url: str | None = None, max_attempts: int = 20, **options: Any
    ) -> None:
        vendor_settings = sandbox.vendor_settings()[vendor] | {
            "TIMEOUT": READ_TIMEOUT,
            "CONNECT_TIMEOUT": 0.2,
            "MAX_ATTEMPTS": max_attempts,
        }
        if url:
            vendor_settings["API_URL"] = url
        settings.EVENTTRACK = {
            "VENDORS": {vendor: vendor_settings},
            "DELIVERY": "worker",
            "RETRY_BACKOFF_BASE": 0.01,
            "RETRY_BACKOFF_MAX": 0.05,
            "CIRCUIT_BREAKER_PAUSE": 0.05,
            **options,
        }

    return configure


def track_events(count: int = EVENTS) -> None:
    with transaction.atomic():
        for n in range(count):
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")


def assert_each_delivered(sandbox: Sandbox, vendor: str, duplicates: int = 0) -> None:
    """All rows delivered; the vendor accepted every event once, plus ``duplicates`` copies."""
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    counts = received(sandbox, vendor)
    assert set(counts) == set(range(EVENTS))
    assert sum(counts.values()) - EVENTS == duplicates, counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("kind", FAULT_KINDS, ids=lambda kind: kind.name)
def test_every_event_is_delivered_exactly_once_through_the_fault(
    one_vendor: Callable[..., None], sandbox: Sandbox, vendor: str, kind: FaultKind
) -> None:
    one_vendor(vendor)
    for rule in kind.rules:
        sandbox.inject(vendor, **rule)
    track_events()
    started = timezone.now()
    drain_until_settled(worker.Worker(), timeout=10)
    # PrimeData sends the three events in one request: a duplicated request repeats all three.
    per_request = min(EVENTS, get_config().adapters[vendor].max_batch_size)
    # A slow request is recorded when the sandbox answers, possibly after its retry was.
    wait_until(
        lambda: len([r for r in sandbox.requests(vendor) if r.faulted]) >= injected(kind),
        what="the faulted requests to be recorded",
    )
    assert_each_delivered(sandbox, vendor, kind.processed_unanswered * per_request)
    faulted = [record for record in sandbox.requests(vendor) if record.faulted]
    assert len(faulted) == injected(kind)
    if kind.name == "429 with Retry-After":
        retried = max(record.received_at for record in sandbox.requests(vendor))
        assert retried - started.timestamp() >= 1.0  # the vendor's wait was honoured
    print(f"FAULT {vendor} {kind.name}: injected {injected(kind)}, events {EVENTS}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vendor", VENDORS)
def test_connection_refused_then_the_vendor_comes_back(
    one_vendor: Callable[..., None], sandbox: Sandbox, vendor: str
) -> None:
    one_vendor(
        vendor,
        url=f"http://127.0.0.1:{closed_port()}/{vendor}",
        max_attempts=1000,  # refusals are instant: a drain may retry many times
        CIRCUIT_BREAKER_THRESHOLD=10_000,
    )
    track_events()
    for _ in range(2):
        stats = worker.Worker().run_once()
        assert stats.retried == stats.sent > 0
        Delivery.objects.update(next_attempt_at=timezone.now())
    assert "connection error" in Delivery.objects.first().last_error  # type: ignore[union-attr]
    assert sandbox.requests() == []

    one_vendor(vendor)
    drain_until_settled(worker.Worker())
    assert_each_delivered(sandbox, vendor)
    # At least two refused attempts each, then the one that reached the vendor.
    assert min(Delivery.objects.values_list("attempts", flat=True)) >= 3


EXHAUSTING = {
    "503": ({"status": 503, "count": 10}, "HTTP 503"),
    "429": ({"status": 429, "count": 10, "retry_after": "0"}, "HTTP 429"),
    "dropped connection": ({"drop": True, "count": 10}, "connection error"),
    "read timeout": ({"delay": READ_TIMEOUT + 0.1, "drop": True, "count": 10}, "read timeout"),
    "dropped mid-response": ({"truncate": True, "status": 503, "count": 10}, "request error"),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("rule", "reason"), EXHAUSTING.values(), ids=EXHAUSTING.keys())
def test_exhausted_retries_fail_with_a_clear_reason(
    settings: Settings, sandbox: Sandbox, rule: dict[str, Any], reason: str
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {
            name: values | {"TIMEOUT": READ_TIMEOUT, "MAX_ATTEMPTS": 3}
            for name, values in sandbox.vendor_settings().items()
        },
        "DELIVERY": "worker",
        "RETRY_BACKOFF_BASE": 0.01,
        "RETRY_BACKOFF_MAX": 0.02,
        "CIRCUIT_BREAKER_THRESHOLD": 100,
    }
    for vendor in VENDORS:
        sandbox.inject(vendor, **rule)
    track("order.placed", {"n": 0, "order": "O0"}, session="S0")
    drain_until_settled(worker.Worker(), timeout=10)

    for delivery in Delivery.objects.all():
        assert delivery.status == Status.FAILED
        assert delivery.attempts == 3
        assert delivery.last_error.startswith("gave up after 3 attempts; last: ")
        assert reason in delivery.last_error, delivery.last_error
    # Three requests each reached the vendor (a slow one is recorded when it is answered).
    assert len(sandbox.wait_for(3 * len(VENDORS))) == 3 * len(VENDORS)


@pytest.mark.django_db(transaction=True)
def test_a_connection_refused_to_the_end_fails_with_a_clear_reason(
    one_vendor: Callable[..., None],
) -> None:
    one_vendor("hackle", url=f"http://127.0.0.1:{closed_port()}/hackle", max_attempts=2)
    track_events(1)
    drain_until_settled(worker.Worker())
    (delivery,) = Delivery.objects.all()
    assert delivery.status == Status.FAILED
    assert delivery.last_error.startswith("gave up after ")
    assert "connection error" in delivery.last_error


# -- the database refuses the write during track() -----------------------------------------


def tracking_view(request: HttpRequest) -> JsonResponse:
    """A production view: tracks, then answers whatever track() returned."""
    event = track("product.viewed", {"product": "SKU1", "blob": "x" * 20_000}, profile="P1")
    return JsonResponse({"tracked": event is not None})


urlpatterns = [path("track/", tracking_view)]


@pytest.fixture(params=["read-only", "disk full"])
def broken_database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """The test database made read-only (``query_only``) or full (``max_page_count``)."""
    settings.EVENTTRACK = {"VENDORS": {}, "DELIVERY": "worker"}
    with connection.cursor() as cursor:
        if request.param == "read-only":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("PRAGMA page_count")
            (pages,) = cursor.fetchone()
            cursor.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield request.param
    finally:
        # The raw connection: the test's transaction may be marked broken by now.
        connection.connection.execute("PRAGMA query_only = OFF")
        connection.connection.execute("PRAGMA max_page_count = 1073741823")


MESSAGES = {"read-only": "readonly database", "disk full": "database or disk is full"}


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_by_default_track_raises_a_clear_storage_error(broken_database: str) -> None:
    with pytest.raises(StorageError) as refused:
        track("product.viewed", {"blob": "x" * 20_000}, profile="P1")
    message = str(refused.value)
    assert message.startswith("event 'product.viewed' (")
    assert "could not be stored in the outbox, so it was not tracked: OperationalError: " in message
    assert MESSAGES[broken_database] in message


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_production_request_gets_a_plain_500_not_a_traceback(
    broken_database: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/track/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Traceback" not in body
    assert "OperationalError" not in body
    assert "StorageError" not in body
    (logged,) = [r for r in caplog.records if r.name == "django.request"]
    assert logged.exc_info is not None
    assert logged.exc_info[0] is StorageError


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_with_raise_off_the_request_succeeds_and_the_error_is_logged(
    broken_database: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.EVENTTRACK = {"VENDORS": {}, "DELIVERY": "worker", "RAISE_ON_STORAGE_ERROR": False}
    caplog.set_level(logging.ERROR, logger="django_eventtrack")
    response = Client().get("/track/")
    assert response.status_code == 200
    assert response.json() == {"tracked": False}
    (logged,) = [r for r in caplog.records if r.name == "django_eventtrack"]
    assert "track('product.viewed') not stored: event 'product.viewed'" in logged.getMessage()
    assert MESSAGES[broken_database] in logged.getMessage()


@pytest.mark.django_db
def test_with_raise_off_a_refused_write_leaves_the_callers_transaction_usable(
    settings: Settings,
) -> None:
    """The write gets a savepoint of its own. (A full SQLite disk rolls the whole
    transaction back by itself; a read-only database does not.)"""
    settings.EVENTTRACK = {"VENDORS": {}, "DELIVERY": "worker", "RAISE_ON_STORAGE_ERROR": False}
    with transaction.atomic():
        connection.connection.execute("PRAGMA query_only = ON")
        try:
            assert track("product.viewed", profile="P1") is None
            assert Event.objects.count() == 0  # no TransactionManagementError
        finally:
            connection.connection.execute("PRAGMA query_only = OFF")
        track("product.viewed", profile="P1")
    assert Event.objects.count() == 1
