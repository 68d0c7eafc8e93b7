"""PrimeData: the source, target and sessions of the batch its adapter builds
(docs/vendors/primedata.md), what the sandbox accepts and refuses as PrimeData (its
schemas, its scope, its registered event types), and the library against it
(items 5 and 6 of issue 14)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_eventtrack import identify, track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, Identity, TrackedEvent
from django_eventtrack.delivery.sender import drain
from django_eventtrack.models import VendorProfile
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.sandbox.primedata import PRIMEDATA
from django_eventtrack.sandbox.spec import Incoming
from django_eventtrack.vendors.primedata import server_session
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


def test_primedata_accepts_500_events(send):
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
    ],
)
def test_primedata_rejects_invalid_schema_with_422(send, body, field, description):
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


def test_primedata_leaves_unregistered_event_types_out_of_processed_events(sandbox, send):
    batch = primedata_batch(primedata_event(), primedata_event(eventType="unknown"))
    assert send("primedata", batch).json()["processedEvents"] == 2  # nothing registered yet
    sandbox.state("primedata").register("purchase")
    assert send("primedata", batch).json() == {"processedEvents": 1, "profileId": None}
    identify = primedata_event(
        eventType="identify",
        target={"itemId": "7", "itemType": "analyticsUser", "scope": CLIENT_ID},
    )
    assert send("primedata", primedata_batch(identify)).json()["processedEvents"] == 1


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


def test_a_primedata_batch_of_one_it_did_not_process_is_not_delivered(configure: Any) -> None:
    sandbox = configure()
    sandbox.state("primedata").register("order.placed")  # not "product.viewed"
    event = track("product.viewed", {"product": "TEE-1"}, session="S1", vendors=["primedata"])
    (request,) = sandbox.requests("primedata")
    assert request.status == 200
    failed = delivery("primedata", event)
    assert failed.status == Status.FAILED
    assert "PrimeData processed none of the 1 event(s)" in failed.last_error


def test_a_partly_processed_primedata_batch_is_flagged_and_never_resent(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = configure(DELIVERY="worker")
    sandbox.state("primedata").register("order.placed")
    events = [
        track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"]),
        track("product.viewed", {"product": "B"}, session="S1", vendors=["primedata"]),
        track("order.placed", {"order": "C"}, session="S1", vendors=["primedata"]),
    ]
    with caplog.at_level(logging.WARNING, logger="django_eventtrack"):
        drain(["primedata"])
    (request,) = sandbox.requests("primedata")
    assert (request.event_count, request.body["events"][0]["eventType"]) == (3, "order.placed")
    for event in events:
        flagged = delivery("primedata", event)
        assert flagged.status == Status.DELIVERED
        assert flagged.last_error.startswith("unconfirmed: PrimeData processed 2 of the 3 events")
    assert "processed 2 of 3 events without saying which" in caplog.text
    drain(["primedata"])
    assert len(sandbox.requests("primedata")) == 1  # nothing sent twice


def test_unregistered_primedata_event_types_are_skipped_before_sending(configure: Any) -> None:
    sandbox = configure({"primedata": {"EVENT_TYPES": "order.placed, cart.added"}})
    kept = track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"])
    skipped = track("product.viewed", {"product": "B"}, session="S1", vendors=["primedata"])
    assert delivery("primedata", kept).status == Status.DELIVERED
    reason = delivery("primedata", skipped)
    assert reason.status == Status.SKIPPED
    assert "'product.viewed' is not a registered PrimeData event type" in reason.last_error
    assert 'EVENTTRACK["VENDORS"]["primedata"]["EVENT_TYPES"]' in reason.last_error
    assert len(sandbox.requests("primedata")) == 1


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
