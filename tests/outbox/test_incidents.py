"""``outbox.incidents``: a vendor's failures for one reason counted in one incident, with
the vendor's latest answer, since its first failure, until it accepts a delivery again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack.delivery import flow, worker
from django_eventtrack.models import Delivery, Incident
from django_eventtrack.outbox import incidents
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import Outcome, OutcomeKind
from tests.processes.helpers import track_many

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    flow.breaker.reset()
    incidents.forget_known_state()
    yield
    flow.breaker.reset()


def only_hackle(settings: Settings, sandbox: Sandbox, **hackle: str) -> None:
    """Hackle alone at the sandbox (with ``hackle`` settings), sent by the worker."""
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": sandbox.vendor_settings()["hackle"] | hackle},
        "DELIVERY": "worker",
        "CIRCUIT_BREAKER_THRESHOLD": 100,
    }


@pytest.fixture
def hackle(settings: Settings, sandbox: Sandbox) -> Sandbox:
    only_hackle(settings, sandbox)
    return sandbox


def round_now(runner: worker.Worker) -> None:
    """One ``--once`` round with every pending delivery due (its backoff over)."""
    Delivery.objects.filter(status=Delivery.Status.PENDING).update(next_attempt_at=timezone.now())
    runner.run_once()


def test_retries_for_one_reason_are_one_incident_until_the_vendor_accepts_again(
    hackle: Sandbox,
) -> None:
    hackle.inject("hackle", status=503, count=3, body={"message": "maintenance until 10:00"})
    track_many(2, vendors=["hackle"])
    runner = worker.Worker(["hackle"])

    round_now(runner)
    (incident,) = Incident.objects.all()
    first_seen = incident.first_seen
    assert (incident.vendor, incident.reason, incident.http_status) == ("hackle", "HTTP 503", 503)
    assert incident.message == 'HTTP 503: {"message":"maintenance until 10:00"}'
    assert (incident.count, incident.retrying, incident.resolved_at) == (2, True, None)

    round_now(runner)  # the third 503, then a 200
    round_now(runner)
    (incident,) = Incident.objects.all()
    assert incident.count == 3
    assert incident.first_seen == first_seen <= incident.last_seen
    assert incident.resolved_at is not None
    assert incident.resolved_at >= incident.last_seen

    # The next outage is a new incident, with its own first failure.
    hackle.inject("hackle", status=503)
    track_many(1, vendors=["hackle"])
    round_now(runner)
    ongoing = Incident.objects.get(resolved_at__isnull=True)
    assert ongoing.first_seen > incident.last_seen
    assert ongoing.count == 1


def test_a_refusal_and_a_dropped_connection_are_incidents_of_their_own(
    sandbox: Sandbox, settings: Settings
) -> None:
    only_hackle(settings, sandbox, API_KEY="wrong-key")
    track_many(1, vendors=["hackle"])
    worker.Worker(["hackle"]).run_once()
    refused = Incident.objects.get()
    assert refused.reason in ("HTTP 401", "HTTP 403")
    assert "wrong-key" not in refused.message

    only_hackle(settings, sandbox)
    sandbox.inject("hackle", drop=True)
    track_many(1, vendors=["hackle"])
    worker.Worker(["hackle"]).run_once()
    dropped = Incident.objects.exclude(pk=refused.pk).get()
    assert dropped.http_status is None
    assert dropped.reason == "connection error", dropped.message


def test_deliveries_cost_no_query_for_incidents_while_none_is_open() -> None:
    delivered = [incidents.Answer("hackle", Outcome(OutcomeKind.DELIVERED, 200), 10)]
    incidents.record(delivered, timezone.now())  # this process does not know yet: it asks
    with CaptureQueriesContext(connection) as captured:
        incidents.record(delivered, timezone.now())
    assert len(captured) == 0

    failed = [incidents.Answer("hackle", Outcome(OutcomeKind.RETRY, 502, "HTTP 502"), 1)]
    incidents.record(failed, timezone.now())
    incidents.record(delivered, timezone.now())
    assert Incident.objects.get().resolved_at is not None


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (Outcome(OutcomeKind.RETRY, 429, "HTTP 429"), "HTTP 429"),
        (Outcome(OutcomeKind.RETRY, None, "read timeout: timed out after 10s"), "read timeout"),
        (Outcome(OutcomeKind.RETRY, None, ""), "error"),
    ],
)
def test_the_reason_is_the_status_or_the_transports_words(outcome: Outcome, reason: str) -> None:
    assert incidents.reason_of(outcome) == reason
