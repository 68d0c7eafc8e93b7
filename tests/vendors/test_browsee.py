"""Browsee: who the visitor is in the request its adapter builds (docs/vendors/browsee.md),
and what the sandbox refuses as Browsee."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_eventtrack import identify, track
from django_eventtrack.core.event import IDENTIFY, Identity, TrackedEvent
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import Delivery, Event
from tests.sandbox.helpers import BROWSEE_KEY, browsee_event
from tests.vendors.helpers import Status, body_for, delivery


@pytest.mark.parametrize(
    ("identity", "visitor"),
    [
        (Identity(user_id="42"), {"userId": "42"}),
        (Identity(anonymous_id="a", browsee_anonymous_id="b"), {"anonymousId": "b"}),
        (Identity(anonymous_id="a", profile="p"), {"anonymousId": "a"}),
        (Identity(session="s"), {"anonymousId": "s"}),
    ],
)
def test_browsee_visitor(make_adapter, make_event, identity, visitor):
    body = body_for(make_adapter("browsee"), make_event(identity=identity))
    assert {key: body[key] for key in ("userId", "anonymousId") if key in body} == visitor


# --- the sandbox: Browsee's rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"apiKey": BROWSEE_KEY, "userId": "u"}, "event"),
        (browsee_event(event=""), "event"),
        (browsee_event(event=1), "event"),
        (browsee_event(properties=[1]), "properties"),
        ({"apiKey": BROWSEE_KEY, "event": "E"}, "userId or anonymousId"),
        (browsee_event(userId=42), "userId"),
        (browsee_event(anonymousId=""), "anonymousId"),
        (browsee_event(timestamp="2021-12-02T00:30:08"), "timestamp"),
        (browsee_event(timestamp=1638405008), "timestamp"),
        (browsee_event(traits={"a": 1}), "traits is not a documented field"),
    ],
)
def test_browsee_rejects_with_400_failure(send, body, field):
    response = send("browsee", body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "failure"
    assert field in answer["message"]


@pytest.mark.parametrize(
    ("traits", "tags"),
    [
        ({"traits": {"$tags": ["vip"]}}, None),
        ({"traits": {"$tags": "vip"}}, "traits.$tags"),
        ({"traits": {"$tags": ["vip", 1]}}, "traits.$tags"),
        ({"traits": {"$tags": [""]}}, "traits.$tags"),
    ],
)
def test_browsee_identify_takes_tags_as_a_list_of_labels(sandbox, client, traits, tags):
    url = sandbox.api_url("browsee") + "/api/v1/identify"
    body = {"apiKey": BROWSEE_KEY, "userId": "42", **traits}
    response = client.post(url, json=body, timeout=2)
    if tags is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert tags in response.json()["message"]


@pytest.mark.parametrize(
    ("given", "sent", "notes"),
    [
        (["vip", "beta"], ["vip", "beta"], ()),
        ("vip", ["vip"], ("traits.$tags: one label, sent as a list of one",)),
        (
            ["vip", 2, None, {"a": 1}, ""],
            ["vip", "2"],
            ("traits.$tags: left out what is not a label (a non-empty string)",),
        ),
    ],
)
def test_browsee_tags_are_sent_as_a_list(make_adapter, given, sent, notes):
    event = TrackedEvent.create(
        "identify", {"$tags": given}, identity=Identity(user_id="42"), kind=IDENTIFY
    )
    request = make_adapter("browsee").build_request([event])
    assert request.body["traits"]["$tags"] == sent
    assert request.notes.get(str(event.id), ()) == notes


def test_browsee_identify_with_a_tag_given_as_text_is_not_refused(configure: Any, user: Any):
    sandbox = configure()
    identify(user, {"$tags": "vip"}, vendors=["browsee"])
    (request,) = sandbox.requests("browsee")
    assert request.accepted
    assert request.body["traits"]["$tags"] == ["vip"]
    assert Delivery.objects.get(vendor="browsee").status == Status.DELIVERED


# -- how late an event may reach Browsee ----------------------------------------------------------


def test_an_event_that_happened_hours_ago_is_not_dumped_on_browsee(configure: Any) -> None:
    """Browsee's API is not for historical data: the cutoff counts from the event's own
    time, so an event tracked now about yesterday is skipped at once, with the reason."""
    sandbox = configure()
    yesterday = timezone.now() - timedelta(days=1)
    event = track("order.placed", {"order": "A"}, user_id="7", timestamp=yesterday)
    skipped = delivery("browsee", event)
    assert skipped.status == Status.SKIPPED
    assert "it happened 1 day ago" in skipped.last_error
    assert "historical data" in skipped.last_error
    assert sandbox.requests("browsee") == []


def test_an_event_that_became_too_late_while_waiting_is_skipped(configure: Any) -> None:
    sandbox = configure({"browsee": {"MAX_LATENESS": 60}}, DELIVERY="worker")
    event = track("order.placed", {"order": "A"}, user_id="7", vendors=["browsee"])
    assert event is not None
    # Stored a moment ago about five minutes ago: routed then, too late by its turn.
    Event.objects.filter(pk=event.id).update(timestamp=timezone.now() - timedelta(minutes=5))
    drain(["browsee"])
    skipped = delivery("browsee", event)
    assert (skipped.status, skipped.attempts) == (Status.SKIPPED, 0)
    assert "it happened 5 minutes ago" in skipped.last_error
    assert sandbox.requests("browsee") == []
