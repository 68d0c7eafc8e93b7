"""Hackle: who the user is, the limits its adapter fits properties to and notes
(docs/vendors/hackle.md), what the sandbox refuses as Hackle, and the fitting recorded,
logged once and shown in the admin (item 9 of issue 14)."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_eventtrack import track
from django_eventtrack.core.event import IDENTIFY, Identity, TrackedEvent
from django_eventtrack.core.settings import parse_optional_seconds
from django_eventtrack.delivery.sender import drain
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Event
from django_eventtrack.vendors import VendorAdapter
from tests.sandbox.helpers import HACKLE_KEY, hackle_event
from tests.test_admin import _admin_settings  # noqa: F401  (a fixture)
from tests.vendors.helpers import VISITOR, WHEN, Status, body_for, delivery, make_due


@pytest.mark.parametrize(
    ("identity", "user"),
    [
        (Identity(user_id="42"), {"userId": "42"}),
        (
            Identity(device_id="d", profile="p"),
            {"deviceId": "d", "identifiers": {"anonymousId": "p"}},
        ),
        (Identity(anonymous_id="a", profile="p"), {"identifiers": {"anonymousId": "a"}}),
        (Identity(profile="p", session="s"), {"identifiers": {"anonymousId": "s"}}),
        (Identity(session="s"), {"identifiers": {"anonymousId": "s"}}),
    ],
)
def test_hackle_user(make_adapter, make_event, identity, user):
    assert body_for(make_adapter("hackle"), make_event(identity=identity))["user"] == user


# -- Hackle's limits ---------------------------------------------------------------


def hackle_properties(adapter: VendorAdapter, event: TrackedEvent) -> dict[str, Any]:
    return dict(body_for(adapter, event)["event"]["properties"])


def test_hackle_keeps_the_first_64_properties(make_adapter, make_event):
    properties = {f"p{index:02}": index for index in range(65)}
    sent = hackle_properties(make_adapter("hackle"), make_event(properties=properties))
    assert list(sent) == [f"p{index:02}" for index in range(64)]


def test_hackle_drops_keys_longer_than_128(make_adapter):
    # Event.create refuses such keys already; build the Event directly to reach Hackle's guard.
    event = TrackedEvent(
        name="product.purchased",
        properties={"k" * 129: "x", "ok": "y"},
        timestamp=WHEN,
        identity=VISITOR,
    )
    assert hackle_properties(make_adapter("hackle"), event) == {"ok": "y"}


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        pytest.param("x" * 2000, "x" * 1024, id="long-string-truncated"),
        pytest.param({"items": 2, "name": "ü"}, '{"items":2,"name":"ü"}', id="dict-json"),
        pytest.param([{"sku": "a"}], '[{"sku":"a"}]', id="list-of-dicts-json"),
        pytest.param(["a", 1, 2.5], ["a", 1, 2.5], id="list-of-strings-and-numbers-kept"),
        pytest.param(["a", True], '["a",true]', id="list-holding-a-boolean-json"),
        pytest.param(["x" * 2000], ["x" * 1024], id="list-strings-truncated"),
        pytest.param({"long": "x" * 2000}, None, id="long-json-dropped-not-cut"),
        pytest.param(False, False, id="boolean-kept"),
    ],
)
def test_hackle_property_values(make_adapter, make_event, value, sent):
    properties = hackle_properties(make_adapter("hackle"), make_event(properties={"p": value}))
    assert properties == ({} if sent is None else {"p": sent})


def test_hackle_drops_none_properties(make_adapter, make_event):
    properties = {"gone": None, "kept": "x"}
    sent = hackle_properties(make_adapter("hackle"), make_event(properties=properties))
    assert sent == {"kept": "x"}


@pytest.mark.parametrize(
    ("properties", "event_part"),
    [
        ({"value": 3, "a": 1}, {"value": 3, "properties": {"a": 1}}),
        ({"value": Decimal("4.5")}, {"value": 4.5, "properties": {}}),
        ({"value": "high"}, {"properties": {"value": "high"}}),
        ({"value": True}, {"properties": {"value": True}}),
    ],
)
def test_hackle_value_from_a_numeric_value_property(
    make_adapter, make_event, properties, event_part
):
    event = body_for(make_adapter("hackle"), make_event(properties=properties))["event"]
    assert event == {"key": "product.purchased"} | event_part


def test_hackle_skips_event_keys_longer_than_128(make_adapter, make_event):
    adapter = make_adapter("hackle", event_names={"product.purchased": "k" * 129})
    assert "at most 128" in adapter.skip_reason(make_event())


def test_hackle_notes_every_change_without_values(make_adapter, make_event):
    properties = {
        "Color": "red",
        "color": "blue",
        "gone": None,
        "text": "x" * 1100,
        "cart": {"items": 2},
        "ratio": 0.1234567,
        "big": 10**16,
    }
    event = make_event(properties=properties, timestamp=timezone.now())
    request = make_adapter("hackle").build_request([event])
    (notes,) = request.notes.values()
    assert notes == (
        "properties: dropped null values: gone",
        "properties: dropped keys that repeat an earlier key but for case: color",
        "properties: nested values sent as JSON strings: cart",
        "properties: strings cut to 1,024 characters: text",
        "properties: numbers over 15 integer digits sent as strings: big",
        "properties: numbers rounded to 6 decimal places: ratio",
    )
    assert "red" not in " ".join(notes)
    assert "x" * 10 not in " ".join(notes)
    plain = make_adapter("hackle").build_request(
        [make_event(properties={"a": 1}, timestamp=timezone.now())]
    )
    assert plain.notes == {}


# --- the sandbox: Hackle's rules ---------------------------------------------------------------

LONG_KEY = "k" * 129


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": {"userId": "u"}}, "event"),
        (hackle_event(event="purchase"), "event"),
        (hackle_event(event={}), "event.key"),
        (hackle_event(event={"key": ""}), "event.key"),
        (hackle_event(event={"key": LONG_KEY}), "event.key"),
        (hackle_event(event={"key": "k", "value": "1"}), "event.value"),
        (hackle_event(event={"key": "k", "properties": []}), "event.properties"),
        (
            hackle_event(event={"key": "k", "properties": {str(i): i for i in range(65)}}),
            "event.properties",
        ),
        (hackle_event(event={"key": "k", "properties": {LONG_KEY: 1}}), "event.properties"),
        (hackle_event(event={"key": "k", "properties": {"p": "x" * 1025}}), "event.properties.p"),
        (hackle_event(event={"key": "k", "properties": {"p": {"n": 1}}}), "event.properties.p"),
        (hackle_event(event={"key": "k", "properties": {"p": None}}), "event.properties.p"),
        (hackle_event(event={"key": "k", "properties": {"p": [[1]]}}), "event.properties.p"),
        ({"event": {"key": "k"}}, "user"),
        (hackle_event(user={}), "user"),
        (hackle_event(user={"id": "legacy-only"}), "user.id is deprecated"),
        (hackle_event(user={"userId": 1}), "user.userId"),
        (hackle_event(user={"userId": "", "deviceId": ""}), "user needs"),
        (hackle_event(user={"identifiers": {"sessionId": ""}}), "user needs"),
        (hackle_event(user={"identifiers": "s"}), "user.identifiers"),
        (hackle_event(user={"identifiers": {"s": "x" * 513}}), "user.identifiers.s"),
        (hackle_event(user={"identifiers": {LONG_KEY: "x"}}), "user.identifiers"),
        (hackle_event(user={"userId": "u", "properties": "x"}), "user.properties"),
        (hackle_event(timestamp=1), "timestamp is not a documented field"),
        (hackle_event(event={"key": "k", "insertId": "x"}), "event.insertId"),
        (hackle_event(user={"userId": "u", "email": "a@b.c"}), "user.email"),
        (hackle_event(event={"key": "k", "properties": {"a": 1, "A": 2}}), "event.properties.A"),
        (hackle_event(event={"key": "k", "properties": {"n": 10**15}}), "15 integer digits"),
        (hackle_event(event={"key": "k", "properties": {"n": 0.1234567}}), "6 decimal places"),
        (hackle_event(event={"key": "k", "value": 10**16}), "event.value"),
        (
            hackle_event(event={"key": "k", "properties": {"p": ["a", True]}}),
            "event.properties.p is an array holding a boolean",
        ),
        (hackle_event(user={"userId": "u", "properties": {"b": [False]}}), "user.properties.b"),
    ],
)
def test_hackle_rejects_with_400(send, body, field):
    response = send("hackle", body)

    assert response.status_code == 400
    assert field in response.json()["message"]


# -- 9. Changes made to fit a vendor are recorded, logged once, shown in the admin ----------------


@pytest.mark.usefixtures("_admin_settings")
def test_hackles_fitting_is_recorded_logged_once_and_shown(
    configure: Any, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    configure(DELIVERY="worker")
    properties = {"cart": {"items": ["x" * 1100]}} | {f"p{n:02}": n for n in range(71)}
    event = track("order.placed", properties, session="S1", vendors=["hackle"])
    sandbox = configure(DELIVERY="worker")
    sandbox.inject("hackle", status=503)
    with caplog.at_level(logging.INFO, logger="django_eventtrack"):
        drain(["hackle"])  # a retryable failure...
        make_due(delivery("hackle", event))
        drain(["hackle"])  # ...then delivered: the same changes, not logged again
    fitted = delivery("hackle", event)
    assert fitted.status == Status.DELIVERED
    assert fitted.adjustments == [
        "properties: dropped nested values whose JSON is over 1,024 characters: cart",
        "properties: 72 keys, kept 64 (Hackle takes 64; dropped: p64, p65, p66, p67, p68 "
        "and 2 more)",
    ]
    logged = [r for r in caplog.records if "changed to fit the vendor" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.WARNING  # the vendor gets other data than tracked
    assert "x" * 100 not in logged[0].getMessage()  # the lines name keys, never values
    page = admin_client.get(f"/admin/django_eventtrack/delivery/{fitted.pk}/change/")
    assert "72 keys, kept 64" in page.content.decode()


def test_a_fit_that_keeps_every_value_is_logged_at_info(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An object sent as a JSON string loses nothing: an operator is told, without a
    WARNING for every event of a shop whose events carry objects."""
    configure(DELIVERY="worker")
    event = track("order.placed", {"cart": {"items": ["x"]}}, session="S1", vendors=["hackle"])
    with caplog.at_level(logging.INFO, logger="django_eventtrack"):
        drain(["hackle"])
    assert delivery("hackle", event).adjustments == [
        "properties: nested values sent as JSON strings: cart"
    ]
    (logged,) = [r for r in caplog.records if "changed to fit the vendor" in r.getMessage()]
    assert logged.levelno == logging.INFO


# -- Hackle records the time an event arrives --------------------------------------------------


def test_a_35_day_old_event_is_not_delivered_to_hackle_without_a_word(configure: Any) -> None:
    sandbox = configure()
    then = timezone.now() - timedelta(days=35)
    event = track("order.placed", {"order": "A"}, user_id="7", timestamp=then)
    skipped = delivery("hackle", event)
    assert skipped.status == Status.SKIPPED
    assert "it happened 35 days ago, later than Hackle's MAX_LATENESS (1 hour)" in (
        skipped.last_error
    )
    assert "would record it at its arrival" in skipped.last_error
    assert sandbox.requests("hackle") == []


@pytest.mark.parametrize(
    ("options", "ago", "spelled"),
    [
        pytest.param({}, timedelta(minutes=10), "10 minutes", id="within-the-default"),
        pytest.param({"MAX_LATENESS": False}, timedelta(days=35), "35 days", id="turned-off"),
    ],
)
def test_an_event_sent_late_says_so_on_its_delivery(
    configure: Any, options: dict[str, Any], ago: timedelta, spelled: str
) -> None:
    sandbox = configure({"hackle": options})
    then = timezone.now() - ago
    event = track("order.placed", {"order": "A"}, user_id="7", timestamp=then, vendors=["hackle"])
    sent = delivery("hackle", event)
    assert sent.status == Status.DELIVERED
    assert sent.adjustments == [
        f"time: sent {spelled} after it happened; Hackle records the time it arrives"
    ]
    assert len(sandbox.requests("hackle")) == 1
    prompt = track("order.placed", {"order": "B"}, user_id="7", vendors=["hackle"])
    assert delivery("hackle", prompt).adjustments == []


def test_an_event_retried_past_hackles_lateness_is_skipped_not_sent(configure: Any) -> None:
    sandbox = configure({"hackle": {"MAX_LATENESS": 60}}, DELIVERY="worker")
    sandbox.inject("hackle", status=503)
    event = track("order.placed", {"order": "A"}, user_id="7", vendors=["hackle"])
    assert event is not None
    drain(["hackle"])
    waiting = delivery("hackle", event)
    assert (waiting.status, waiting.attempts) == (Status.PENDING, 1)
    Event.objects.filter(pk=event.id).update(timestamp=timezone.now() - timedelta(minutes=2))
    make_due(waiting)
    drain(["hackle"])
    skipped = delivery("hackle", event)
    assert (skipped.status, skipped.attempts) == (Status.SKIPPED, 1)
    assert "it happened 2 minutes ago" in skipped.last_error
    assert len(sandbox.requests("hackle")) == 1  # only the refused first attempt


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(60, 60.0), ("90", 90.0), (False, None), ("off", None)],
)
def test_max_lateness_values(value, parsed):
    assert parse_optional_seconds(value, "MAX_LATENESS") == parsed


@pytest.mark.parametrize("value", [0, -5, "soon", True, float("inf")])
def test_max_lateness_refuses_what_is_no_duration(value):
    with pytest.raises(ConfigurationError, match="MAX_LATENESS must be a positive number"):
        parse_optional_seconds(value, "MAX_LATENESS")


# -- identify() and empty operations ------------------------------------------------------------


def test_a_hackle_identify_with_nothing_to_set_is_skipped(make_adapter):
    adapter = make_adapter("hackle")
    empty = TrackedEvent.create("identify", {}, identity=Identity(user_id="7"), kind=IDENTIFY)
    nulls = TrackedEvent.create(
        "identify", {"plan": None}, identity=Identity(user_id="7"), kind=IDENTIFY
    )
    kept = TrackedEvent.create(
        "identify", {"plan": "pro"}, identity=Identity(user_id="7"), kind=IDENTIFY
    )
    assert "an empty $set is refused" in adapter.identify_skip_reason(empty)
    assert "an empty $set is refused" in adapter.identify_skip_reason(nulls)
    assert adapter.identify_skip_reason(kept) is None


def test_the_sandbox_refuses_an_empty_hackle_operation(sandbox, client):
    url = sandbox.api_url("hackle") + "/v1/properties"
    body = {"userId": "7", "operations": {"$set": {}}}
    response = client.post(url, json=body, headers={"X-HACKLE-API-KEY": HACKLE_KEY}, timeout=2)
    assert response.status_code == 400
    assert "operations.$set is empty" in response.json()["message"]
