"""What any vendor's answer means, against the strict sandbox: a 429's Retry-After and an
open circuit breaker pause the vendor for every process, and a 2xx whose body says it
refused is not delivered (items 7 and 8 of issue 14; each vendor's own items are in
``tests/vendors/test_<vendor>.py``, the vendors' behaviour in docs/vendors/*.md)."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
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


# -- issue 24, item 3: refused credentials are the vendor's, not the events' ----------------------


def check() -> tuple[int, str]:
    """``eventtrack_status --check``: its exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("eventtrack_status", "--check", stdout=out, stderr=err)
    except SystemExit as exit:
        return int(str(exit.code)), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def test_a_hackle_401_pauses_it_keeps_its_deliveries_and_names_the_setting(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = configure({"hackle": {"API_KEY": "a-rotated-key"}}, DELIVERY="worker")
    events = [
        track("order.placed", {"n": n}, session=f"S{n}", vendors=["hackle"]) for n in range(3)
    ]

    with caplog.at_level(logging.WARNING, logger="django_eventtrack"):
        drain(["hackle"])
        flow.breaker.reset()  # another process, with the same key: it sends nothing
        assert drain(["hackle"]).paused_vendors == {"hackle"}
    refused = [r for r in sandbox.requests("hackle") if r.status == 401]
    assert 1 <= len(refused) == len(sandbox.requests("hackle"))
    rows = [delivery("hackle", event) for event in events]
    assert {(d.status, d.attempts, d.claim_token) for d in rows} == {(Status.PENDING, 0, None)}
    pause = pausing.paused_vendors()["hackle"]
    assert pause.credentials
    assert "a-rotated-key" not in pause.credentials
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once, however many requests were refused
    assert 'EVENTTRACK["VENDORS"]["hackle"]["API_KEY"]' in errors[0].getMessage()
    assert all("a-rotated-key" not in r.getMessage() for r in caplog.records)

    status, printed = check()
    assert status == 1
    assert (
        'UNHEALTHY: hackle: Hackle refused the credentials: check EVENTTRACK["VENDORS"]'
        '["hackle"]["API_KEY"] (or EVENTTRACK_HACKLE_API_KEY)'
    ) in printed

    # The key is fixed (new settings, as a restarted process has): sent at once.
    configure(DELIVERY="worker")
    assert drain(["hackle"]).delivered == 3
    assert {delivery("hackle", event).status for event in events} == {Status.DELIVERED}
    assert pausing.paused_vendors() == {}
    assert check()[0] == 0


def test_after_the_pause_a_probe_resumes_a_vendor_that_accepts_the_credentials_again(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = configure(DELIVERY="worker", CONCURRENCY=1)
    sandbox.inject(
        "primedata", status=401, count=2, body={"error": {"message": "client: unauthorized"}}
    )
    event = track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    assert pausing.paused_vendors()["primedata"].credentials

    # The pause runs out; the key is still refused: paused again, with no second ERROR.
    VendorPause.objects.update(paused_until=timezone.now())
    flow.breaker.reset()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="django_eventtrack"):
        drain(["primedata"])
    assert [r.levelno for r in caplog.records if "paused for every process" in r.getMessage()] == [
        logging.WARNING
    ]
    assert delivery("primedata", event).status == Status.PENDING
    assert pausing.paused_vendors()["primedata"].paused_until > timezone.now()

    # PrimeData takes the key again (re-enabled on its side): the next probe delivers.
    VendorPause.objects.update(paused_until=timezone.now())
    flow.breaker.reset()
    drain(["primedata"])
    assert delivery("primedata", event).status == Status.DELIVERED
    assert pausing.paused_vendors() == {}
    assert [r.status for r in sandbox.requests("primedata")] == [401, 401, 200]


def test_a_process_with_other_credentials_is_not_held_by_a_refused_keys_pause(
    configure: Any,
) -> None:
    sandbox = configure({"browsee": {"API_KEY": "old-key"}}, DELIVERY="worker")
    event = track("order.placed", {"order": "A"}, session="S1", vendors=["browsee"])
    drain(["browsee"])
    assert pausing.paused_vendors()["browsee"].credentials
    # Same process, new settings (a deploy): its breaker's pause was for the old key.
    configure(DELIVERY="worker")
    assert drain(["browsee"]).delivered == 1
    assert delivery("browsee", event).status == Status.DELIVERED
    assert [r.status for r in sandbox.requests("browsee")] == [400, 200]


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
