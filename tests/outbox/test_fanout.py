"""``outbox.fanout``: a sender writes each routed event's deliveries, once."""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_eventtrack import track
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import fanout
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS


@pytest.mark.django_db
def test_two_senders_routing_the_same_events_write_each_delivery_once(
    worker_mode: Sandbox,
) -> None:
    events = [track("order.placed", {"n": n}, session=f"S{n}") for n in range(3)]
    first, second = fanout.pending(), fanout.pending()  # both read before either writes
    assert len(first.deliveries) == len(second.deliveries) == 3 * len(VENDORS)
    assert first.write() == 3
    assert second.write() == 0  # ignored: the first sender's rows stand
    assert Delivery.objects.count() == 3 * len(VENDORS)
    assert not fanout.unrouted().exists()
    stored = {event.id: Event.objects.get(pk=event.id).created_at for event in events if event}
    for delivery in Delivery.objects.all():  # due, and aged, from when track() stored it
        assert delivery.created_at == delivery.next_attempt_at == stored[delivery.event_id]


@pytest.mark.django_db
def test_routes_that_are_not_a_mapping_are_logged_not_sent(
    worker_mode: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    event = Event.objects.create(name="a.b", timestamp=timezone.now(), routes=["hackle"])
    assert fanout.write_now([event.pk]) == 1
    assert not Delivery.objects.exists()
    assert f"event={event.pk}: its routes are 'list', not a mapping" in caplog.text
