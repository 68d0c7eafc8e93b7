"""``outbox.manual``: what an operator does by hand (the admin's retry and skip; the admin's
own tests cover the pages and messages around them)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import manual
from django_eventtrack.sandbox import Sandbox

Status = Delivery.Status


def stored(**fields: object) -> Event:
    return Event.objects.create(name="order.placed", timestamp=timezone.now(), **fields)


@pytest.mark.django_db
def test_a_retry_names_the_events_it_made_due_and_sends_nothing_itself(
    vendors: Sandbox,
) -> None:
    """Waking the backend is the caller's, on commit (as for ``track()``): the events of
    deliveries left alone are not among those it is told of."""
    due, busy, scrubbed = stored(), stored(), stored(scrubbed_at=timezone.now())
    rows = [
        Delivery.objects.create(event=due, vendor="hackle", status=Status.FAILED),
        Delivery.objects.create(
            event=busy,
            vendor="hackle",
            claim_token=uuid.uuid4(),
            claimed_until=timezone.now() + timedelta(minutes=1),
        ),
        Delivery.objects.create(event=scrubbed, vendor="hackle", status=Status.FAILED),
    ]
    retried = manual.retry_deliveries(Delivery.objects.filter(pk__in=[r.pk for r in rows]))
    assert (retried.due, retried.busy, retried.scrubbed) == (1, 1, 1)
    assert retried.event_ids == (due.pk,)
    assert vendors.requests() == []  # DELIVERY is "sync", but nobody told the backend


@pytest.mark.django_db
def test_failed_since_is_one_vendors_failures_from_that_time() -> None:
    since = timezone.now() - timedelta(hours=1)
    wanted = Delivery.objects.create(event=stored(), vendor="hackle", status=Status.FAILED)
    for vendor, state, age in [
        ("hackle", Status.FAILED, timedelta(hours=2)),  # failed before
        ("hackle", Status.SKIPPED, timedelta(0)),
        ("browsee", Status.FAILED, timedelta(0)),
    ]:
        row = Delivery.objects.create(event=stored(), vendor=vendor, status=state)
        Delivery.objects.filter(pk=row.pk).update(updated_at=timezone.now() - age)
    assert list(manual.failed_since("hackle", since)) == [wanted]


@pytest.mark.django_db
def test_mark_skipped_records_the_reason_given_and_leaves_delivered_rows() -> None:
    event = stored()
    pending = Delivery.objects.create(event=event, vendor="hackle")
    Delivery.objects.create(event=event, vendor="browsee", status=Status.DELIVERED)
    done = manual.mark_skipped(Delivery.objects.all(), "skipped by ops: vendor retired")
    assert (done.skipped, done.delivered) == (1, 1)
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == (
        Status.SKIPPED,
        "skipped by ops: vendor retired",
    )
    assert Delivery.objects.get(vendor="browsee").last_error == ""
