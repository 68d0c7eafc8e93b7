"""``vendor_extra``: one event's extra touches that event only, in a batch of many
visitors' events too (docs/tracking.md, "vendor_extra"; docs/vendors/primedata.md).

End to end through the worker's drain and the sandbox, then the rule on the
batching adapters (PrimeData, and the test suite's fifth vendor, Acme), then what
``track()`` refuses."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from django.db import transaction
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.delivery import worker
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors.batching import request_batches
from tests.vendors.helpers import AdapterFactory

EVENTS = 21
MARKED = 7
WHEN_TEXT = "2026-01-02T03:04:05Z"


pytestmark = pytest.mark.usefixtures("closed_breaker")


@pytest.fixture
def primedata(settings: Settings, sandbox: Sandbox) -> Sandbox:
    """PrimeData against the sandbox, sent by a worker (so the test decides when)."""
    settings.EVENTTRACK = {
        "VENDORS": {"primedata": sandbox.vendor_settings()["primedata"]},
        "DELIVERY": "worker",
    }
    return sandbox


def track_visitors(extra: dict[str, Any]) -> None:
    """``EVENTS`` visitors' ``order.placed`` (``n`` = 0..20), each on its own session; the
    one numbered ``MARKED`` carries ``extra`` as its PrimeData extra."""
    with transaction.atomic():
        for n in range(EVENTS):
            track(
                "order.placed",
                {"n": n, "order": f"O{n}"},
                session=f"S{n}",
                vendor_extra={"primedata": extra} if n == MARKED and extra else None,
            )


def arrived(sandbox: Sandbox, expected: range | list[int] = range(EVENTS)) -> dict[int, Any]:
    """The events PrimeData accepted, by ``n``: each of ``expected`` exactly once."""
    events = sandbox.events("primedata")
    assert Counter(event["properties"]["n"] for event in events) == dict.fromkeys(expected, 1)
    return {event["properties"]["n"]: event for event in events}


def delivered() -> Counter[str]:
    return Counter(Delivery.objects.values_list("status", flat=True))


@pytest.mark.django_db(transaction=True)
def test_an_extra_naming_the_events_list_reaches_its_own_event_only(primedata: Sandbox) -> None:
    track_visitors({"events": [{"properties": {"coupon": "SPRING"}, "sendAt": WHEN_TEXT}]})

    worker.Worker(["primedata"]).run_once()

    assert delivered() == {Delivery.Status.DELIVERED: EVENTS}
    assert len(primedata.requests("primedata")) == 1, "still one batch of all 21"
    for n, sent in arrived(primedata).items():
        assert sent["sessionId"] == f"S{n}", "each visitor keeps their own session"
        assert sent["eventType"] == "order.placed"
        assert sent["target"]["itemId"] == f"O{n}"
        if n == MARKED:
            assert sent["properties"]["coupon"] == "SPRING"
            assert sent["sendAt"] == WHEN_TEXT
        else:
            assert "coupon" not in sent["properties"]
            assert "sendAt" not in sent


@pytest.mark.django_db(transaction=True)
def test_a_top_level_extra_never_reaches_another_event(primedata: Sandbox) -> None:
    track_visitors({"sessionId": "S-other", "sendAt": WHEN_TEXT})

    worker.Worker(["primedata"]).run_once()

    assert delivered() == {Delivery.Status.DELIVERED: EVENTS}
    for n, sent in arrived(primedata).items():
        assert sent["sessionId"] == f"S{n}"
    requests = [r.body for r in primedata.requests("primedata")]
    carrying = [body for body in requests if "S-other" in str(body)]
    assert len(carrying) == 1
    assert [e["properties"]["n"] for e in carrying[0]["events"]] == [MARKED], "alone"
    assert (carrying[0]["sessionId"], carrying[0]["sendAt"]) == ("S-other", WHEN_TEXT)
    # The others still share requests, cut around the one that goes alone.
    assert sorted(len(body["events"]) for body in requests) == [1, MARKED, EVENTS - MARKED - 1]


@pytest.mark.django_db(transaction=True)
def test_a_stored_extra_no_longer_accepted_keeps_its_old_reading_alone(
    primedata: Sandbox,
) -> None:
    """A row stored before ``track()`` refused an ``events`` list of several entries is
    sent as it always was (the list laid over its body), but in a request of its own."""
    track_visitors({})
    entry = {"eventType": "order.placed", "scope": "nowhere"}
    Event.objects.filter(properties__n=MARKED).update(
        vendor_extra={"primedata": {"events": [entry, entry]}}
    )

    worker.Worker(["primedata"]).run_once()

    assert delivered() == {Delivery.Status.DELIVERED: EVENTS - 1, Delivery.Status.FAILED: 1}
    refused = [r for r in primedata.requests("primedata") if not r.accepted]
    assert len(refused) == 1
    assert refused[0].body["events"] == [entry, entry]
    arrived(primedata, [n for n in range(EVENTS) if n != MARKED])


# -- the rule, on the batching adapters --------------------------------------------------------


def visitor_event(n: int, vendor: str, extra: dict[str, Any] | None = None) -> TrackedEvent:
    return TrackedEvent.create(
        "order.placed",
        {"n": n},
        identity=Identity(anonymous_id=f"anon-{n}", acme_visitor_id=f"v{n}"),
        vendor_extra={vendor: extra} if extra is not None else None,
    )


BATCHING = ["primedata", "acme"]


@pytest.mark.parametrize("vendor", BATCHING)
def test_an_entry_extra_merges_into_its_own_entry(
    make_adapter: AdapterFactory, vendor: str
) -> None:
    batching = make_adapter(vendor)
    key = batching.entries_key
    assert key is not None
    plain = [visitor_event(n, vendor) for n in range(3)]
    # The same event as plain[1] but for its extra (same id and time: entries compare equal).
    extra = {key: [{"properties": {"coupon": "X"}, "note": "mine"}]}
    marked = dataclasses.replace(plain[1], vendor_extra={vendor: extra})

    body = batching.build_request([plain[0], marked, plain[2]]).body
    alone = batching.build_request([marked]).body

    without = batching.build_request(plain).body
    entries = body[key]
    assert entries[0] == without[key][0]
    assert entries[2] == without[key][2]
    assert entries[1] == without[key][1] | {
        "properties": without[key][1]["properties"] | {"coupon": "X"},
        "note": "mine",
    }
    assert {k: v for k, v in body.items() if k != key} == {
        k: v for k, v in without.items() if k != key
    }
    assert alone[key] == [entries[1]], "alone, the same entry: merged, not replaced"


@pytest.mark.parametrize("vendor", BATCHING)
def test_a_request_level_extra_goes_in_a_request_of_its_own(
    make_adapter: AdapterFactory, vendor: str
) -> None:
    batching = make_adapter(vendor)
    events = [visitor_event(n, vendor) for n in range(5)]
    events[2] = visitor_event(2, vendor, {"sessionId": "S-other"})

    batches = request_batches(batching, events, max_bytes=10**6)

    assert batches == [[0, 1], [2], [3, 4]]
    assert batching.build_request(events[2:3]).body["sessionId"] == "S-other"
    with pytest.raises(ValueError, match="request of its own"):
        batching.build_request(events[1:3])


def test_primedata_shares_a_session_at_the_top_level_only_when_every_entry_has_it(
    make_adapter: AdapterFactory,
) -> None:
    primedata = make_adapter("primedata")
    same = Identity(primedata_session_id="S1")
    events = [
        TrackedEvent.create("a.b", identity=same),
        TrackedEvent.create(
            "a.b", identity=same, vendor_extra={"primedata": {"events": [{"sessionId": "S2"}]}}
        ),
    ]

    body = primedata.build_request(events).body
    shared = primedata.build_request(events[:1] * 2).body

    assert "sessionId" not in body
    assert [entry["sessionId"] for entry in body["events"]] == ["S1", "S2"]
    assert shared["sessionId"] == "S1"


def test_a_single_event_vendor_lays_the_extra_over_its_whole_body(
    make_adapter: AdapterFactory,
) -> None:
    hackle = make_adapter("hackle")
    extra = {"event": {"value": 42}, "user": {"properties": {"tier": "gold"}}}
    sent = visitor_event(1, "hackle", extra)

    body = hackle.build_request([sent]).body

    assert body["event"]["value"] == 42
    assert body["user"]["properties"] == {"tier": "gold"}
    assert request_batches(hackle, [sent, sent], max_bytes=10**6) == [[0], [1]]


# -- what track() refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"events": [{"a": 1}, {"b": 2}]}, "must be a list of one object"),
        ({"events": []}, "must be a list of one object"),
        ({"events": {"properties": {"a": 1}}}, "must be a list of one object"),
        ({"events": ["text"]}, "must be a list of one object"),
    ],
)
@pytest.mark.django_db
def test_an_events_list_that_can_never_be_one_events_is_refused(
    primedata: Sandbox, extra: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidEvent, match=why) as caught:
        track("order.placed", {"n": 1}, session="S1", vendor_extra={"primedata": extra})

    assert caught.value.field == "vendor_extra.primedata.events"
    assert "this event's own entry" in str(caught.value)
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_an_extra_for_a_vendor_that_does_not_exist_is_refused(primedata: Sandbox) -> None:
    with pytest.raises(InvalidEvent) as caught:
        track("order.placed", session="S1", vendor_extra={"primedatta": {"sendAt": WHEN_TEXT}})

    message = str(caught.value)
    assert "vendor_extra names unknown vendor 'primedatta'" in message
    assert "acme, browsee, hackle, hellotext, primedata" in message
    assert caught.value.field == "vendor_extra.primedatta"
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_an_extra_for_a_known_vendor_not_configured_is_kept(primedata: Sandbox) -> None:
    """It may be configured by the time a worker sends (or in another environment)."""
    tracked = track("order.placed", session="S1", vendor_extra={"hackle": {"event": {"value": 1}}})

    assert tracked is not None
    assert Event.objects.get().vendor_extra == {"hackle": {"event": {"value": 1}}}


@pytest.mark.django_db
def test_an_invalid_extra_follows_raise_on_invalid(settings: Settings, sandbox: Sandbox) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {"primedata": sandbox.vendor_settings()["primedata"]},
        "DELIVERY": "worker",
        "RAISE_ON_INVALID": False,
    }

    tracked = track("order.placed", session="S1", vendor_extra={"nobody": {"a": 1}})

    assert tracked is None
    assert not Event.objects.exists()
