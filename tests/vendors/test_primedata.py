"""PrimeData: the source, target and sessions of the batch its adapter builds
(docs/vendors/primedata.md), what the sandbox accepts and refuses as PrimeData (its
schemas, its scope, its registered event types), and the library against it
(items 5 and 6 of issue 14)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_eventtrack import identify, track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, Identity, TrackedEvent
from django_eventtrack.delivery.http import Attempt
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import VendorDroppedName, VendorProfile
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.sandbox.primedata import PRIMEDATA, PrimeDataSchemas
from django_eventtrack.sandbox.spec import Incoming
from django_eventtrack.vendors import OutcomeKind, VendorRequest, VendorResponse
from django_eventtrack.vendors.batching import request_batches
from django_eventtrack.vendors.primedata import MAX_REFUSED, server_session
from tests.sandbox.helpers import CLIENT_ID, MISSING, primedata_batch, primedata_event
from tests.vendors.helpers import (
    ORDER,
    PRIMEDATA_CLIENT_ID,
    PRIMEDATA_NOWHERE,
    Status,
    body_for,
    delivery,
)

# -- the request --------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "source", "target", "kept"),
    [
        pytest.param(
            {"source": {"itemId": "web", "itemType": "site", "scope": "spoofed"}, "x": 1},
            {"itemId": "web", "itemType": "site", "scope": PRIMEDATA_CLIENT_ID},
            PRIMEDATA_NOWHERE,
            {"x": 1},
            id="source-property",
        ),
        pytest.param(
            {"target": {"itemId": 77, "properties": {"a": 1}}, "product": "ignored"},
            PRIMEDATA_NOWHERE,
            {"itemId": "77", "itemType": "_", "scope": PRIMEDATA_CLIENT_ID, "properties": {"a": 1}},
            {"product": "ignored"},
            id="target-property-wins-over-noun",
        ),
        pytest.param(
            {"target": {"itemId": "", "itemType": ""}},
            PRIMEDATA_NOWHERE,
            PRIMEDATA_NOWHERE,
            {},
            id="empty-ids-become-placeholders",
        ),
        pytest.param(
            {"product": 1234},
            PRIMEDATA_NOWHERE,
            {"itemId": "1234", "itemType": "product", "scope": PRIMEDATA_CLIENT_ID},
            {"product": 1234},
            id="numeric-noun-id",
        ),
        pytest.param(
            {"product": ""},
            PRIMEDATA_NOWHERE,
            {"itemId": "_", "itemType": "product", "scope": PRIMEDATA_CLIENT_ID},
            {"product": ""},
            id="empty-noun-id",
        ),
        pytest.param(
            {"product": {"name": "Shoe"}, "source": "newsletter"},
            PRIMEDATA_NOWHERE,
            PRIMEDATA_NOWHERE,
            {"product": '{"name":"Shoe"}', "source": "newsletter"},
            id="non-id-noun-and-non-dict-source-stay-properties",
        ),
        pytest.param(
            {"product": {"reference": "SKU-1", "price": 5}},
            PRIMEDATA_NOWHERE,
            {"itemId": "SKU-1", "itemType": "product", "scope": PRIMEDATA_CLIENT_ID},
            {"product": '{"reference":"SKU-1","price":5}'},
            id="noun-dict-reference-is-the-target",
        ),
    ],
)
def test_primedata_source_and_target(make_adapter, make_event, properties, source, target, kept):
    body = body_for(make_adapter("primedata"), make_event(properties=properties))
    (event,) = body["events"]
    assert (event["source"], event["target"], event["properties"]) == (source, target, kept)


@pytest.mark.parametrize(
    ("sessions", "top_level"),
    [
        (["s1", "s1"], "s1"),
        (["s1", "s2"], None),
        (["s1", None], None),
        ([None, None], None),
    ],
)
def test_primedata_session_ids(make_adapter, make_event, sessions, top_level):
    events = [make_event(identity=Identity(primedata_session_id=session)) for session in sessions]
    body = make_adapter("primedata").build_request(events).body
    assert body.get("sessionId") == top_level
    assert [event.get("sessionId") for event in body["events"]] == sessions


def test_primedata_takes_500_events_per_request(make_adapter, make_event):
    events = [make_event() for _ in range(500)]
    request = make_adapter("primedata").build_request(events)
    assert len(request.body["events"]) == 500
    assert request.event_ids == tuple(str(event.id) for event in events)


@pytest.mark.parametrize("count", [0, 501])
def test_primedata_refuses_batches_out_of_range(make_adapter, make_event, count):
    with pytest.raises(ValueError, match="1 to 500 events"):
        make_adapter("primedata").build_request([make_event() for _ in range(count)])


def test_primedatas_session_is_a_browser_session_or_the_users_never_a_profile(
    make_adapter, make_event
):
    from django_eventtrack.vendors.primedata import server_session

    def session(**ids: Any) -> Any:
        body = body_for(make_adapter("primedata"), make_event(identity=Identity(**ids)))
        return body["events"][0].get("sessionId")

    assert session(user_id="7", profile="P1") == server_session("7") != "P1"
    assert session(profile="P1") is None
    assert session(profile="P1", session="S1", anonymous_id="a1") == "S1"
    assert session(profile="P1", anonymous_id="a1") == "a1"
    assert session(primedata_session_id="pd", session="S1") == "pd"
    assert server_session("7") == server_session("7") != server_session("8")


# --- the sandbox: PrimeData's rules and registered schemas ------------------------------------


def test_primedata_accepts_500_events(primedata_schemas, send):
    primedata_schemas.register("purchase")
    response = send("primedata", primedata_batch(*[primedata_event()] * 500))

    assert response.json() == {"processedEvents": 500, "profileId": None}


TOO_SHORT = "String length must be greater than or equal to 1"


@pytest.mark.parametrize(
    ("body", "field", "description"),
    [
        (primedata_batch(events=MISSING), "events", "non-empty array"),
        (primedata_batch(events=[]), "events", "non-empty array"),
        (primedata_batch(events={"a": 1}), "events", "non-empty array"),
        (primedata_batch(*[primedata_event()] * 501), "events", "at most 500"),
        (primedata_batch(sessionId=1), "sessionId", "string"),
        (primedata_batch(sendAt="2021-10-15T18:49:00"), "sendAt", "offset"),
        (primedata_batch("not an event"), "events[0]", "object"),
        (primedata_batch(primedata_event(eventType=MISSING)), "events[0].eventType", "required"),
        (primedata_batch(primedata_event(eventType="")), "events[0].eventType", TOO_SHORT),
        (primedata_batch(primedata_event(timeStamp=MISSING)), "events[0].timeStamp", "required"),
        (
            primedata_batch(primedata_event(timeStamp="2021-10-15T18:49:00")),
            "events[0].timeStamp",
            "offset",
        ),
        (primedata_batch(primedata_event(sendAt="now")), "events[0].sendAt", "offset"),
        (primedata_batch(primedata_event(sessionId=5)), "events[0].sessionId", "string"),
        (primedata_batch(primedata_event(properties=[])), "events[0].properties", "object"),
        (primedata_batch(primedata_event(source=MISSING)), "events[0].source", "object"),
        (
            primedata_batch(primedata_event(), primedata_event(source={"itemType": "s2s"})),
            "events[1].source.itemId",
            "required",
        ),
        (
            primedata_batch(primedata_event(source={"itemId": "", "itemType": "s2s"})),
            "events[0].source.itemId",
            TOO_SHORT,
        ),
        (
            primedata_batch(primedata_event(target={"itemId": "1", "itemType": ""})),
            "events[0].target.itemType",
            TOO_SHORT,
        ),
        (
            primedata_batch(
                primedata_event(
                    target={"itemId": "1", "itemType": "o", "scope": CLIENT_ID, "properties": 1}
                )
            ),
            "events[0].target.properties",
            "object",
        ),
        (primedata_batch(user="u"), "user", "not a field"),
        (primedata_batch(primedata_event(context={})), "events[0].context", "not a field"),
        (
            primedata_batch(primedata_event(target={"itemId": "1", "itemType": "o", "name": "x"})),
            "events[0].target.name",
            "not a field",
        ),
        (
            primedata_batch(primedata_event(properties={"order": {"total": 1}})),
            "events[0].properties.order",
            "boolean, number, string or array",
        ),
        (
            primedata_batch(primedata_event(properties={"coupon": None})),
            "events[0].properties.coupon",
            "boolean, number, string or array",
        ),
        (
            primedata_batch(primedata_event(), sessionId=MISSING),
            "events[0].sessionId",
            "every event belongs to a session",
        ),
        (
            primedata_batch(primedata_event(sessionId="s"), primedata_event(), sessionId=MISSING),
            "events[1].sessionId",
            "every event belongs to a session",
        ),
        (
            primedata_batch(primedata_event(properties={"total": "ten"})),
            "events[0].properties.total",
            "must be a number (its schema's type)",
        ),
        (
            primedata_batch(
                primedata_event(
                    eventType="identify",
                    target={"itemId": "7", "itemType": "analyticsUser", "scope": CLIENT_ID},
                )
            ),
            "events[0].target.properties",
            "identify needs PII",
        ),
        (
            primedata_batch(
                primedata_event(
                    eventType="identify",
                    target={
                        "itemId": "7",
                        "itemType": "analyticsUser",
                        "scope": CLIENT_ID,
                        "properties": {"plan": "pro", "email": ""},
                    },
                )
            ),
            "events[0].target.properties",
            "identify needs PII",
        ),
    ],
)
def test_primedata_rejects_invalid_schema_with_422(
    primedata_schemas, send, body, field, description
):
    primedata_schemas.register("purchase", types={"total": "number"})
    response = send("primedata", body)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "Schema is invalid"
    [detail] = error["details"]
    assert detail["field"] == field
    assert description in detail["description"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (primedata_event(scope="someone-else"), "events[0].scope"),
        (primedata_event(scope=MISSING), "events[0].scope"),
        (
            primedata_event(source={"itemId": "_", "itemType": "s2s", "scope": "x"}),
            "events[0].source.scope",
        ),
        (primedata_event(target={"itemId": "_", "itemType": "s2s"}), "events[0].target.scope"),
    ],
)
def test_primedata_scope_must_be_the_client_id(send, event, field):
    response = send("primedata", primedata_batch(event))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "scope is not exists"
    assert error["details"][0]["field"] == field


def test_primedata_leaves_unregistered_event_types_out_of_processed_events(primedata_schemas, send):
    batch = primedata_batch(primedata_event(), primedata_event(eventType="unknown"))
    assert send("primedata", batch).json()["processedEvents"] == 0  # nothing registered yet
    primedata_schemas.register("purchase")
    assert send("primedata", batch).json() == {"processedEvents": 1, "profileId": None}
    identify = primedata_event(
        eventType="identify",
        target={
            "itemId": "7",
            "itemType": "analyticsUser",
            "scope": CLIENT_ID,
            "properties": {"id": "7"},
        },
    )
    assert send("primedata", primedata_batch(identify)).json()["processedEvents"] == 1
    primedata_schemas.seed(["*"])  # every type registered, without rules
    assert send("primedata", batch).json()["processedEvents"] == 2


def test_primedata_leaves_events_without_a_required_property_out(primedata_schemas, send):
    primedata_schemas.register("purchase", required=["total", "currency"])
    batch = primedata_batch(
        primedata_event(properties={"total": 10, "currency": "USD"}),
        primedata_event(properties={"total": 10}),
    )
    assert send("primedata", batch).json()["processedEvents"] == 1


@pytest.mark.parametrize(
    "schema",
    [
        '{"alias": "purchase", "required": ["total"], "properties": {"total": {"type": "number"}}}',
        '{"alias": "purchase", "required": ["total"], "properties": {"total": "number"}}',
    ],
)
def test_a_primedata_schema_is_registered_by_its_registration_body(schema):
    schemas = PrimeDataSchemas([schema])
    assert schemas.processes({"eventType": "purchase", "properties": {"total": 1}})
    assert not schemas.processes({"eventType": "purchase", "properties": {}})
    assert schemas.type_problem({"eventType": "purchase", "properties": {"total": "x"}}) == (
        "total",
        "number",
    )
    schemas.register("cart.added")
    schemas.clear()
    assert schemas.registered == {"purchase"}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"required": ["a"]}', "needs an alias"),
        ('{"alias": "x", "properties": {"a": {"type": "object"}}}', "the types of a"),
        ('{"alias": "x", "properties": ["a"]}', "a schema is"),
    ],
)
def test_a_bad_primedata_schema_is_refused_with_what_is_wrong(schema, message):
    with pytest.raises(ValueError, match=message):
        PrimeDataSchemas([schema])


def test_the_sandbox_refuses_a_primedata_identify_without_an_analytics_user(
    vendors: Sandbox,
) -> None:
    event = TrackedEvent.create(
        "identify", {}, identity=Identity(user_id="7", session="S1"), kind=IDENTIFY
    )
    adapter = get_config().adapter("primedata")
    request = adapter.build_request([event])
    request.body["events"][0]["target"]["itemType"] = "user"
    (endpoint,) = [e for e in PRIMEDATA.endpoints if e.path == "/powehi/context"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    rejection = endpoint.validate(
        Incoming(headers, request.body, None), vendors.credentials["primedata"]
    )
    assert rejection is not None
    assert rejection[0] == 422
    assert "analyticsUser" in str(rejection[1])


# -- 5. PrimeData's processedEvents and registered event types ------------------------------------

REGISTRATION = 'EVENTTRACK["VENDORS"]["primedata"]["EVENT_TYPES"]'


def test_a_primedata_batch_of_one_it_did_not_process_is_not_delivered(
    configure: Any, primedata_schemas: PrimeDataSchemas
) -> None:
    sandbox = configure()
    sandbox.state("primedata").register("order.placed")  # not "product.viewed"
    event = track("product.viewed", {"product": "TEE-1"}, session="S1", vendors=["primedata"])
    (request,) = sandbox.requests("primedata")
    assert request.status == 200
    failed = delivery("primedata", event)
    assert failed.status == Status.FAILED
    assert "PrimeData processed none of the 1 'product.viewed' event" in failed.last_error
    assert "Register its schema in PrimeData" in failed.last_error


def test_a_batch_with_an_unregistered_type_delivers_the_registered_events_and_fails_the_other(
    configure: Any,
    primedata_schemas: PrimeDataSchemas,
) -> None:
    """Two schemas registered, a third type not: one type per request, so the shortfall
    points at the type; its events fail with how to register it, the others are delivered,
    and later events of that type are skipped with the same advice, in every process."""
    sandbox = configure(DELIVERY="worker")
    sandbox.state("primedata").register("order.placed", "cart.added")
    events = {
        name: track(name, {"order": "A"}, session="S1", vendors=["primedata"])
        for name in ("order.placed", "wishlist.added", "cart.added")
    }
    drain(["primedata"])
    for name in ("order.placed", "cart.added"):
        assert delivery("primedata", events[name]).status == Status.DELIVERED
    dropped = delivery("primedata", events["wishlist.added"])
    assert dropped.status == Status.FAILED
    assert "no schema registered for 'wishlist.added'" in dropped.last_error
    assert REGISTRATION in dropped.last_error
    sent_types = [{e["eventType"] for e in r.body["events"]} for r in sandbox.requests("primedata")]
    assert sorted(map(sorted, sent_types)) == [["cart.added"], ["order.placed"], ["wishlist.added"]]
    assert VendorDroppedName.objects.get(vendor="primedata").name == "wishlist.added"

    later = track("wishlist.added", {"order": "B"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    skipped = delivery("primedata", later)
    assert skipped.status == Status.SKIPPED
    assert "no schema registered for 'wishlist.added'" in skipped.last_error
    assert REGISTRATION in skipped.last_error
    assert len(sandbox.requests("primedata")) == 3  # the later one never went out


def test_a_dropped_type_declared_in_event_types_is_sent_again(
    configure: Any, primedata_schemas: PrimeDataSchemas
) -> None:
    sandbox = configure(DELIVERY="worker")
    first = track("wishlist.added", {"order": "A"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    assert delivery("primedata", first).status == Status.FAILED
    sandbox.state("primedata").register("wishlist.added")  # registered in PrimeData since
    configure({"primedata": {"EVENT_TYPES": "wishlist.added"}}, DELIVERY="worker")
    again = track("wishlist.added", {"order": "B"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    assert delivery("primedata", again).status == Status.DELIVERED


def test_a_dropped_type_is_asked_about_again_a_day_later(
    configure: Any, primedata_schemas: PrimeDataSchemas
) -> None:
    sandbox = configure(DELIVERY="worker")
    track("wishlist.added", {"order": "A"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    sandbox.state("primedata").register("wishlist.added")
    VendorDroppedName.objects.update(learned_at=timezone.now() - timedelta(days=1, seconds=1))
    again = track("wishlist.added", {"order": "B"}, session="S1", vendors=["primedata"])
    drain(["primedata"])
    assert delivery("primedata", again).status == Status.DELIVERED


def test_a_batch_with_one_event_primedata_refuses_delivers_the_others(
    configure: Any, primedata_schemas: PrimeDataSchemas
) -> None:
    """A 422 means PrimeData processed nothing of the request: the event it names fails
    with PrimeData's words, the others are sent again at once, without it."""
    sandbox = configure(DELIVERY="worker")
    sandbox.state("primedata").register("order.placed", types={"total": "number"})
    events = [
        track("order.placed", {"order": ref, "total": total}, session="S1", vendors=["primedata"])
        for ref, total in (("A", 10), ("B", "lots"), ("C", 30))
    ]
    stats = drain(["primedata"])
    assert (stats.delivered, stats.failed) == (2, 1)
    refused, resent = sandbox.requests("primedata")
    assert (refused.status, refused.event_count) == (422, 3)
    assert (resent.status, resent.event_count) == (200, 2)
    assert [e["properties"]["order"] for e in resent.body["events"]] == ["A", "C"]
    assert resent.accepted
    good = [delivery("primedata", events[i]) for i in (0, 2)]
    assert [d.status for d in good] == [Status.DELIVERED] * 2
    assert [d.attempts for d in good] == [1, 1]
    bad = delivery("primedata", events[1])
    assert (bad.status, bad.last_status) == (Status.FAILED, 422)
    assert "properties.total: must be a number" in bad.last_error
    assert "events[" not in bad.last_error  # its place in a request means nothing to a reader
    drain(["primedata"])
    assert len(sandbox.requests("primedata")) == 2  # nothing sent twice


def test_a_partly_processed_primedata_batch_is_flagged_and_never_resent(
    configure: Any, primedata_schemas: PrimeDataSchemas, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = configure(DELIVERY="worker")
    sandbox.state("primedata").register("order.placed", required=["total"])
    events = [
        track("order.placed", {"order": "A", "total": 1}, session="S1", vendors=["primedata"]),
        track("order.placed", {"order": "B"}, session="S1", vendors=["primedata"]),
        track("order.placed", {"order": "C", "total": 3}, session="S1", vendors=["primedata"]),
    ]
    with caplog.at_level(logging.WARNING, logger="django_eventtrack"):
        drain(["primedata"])
    (request,) = sandbox.requests("primedata")
    assert request.event_count == 3
    for event in events:
        flagged = delivery("primedata", event)
        assert flagged.status == Status.DELIVERED
        assert flagged.last_error.startswith(
            "unconfirmed: PrimeData processed 2 of the 3 'order.placed' events"
        )
        assert "its schema requires properties some of them lack" in flagged.last_error
    assert "processed 2 of 3 'order.placed' events without saying which" in caplog.text
    assert not VendorDroppedName.objects.exists()  # the type is registered: nothing to skip
    drain(["primedata"])
    assert len(sandbox.requests("primedata")) == 1  # nothing sent twice


def test_unregistered_primedata_event_types_are_skipped_before_sending(
    configure: Any, primedata_schemas: PrimeDataSchemas
) -> None:
    sandbox = configure({"primedata": {"EVENT_TYPES": "order.placed, cart.added"}})
    sandbox.state("primedata").register("order.placed", "cart.added")
    kept = track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"])
    skipped = track("product.viewed", {"product": "B"}, session="S1", vendors=["primedata"])
    assert delivery("primedata", kept).status == Status.DELIVERED
    reason = delivery("primedata", skipped)
    assert reason.status == Status.SKIPPED
    assert "'product.viewed' is not a registered PrimeData event type" in reason.last_error
    assert 'EVENTTRACK["VENDORS"]["primedata"]["EVENT_TYPES"]' in reason.last_error
    assert len(sandbox.requests("primedata")) == 1


def test_an_event_without_a_session_is_skipped_not_sent_sessionless(configure: Any) -> None:
    sandbox = configure()
    event = track("order.placed", {"order": "A"}, vendors=["primedata"], profile="P1")
    skipped = delivery("primedata", event)
    assert skipped.status == Status.SKIPPED
    assert "PrimeData ties every event to a session" in skipped.last_error
    assert sandbox.requests("primedata") == []


@pytest.mark.parametrize(
    ("updated", "flagged"),
    [(0, False), (4, False), (1, True), (5, True)],
)
def test_primedatas_older_answer_is_delivered_with_a_note(
    configure: Any, updated: int, flagged: bool
) -> None:
    sandbox = configure()
    sandbox.inject("primedata", status=200, body={"updated": updated})
    event = track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"])
    noted = delivery("primedata", event)
    assert noted.status == Status.DELIVERED
    assert f'older form ({{"updated": {updated}}})' in noted.last_error
    assert noted.last_error.startswith("unconfirmed:") is flagged


def test_an_empty_primedata_item_id_is_noted(make_adapter, make_event):
    event = make_event(properties={"target": {"itemId": "", "itemType": "order"}})
    request = make_adapter("primedata").build_request([event])
    assert request.body["events"][0]["target"]["itemId"] == "_"
    assert request.notes[str(event.id)] == ("target.itemId: not a non-empty id, sent as '_'",)


def test_primedata_requests_carry_one_event_type_each(make_adapter, make_event):
    adapter = make_adapter("primedata")
    events = [make_event(name) for name in ("a.b", "c.d", "a.b", "c.d", "a.b")]
    assert request_batches(adapter, events, max_bytes=10**6) == [[0, 2, 4], [1, 3]]
    assert request_batches(adapter, events, max_bytes=1) == [[0], [2], [4], [1], [3]]
    hackle = make_adapter("hackle")
    assert request_batches(hackle, events, max_bytes=10**6) == [[0], [1], [2], [3], [4]]


# -- 6. PrimeData's session is never another vendor's profile id ----------------------------------


def test_a_server_event_for_a_user_gets_the_users_primedata_session(
    configure: Any, user: Any
) -> None:
    sandbox = configure()
    identify(user, identity=Identity(session="S1"))
    profile = VendorProfile.objects.get().profile_id
    event = track("order.shipped", {"order": ORDER}, user_id=user.pk)  # no browser at all
    assert event is not None
    assert event.identity.profile == profile  # Hellotext's, kept for it
    sent = sandbox.requests("primedata")[-1].body
    assert sent["sessionId"] == server_session(str(user.pk)) != profile
    # identify() bound that server session to the user, so PrimeData knows whose it is.
    (identified,) = [r.body for r in sandbox.requests("primedata") if "context" in r.path]
    sessions = {e["sessionId"] for e in identified["events"]}
    assert sessions == {"S1", server_session(str(user.pk))}


def test_primedata_refusals_are_capped_per_attempt_and_the_rest_retried(make_adapter, make_event):
    """Each refusal costs a request: past MAX_REFUSED in one attempt, the rest wait for the
    next one instead of holding the request thread (and its lease) for hundreds of them."""
    adapter = make_adapter("primedata")
    events = [make_event("order.placed", {"n": n}) for n in range(MAX_REFUSED + 5)]
    sent: list[int] = []

    def refuse_the_first(request: VendorRequest) -> Attempt:
        sent.append(len(request.body["events"]))
        details = [{"field": "events[0].properties.n", "description": "must be a string"}]
        body = {"error": {"details": details, "message": "Schema is invalid"}}
        response = VendorResponse(422, {}, json.dumps(body).encode())
        return Attempt(adapter.classify(response), response, 0.0)

    outcome = adapter.send_events(events, refuse_the_first)
    assert sent == [len(events) - n for n in range(MAX_REFUSED + 1)]
    assert (outcome.kind, outcome.retry_after) == (OutcomeKind.RETRY, 0.0)
    refused = {event_id for event_id, _ in outcome.singled_out}
    assert refused == {str(event.id) for event in events[:MAX_REFUSED]}
    assert {verdict.kind for _, verdict in outcome.singled_out} == {OutcomeKind.FAILED}
    assert outcome.for_event(str(events[-1].id)).kind is OutcomeKind.RETRY
    first = outcome.for_event(str(events[0].id))
    assert first.message == (
        "HTTP 422: Schema is invalid; properties.n: must be a string (PrimeData refused this "
        "event; the others of its request were sent again without it)"
    )
