"""What any vendor's answer means, against the strict sandbox: a 429's Retry-After and an
open circuit breaker pause the vendor for every process, and a 2xx whose body says it
refused is not delivered (items 7 and 8 of issue 14; each vendor's own items are in
``tests/vendors/test_<vendor>.py``, the vendors' behaviour in docs/vendors/*.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_eventtrack import track
from django_eventtrack.delivery import flow
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import VendorPause
from django_eventtrack.outbox import fanout, pausing
from django_eventtrack.vendors import BUILT_IN, OutcomeKind, VendorResponse
from tests.vendors.helpers import Status, delivery

# -- 7. A 429 with Retry-After pauses the vendor, for every process -------------------------------


def test_retry_after_pauses_the_vendor_for_every_process(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker", CONCURRENCY=1)
    sandbox.inject("hackle", status=429, retry_after=120)
    events = [track("order.placed", {"n": n}, session="S1", vendors=["hackle"]) for n in range(3)]
    before = timezone.now()

    stats = drain(["hackle"])
    assert (stats.retried, stats.requests) == (1, 1)
    assert len(sandbox.requests("hackle")) == 1  # the rest of the claim was not sent...
    rows = [delivery("hackle", event) for event in events]
    assert [(d.status, d.attempts) for d in rows] == [
        (Status.PENDING, 1),
        (Status.PENDING, 0),  # ...but given back, not failed
        (Status.PENDING, 0),
    ]
    assert all(d.claim_token is None for d in rows)
    pause = pausing.paused_vendors()["hackle"]
    assert before + timedelta(seconds=119) < pause.paused_until < before + timedelta(seconds=122)
    assert "429" in pause.reason

    flow.breaker.reset()  # another process: it knows nothing but the database
    assert drain(["hackle"]).paused_vendors == {"hackle"}
    assert len(sandbox.requests("hackle")) == 1
    assert delivery("hackle", events[1]).attempts == 0


def test_a_pause_recorded_by_another_process_stops_claiming(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker")
    VendorPause.objects.create(
        vendor="browsee", paused_until=timezone.now() + timedelta(minutes=1), reason="elsewhere"
    )
    event = track("order.placed", {"order": "A"}, session="S1", vendors=["browsee", "hackle"])
    assert event is not None
    fanout.write_now([event.id])
    before = delivery("browsee", event).next_attempt_at
    stats = drain()
    assert stats.paused_vendors == {"browsee"}
    assert delivery("hackle", event).status == Status.DELIVERED
    untouched = delivery("browsee", event)
    assert (untouched.status, untouched.next_attempt_at) == (Status.PENDING, before)  # unclaimed
    assert sandbox.requests("browsee") == []
    VendorPause.objects.update(paused_until=timezone.now())  # the pause ran out
    drain()
    assert delivery("browsee", event).status == Status.DELIVERED


def test_an_open_circuit_breaker_is_recorded_for_every_process(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker", CIRCUIT_BREAKER_THRESHOLD=2, CONCURRENCY=1)
    sandbox.inject("browsee", status=503, count=10)
    for n in range(3):
        track("order.placed", {"n": n}, session="S1", vendors=["browsee"])
    drain(["browsee"])
    pause = pausing.paused_vendors()["browsee"]
    assert pause.reason == "circuit breaker: 2 retryable failures in a row"
    assert len(sandbox.requests("browsee")) == 2


# -- 8. A 2xx that says it refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "body", "message"),
    [
        (
            "hellotext",
            {"errors": [{"type": "invalid", "message": "bad object", "parameter": "object"}]},
            "invalid: bad object (parameter object)",
        ),
        ("primedata", {"error": {"message": "Item not found"}}, "Item not found"),
    ],
)
def test_a_2xx_with_an_error_body_is_not_delivered(
    configure: Any, vendor: str, body: dict[str, Any], message: str
) -> None:
    sandbox = configure()
    sandbox.inject(vendor, status=200, body=body)
    event = track("order.placed", {"order": "A"}, session="S1", vendors=[vendor])
    failed = delivery(vendor, event)
    assert (failed.status, failed.last_status) == (Status.FAILED, 200)
    assert message in failed.last_error


# -- a redirect is a configuration mistake --------------------------------------------------------


@pytest.mark.parametrize("vendor", sorted(BUILT_IN))
def test_a_redirect_is_reported_as_the_api_url_to_fix(configure: Any, vendor: str) -> None:
    """No vendor API redirects: a 3xx (an ``http://`` API_URL answered with a redirect to
    ``https://``) fails naming the setting, and nothing follows it elsewhere."""
    sandbox = configure()
    sandbox.inject(vendor, status=301)
    event = track("order.placed", {"order": "A"}, session="S1", user_id="7", vendors=[vendor])
    failed = delivery(vendor, event)
    assert (failed.status, failed.last_status) == (Status.FAILED, 301)
    assert f'check EVENTTRACK["VENDORS"]["{vendor}"]["API_URL"]' in failed.last_error
    assert f"EVENTTRACK_{vendor.upper()}_API_URL" in failed.last_error
    assert len(sandbox.requests(vendor)) == 1


def test_a_redirect_says_where_it_pointed(make_adapter) -> None:
    adapter = make_adapter("hackle", api_url="http://api.hackle.io")
    response = VendorResponse(308, {"location": "https://api.hackle.io/v1/track"}, b"")
    outcome = adapter.classify(response)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.message.startswith(
        "HTTP 308: Hackle redirected the request to https://api.hackle.io/v1/track; check "
    )
    assert "now http://api.hackle.io" in outcome.message
