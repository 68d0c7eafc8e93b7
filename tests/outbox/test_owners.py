"""``outbox.owners``: identity is per person, not per browser.

Two people sign in one after the other on one browser, which keeps its ids across the
sign-out (Hellotext.js's ``hello_session`` for years, our anonymous id, the vendors'
SDK ids). Whatever order the vendors get their events in, the second person's events
never carry an id of the first person's browser, and each vendor tells them apart:
PrimeData never sees them on one ``sessionId``, and every Hellotext event after a
sign-in names that person's own profile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_eventtrack import identify, track
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import BrowserOwner, Delivery, VendorProfile
from django_eventtrack.outbox import fanout, owners
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS, strings

Status = Delivery.Status
pytestmark = pytest.mark.django_db(transaction=True)

#: What the browser keeps across the sign-out.
BROWSER = {
    "session": "hello-session-of-the-browser",
    "anonymous_id": "a" * 32,
    "device_id": "hackle-device",
    "browsee_anonymous_id": "browsee-visitor",
    "primedata_session_id": "primedata-session",
    "acme_visitor_id": "acme-visitor",
}
ADA, BOB = "ADA1", "BOB2"  # user ids found in no other part of a request


def shop(user_id: str) -> list[uuid.UUID]:
    """``user_id`` signs in on the shared browser, adds to the cart and orders."""
    browser = Identity.from_ids(BROWSER)
    cart = {"cart": {"reference": f"C-{user_id}", "items": [{"product": "TEE-1", "quantity": 1}]}}
    order = {"order": {"reference": f"O-{user_id}", "total": {"amount": 9, "currency": "USD"}}}
    events = [
        identify(user_id=user_id, traits={"email": f"{user_id}@example.com"}, identity=browser),
        track("cart.added", cart, identity=browser, user_id=user_id),
        track("order.placed", order, identity=browser, user_id=user_id),
    ]
    return [event.id for event in events if event is not None]


def settle(timeout: float = 10.0) -> None:
    """Drain, making every retry due at once, until nothing is pending."""
    deadline = time.monotonic() + timeout
    while Delivery.objects.filter(status=Status.PENDING).exists() or fanout.unrouted().exists():
        assert time.monotonic() < deadline, list(Delivery.objects.filter(status=Status.PENDING))
        Delivery.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now())
        drain()


def one_after_the_other(configure: Callable[..., Sandbox]) -> Sandbox:
    sandbox = configure()  # sync: Ada's journey is delivered before Bob signs in
    shop(ADA)
    shop(BOB)
    return sandbox


def all_at_once(configure: Callable[..., Sandbox]) -> Sandbox:
    sandbox = configure(DELIVERY="worker")
    shop(ADA)
    shop(BOB)
    settle()
    return sandbox


def bobs_first(configure: Callable[..., Sandbox]) -> Sandbox:
    """Ada signs in first, but her deliveries go out after Bob's."""
    sandbox = configure(DELIVERY="worker")
    adas = shop(ADA)
    fanout.write_now(adas)
    later = timezone.now() + timedelta(hours=1)
    Delivery.objects.filter(event_id__in=adas).update(next_attempt_at=later)
    shop(BOB)
    drain()
    assert Delivery.objects.filter(status=Status.PENDING).count() == len(adas) * len(VENDORS)
    settle()
    return sandbox


def through_an_outage(configure: Callable[..., Sandbox]) -> Sandbox:
    """Every vendor fails for a while: both identifies are delayed, the events wait."""
    sandbox = configure(DELIVERY="worker", CIRCUIT_BREAKER_THRESHOLD=1000)
    for vendor in VENDORS:
        sandbox.inject(vendor, status=503, count=4)
    shop(ADA)
    shop(BOB)
    settle()
    return sandbox


@pytest.mark.parametrize("order", [one_after_the_other, all_at_once, bobs_first, through_an_outage])
def test_two_people_on_one_browser_never_share_an_id_at_any_vendor(
    configure: Callable[..., Sandbox], order: Callable[..., Sandbox]
) -> None:
    sandbox = order(configure)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    # Ada used the browser first: its ids are hers.
    assert dict(BrowserOwner.objects.values_list("value", "user_id")) == dict.fromkeys(
        BROWSER.values(), ADA
    )
    shared = set(BROWSER.values())
    sessions: dict[str, set[str]] = {ADA: set(), BOB: set()}
    for vendor in VENDORS:
        for path, body in sent(sandbox, vendor):
            # A batch (PrimeData's, Acme's) may carry both people's events: each on its own.
            for item in body.get("events", [body]):
                whose = {user for user in (ADA, BOB) if user in json.dumps(item)}
                if not whose:  # Hellotext's PATCH /v1/sessions/{session}: {"profile": ...}
                    assert path.endswith(f"/v1/sessions/{BROWSER['session']}")
                    assert item == {"profile": profile_of(ADA)}
                    continue
                (user,) = whose
                if user == BOB:
                    assert not strings(item) & shared, (vendor, item)
                if vendor == "primedata":
                    sessions[user].add(item["sessionId"])
                if vendor == "hellotext" and path.endswith("/v1/attribution/events"):
                    assert item["profile"] == profile_of(user), item  # each after sign-in
            if vendor == "primedata" and "sessionId" in body:  # one request, one session
                assert {event["sessionId"] for event in body["events"]} == {body["sessionId"]}
    assert sessions[ADA]
    assert sessions[BOB]
    assert not sessions[ADA] & sessions[BOB]
    assert sandbox.state("hellotext").sessions == {BROWSER["session"]: profile_of(ADA)}


def sent(sandbox: Sandbox, vendor: str) -> list[tuple[str, dict[str, Any]]]:
    """The path and body of every request the vendor accepted."""
    return [
        (r.path, r.body)
        for r in sandbox.requests(vendor)
        if r.accepted and isinstance(r.body, dict)
    ]


def profile_of(user_id: str) -> str:
    return VendorProfile.objects.get(vendor="hellotext", user_id=user_id).profile_id


def test_learn_keeps_the_first_user_of_each_browser_id(configure: Callable[..., Sandbox]) -> None:
    configure()
    assert owners.learn([{"user_id": "1", "session": "S"}, {"user_id": "2", "session": "S"}]) == 1
    assert owners.learn([{"user_id": "2", "session": "S", "anonymous_id": "A"}]) == 1
    assert owners.learn([{"session": "T"}, {"user_id": "3", "profile": "P"}]) == 0
    assert sorted(BrowserOwner.objects.values_list("key", "value", "user_id")) == [
        ("anonymous_id", "A", "2"),
        ("session", "S", "1"),
    ]


def test_another_users_browser_ids_are_derived_or_left_out_as_the_registry_says(
    configure: Callable[..., Sandbox],
) -> None:
    configure()
    owners.learn([{"user_id": "1", **BROWSER}])
    bobs = TrackedEvent.create(
        "order.placed", identity=Identity.from_ids({"user_id": "2", **BROWSER})
    )
    adas = TrackedEvent.create(
        "order.placed", identity=Identity.from_ids({"user_id": "1", **BROWSER})
    )
    nobody = TrackedEvent.create("order.placed", identity=Identity.from_ids(BROWSER))
    theirs, hers, anyone = owners.as_their_own([bobs, adas, nobody])
    assert (hers, anyone) == (adas, nobody)  # her own ids; a visitor we cannot name
    assert theirs.identity.as_dict() == {
        "user_id": "2",
        # ids the vendor hands out (Hellotext's session, Hackle's device): left out
        # ids any token may fill: Bob's own, the same every time
        "anonymous_id": owners.per_person("anonymous_id", BROWSER["anonymous_id"], "2"),
        "browsee_anonymous_id": owners.per_person(
            "browsee_anonymous_id", BROWSER["browsee_anonymous_id"], "2"
        ),
        "primedata_session_id": owners.per_person(
            "primedata_session_id", BROWSER["primedata_session_id"], "2"
        ),
    }
    assert owners.replaced(bobs, theirs) == [
        "anonymous_id replaced by this user's own: the browser's belongs to another",
        "session left out: it belongs to another user of this browser",
        "device_id left out: it belongs to another user of this browser",
        "browsee_anonymous_id replaced by this user's own: the browser's belongs to another",
        "primedata_session_id replaced by this user's own: the browser's belongs to another",
        "acme_visitor_id left out: it belongs to another user of this browser",
    ]
