"""``delivery.as_sent``: what a vendor gets of each claimed event, and why not now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.delivery import as_sent
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import fanout, owners

BROWSER = {"session": "shared", "anonymous_id": "a" * 32}
LEFT_OUT = "session left out: it belongs to another user of this browser"


@pytest.mark.django_db(transaction=True)
def test_each_event_is_read_once_for_every_vendor_of_a_claim(configure: Any) -> None:
    """Two vendors, ten events of the browser's second user: the owners looked up once."""
    configure(DELIVERY="worker")
    owners.learn([{"user_id": "first", **BROWSER}])
    tracked = [track("order.placed", {"n": n}, identity=BROWSER, user_id="next") for n in range(10)]
    ids = [event.id for event in tracked if event is not None]
    fanout.write_now(ids)
    normalised: dict[Any, as_sent.Read] = {}
    with CaptureQueriesContext(connection) as queries:
        for vendor in ("hackle", "browsee"):
            rows = list(Delivery.objects.filter(vendor=vendor).select_related("event"))
            events, notes = as_sent.events(get_config().adapter(vendor), rows, normalised)
            assert {event.identity.get("session") for event in events} == {None}
            assert {tuple(lines)[1] for lines in notes.values()} == {LEFT_OUT}
    looked_up = [q for q in queries if "eventtrack_browser_owner" in q["sql"]]
    assert len(looked_up) == 1


@pytest.mark.django_db
def test_an_event_the_vendor_cannot_take_as_sent_says_what_was_changed(configure: Any) -> None:
    configure(DELIVERY="worker")
    owners.learn([{"user_id": "first", "session": "shared"}])
    tracked = track("order.placed", {"order": "O-1"}, session="shared", user_id="next")
    assert tracked is not None
    fanout.write_now([tracked.id])
    row = Delivery.objects.select_related("event").get(vendor="hellotext")
    (event,), notes = as_sent.events(get_config().adapter("hellotext"), [row], {})
    reason = as_sent.why_not(
        get_config().adapter("hellotext"), event, {}, notes[str(event.id)], timezone.now()
    )
    assert reason is not None
    assert reason.startswith("Hellotext needs a profile or session id")
    assert reason.endswith(f"; {LEFT_OUT}")
    late = timezone.now() + timedelta(days=400)  # lateness and dropped names come first
    assert "MAX_LATENESS" in str(
        as_sent.why_not(get_config().adapter("hackle"), event, {}, [], late)
    )
