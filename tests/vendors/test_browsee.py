"""Browsee: who the visitor is in the request its adapter builds (docs/vendors/browsee.md),
and what the sandbox refuses as Browsee."""

from __future__ import annotations

import pytest

from django_eventtrack.core.event import Identity
from tests.sandbox.helpers import BROWSEE_KEY, browsee_event
from tests.vendors.helpers import body_for


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
