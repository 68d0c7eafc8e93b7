"""What every vendor adapter does, without a network: the exact request each builds for a
purchase, the settings every vendor reads (API_URL, EVENT_NAMES, EVENTS, vendor_extra),
who an event is about, and how each reads every kind of answer (docs/vendors/*.md).
Each vendor's own rules are in ``tests/vendors/test_<vendor>.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity
from django_eventtrack.core.redaction import MASK
from django_eventtrack.vendors import OutcomeKind, VendorResponse
from tests.vendors.helpers import (
    BROWSEE_KEY,
    CREDENTIALS,
    HACKLE_KEY,
    HELLOTEXT_TOKEN,
    PRIMEDATA_CLIENT_ID,
    PRIMEDATA_NOWHERE,
    PRIMEDATA_TOKEN,
    PURCHASE_PROPERTIES,
    WHEN_TEXT,
    body_for,
)

VENDORS = sorted(get_config().adapters)
#: The properties as every vendor but Hellotext passes them on: plain JSON.
PURCHASE_JSON = {"product": "vxqQJ3Yg", "amount": 89.9, "currency": "USD", "color": "red"}


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> VendorResponse:
    """A vendor's answer; ``body`` is raw bytes, or anything else to send as JSON."""
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    return VendorResponse(status=status, headers=headers or {}, body=raw)


# -- the request ------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "url", "auth_headers", "body"),
    [
        pytest.param(
            "hellotext",
            "https://api.hellotext.com/v1/attribution/events",
            {"Authorization": f"Bearer {HELLOTEXT_TOKEN}"},
            {
                "action": "product.purchased",
                "profile": "prof-1",
                "session": "sess-1",
                "object_parameters": {"source": "django", "reference": "vxqQJ3Yg"},
                "amount": 89.9,
                "currency": "USD",
                "tracked_at": WHEN_TEXT,
                "metadata": {"color": "red"},
            },
            id="hellotext",
        ),
        pytest.param(
            "hackle",
            "https://api.hackle.io/v1/track",
            {"X-HACKLE-API-KEY": HACKLE_KEY},
            {
                "event": {"key": "product.purchased", "properties": PURCHASE_JSON},
                "user": {
                    "userId": "42",
                    "deviceId": "dev-1",
                    "identifiers": {"anonymousId": "sess-1"},
                },
            },
            id="hackle",
        ),
        pytest.param(
            "browsee",
            "https://api.browsee.io/api/v1/track",
            {},
            {
                "apiKey": BROWSEE_KEY,
                "event": "product.purchased",
                "properties": PURCHASE_JSON,
                "userId": "42",
                "anonymousId": "br-1",
                "timestamp": WHEN_TEXT,
            },
            id="browsee",
        ),
        pytest.param(
            "primedata",
            "https://dev.primedata.ai/powehi/smile",
            {"X-Client-ID": PRIMEDATA_CLIENT_ID, "X-Client-Access-Token": PRIMEDATA_TOKEN},
            {
                "sessionId": "pd-sess-1",
                "events": [
                    {
                        "eventType": "product.purchased",
                        "scope": PRIMEDATA_CLIENT_ID,
                        "timeStamp": WHEN_TEXT,
                        "sessionId": "pd-sess-1",
                        "properties": PURCHASE_JSON,
                        "source": PRIMEDATA_NOWHERE,
                        "target": {
                            "itemId": "vxqQJ3Yg",
                            "itemType": "product",
                            "scope": PRIMEDATA_CLIENT_ID,
                        },
                    }
                ],
            },
            id="primedata",
        ),
    ],
)
def test_request_for_a_purchase(make_adapter, make_event, vendor, url, auth_headers, body):
    event = make_event()
    request = make_adapter(vendor).build_request([event])

    assert request.method == "POST"
    assert request.url == url
    assert request.headers == {
        "Content-Type": "application/json",
        "Accept": "application/json",
        **auth_headers,
    }
    assert request.body == body
    assert request.event_ids == (str(event.id),)
    assert json.loads(request.body_bytes()) == body


@pytest.mark.parametrize("vendor", VENDORS)
def test_api_url_setting_replaces_the_host(make_adapter, make_event, vendor):
    adapter = make_adapter(vendor, api_url="http://127.0.0.1:8999/sandbox")
    request = adapter.build_request([make_event()])
    assert request.url == "http://127.0.0.1:8999/sandbox" + adapter.path


@pytest.mark.parametrize("vendor", VENDORS)
def test_event_names_setting_renames_the_event(make_adapter, make_event, vendor):
    adapter = make_adapter(vendor, event_names={"product.purchased": "purchase"})
    renamed = strings_in(body_for(adapter, make_event()))
    assert "purchase" in renamed
    assert "product.purchased" not in renamed
    assert "order.placed" in strings_in(body_for(adapter, make_event("order.placed")))


def strings_in(value: Any) -> set[str]:
    """Every string value in a JSON body (keys aside), at any depth."""
    if isinstance(value, dict):
        return set().union(*(strings_in(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(strings_in(item) for item in value))
    return {value} if isinstance(value, str) else set()


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("events", "received"),
    [(None, True), (frozenset({"product.purchased"}), True), (frozenset({"order.placed"}), False)],
)
def test_events_setting_filters(make_adapter, make_event, vendor, events, received):
    assert make_adapter(vendor, events=events).receives(make_event()) is received


@pytest.mark.parametrize(
    ("vendor", "extra"),
    [
        ("hellotext", {"object_type": "appointment"}),
        ("hackle", {"event": {"value": 3}}),
        ("browsee", {"properties": {"origin": "server"}}),
        ("primedata", {"sendAt": WHEN_TEXT}),
    ],
)
def test_vendor_extra_is_merged_into_the_body(make_adapter, make_event, vendor, extra):
    adapter = make_adapter(vendor)
    plain = body_for(adapter, make_event())
    merged = body_for(
        adapter, make_event(vendor_extra={vendor: extra, "elsewhere": {"not_for_us": 1}})
    )

    for key, value in extra.items():
        expected = plain[key] | value if isinstance(value, dict) else value
        assert merged[key] == expected, "nested objects merge into ours, values replace"
    assert {k: v for k, v in merged.items() if k not in extra} == {
        k: v for k, v in plain.items() if k not in extra
    }
    assert "not_for_us" not in json.dumps(merged)


@pytest.mark.parametrize("vendor", ["hellotext", "hackle", "browsee"])
def test_single_event_vendors_refuse_batches(make_adapter, make_event, vendor):
    with pytest.raises(ValueError, match="takes 1 to 1 events"):
        make_adapter(vendor).build_request([make_event(), make_event()])


# -- who the event is about ---------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "identity", "reason"),
    [
        (
            "hellotext",
            Identity(user_id="42", anonymous_id="a", device_id="d"),
            "profile or session",
        ),
        ("hellotext", Identity(profile="p"), None),
        ("hellotext", Identity(session="s"), None),
        ("hackle", Identity(), "at least one identifier"),
        ("hackle", Identity(browsee_anonymous_id="b", primedata_session_id="p"), "identifier"),
        ("hackle", Identity(user_id="42"), None),
        ("hackle", Identity(device_id="d"), None),
        ("hackle", Identity(session="s"), None),
        ("browsee", Identity(device_id="d", primedata_session_id="p"), "user id or an anonymous"),
        ("browsee", Identity(user_id="42"), None),
        ("browsee", Identity(browsee_anonymous_id="b"), None),
        ("browsee", Identity(profile="p"), None),
        ("primedata", Identity(), "session"),
        ("primedata", Identity(user_id="42"), None),
        ("primedata", Identity(anonymous_id="a"), None),
        ("primedata", Identity(primedata_session_id="p"), None),
    ],
)
def test_skip_reason(make_adapter, make_event, vendor, identity, reason):
    named_product = {**PURCHASE_PROPERTIES, "name": "Organic cotton tee"}
    event = make_event(identity=identity, properties=named_product)
    skip_reason = make_adapter(vendor).skip_reason(event)
    if reason is None:
        assert skip_reason is None
    else:
        assert reason in skip_reason


@pytest.mark.parametrize(
    ("identity", "visitor", "session"),
    [
        (Identity(user_id="7", session="S1", profile="P1"), "S1", "S1"),
        (Identity(anonymous_id="A", profile="P1"), "A", "A"),
        (Identity(profile="P1"), "P1", None),
        (Identity(), None, None),
    ],
)
def test_the_visitor_id_is_a_browser_session_first_and_a_profile_last(
    make_adapter, identity, visitor, session
):
    """The registry's session ids, then our anonymous id, then its profile ids."""
    adapter = make_adapter("hackle")
    assert adapter.visitor_id(identity) == visitor
    assert adapter.visitor_id(identity, profiles=False) == session


# -- reading the answer --------------------------------------------------------


HELLOTEXT_422 = {
    "errors": [
        {"type": "parameter_missing", "message": "name is missing", "parameter": "name"},
        {"type": "invalid", "description": "currency needs an amount"},
    ]
}
PRIMEDATA_422 = {
    "error": {
        "details": [
            {
                "field": "source.itemId",
                "description": "String length must be greater than or equal to 1",
            }
        ],
        "message": "Schema is invalid",
    }
}


@pytest.mark.parametrize(
    ("vendor", "response", "kind", "message"),
    [
        ("hellotext", answer(200, {"status": "received"}), OutcomeKind.DELIVERED, ""),
        ("hellotext", answer(201, {"state": "ok"}), OutcomeKind.DELIVERED, ""),
        ("hackle", answer(200), OutcomeKind.DELIVERED, ""),
        ("hackle", answer(204), OutcomeKind.DELIVERED, ""),
        ("browsee", answer(200, {"status": "success"}), OutcomeKind.DELIVERED, ""),
        (
            "primedata",
            answer(200, {"processedEvents": 2, "profileId": None}),
            OutcomeKind.DELIVERED,
            "",
        ),
        ("primedata", answer(200, {"updated": 0}), OutcomeKind.DELIVERED, ""),
        (
            "browsee",
            answer(200, {"status": "failure", "message": "event is required"}),
            OutcomeKind.FAILED,
            "event is required",
        ),
        (
            "browsee",
            answer(200, {"status": "failure"}),
            OutcomeKind.FAILED,
            "Browsee answered status failure",
        ),
        (
            "browsee",
            answer(400, {"status": "failure", "message": "apiKey is invalid"}),
            OutcomeKind.FAILED,
            "HTTP 400: apiKey is invalid",
        ),
        ("hackle", answer(400, b"Bad Request"), OutcomeKind.FAILED, "HTTP 400: Bad Request"),
        ("hackle", answer(401), OutcomeKind.FAILED, "HTTP 401"),
        (
            "hellotext",
            answer(403, b"<html>nope</html>"),
            OutcomeKind.FAILED,
            "HTTP 403: <html>nope</html>",
        ),
        (
            "hellotext",
            answer(404, {"error": "not_found"}),
            OutcomeKind.FAILED,
            "HTTP 404: not_found",
        ),
        (
            "hellotext",
            answer(422, HELLOTEXT_422),
            OutcomeKind.FAILED,
            "HTTP 422: parameter_missing: name is missing (parameter name); "
            "invalid: currency needs an amount",
        ),
        (
            "hellotext",
            answer(422, {"error": {"type": "object_invalid", "message": "bad object"}}),
            OutcomeKind.FAILED,
            "HTTP 422: object_invalid: bad object",
        ),
        (
            "primedata",
            answer(422, PRIMEDATA_422),
            OutcomeKind.FAILED,
            "HTTP 422: Schema is invalid; "
            "source.itemId: String length must be greater than or equal to 1",
        ),
        (
            "primedata",
            answer(401, {"error": {"message": "client: unauthorized"}}),
            OutcomeKind.FAILED,
            "HTTP 401: client: unauthorized",
        ),
        ("primedata", answer(429), OutcomeKind.RETRY, "HTTP 429"),
        ("hackle", answer(500, b"oops"), OutcomeKind.RETRY, "HTTP 500: oops"),
        ("browsee", answer(503), OutcomeKind.RETRY, "HTTP 503"),
        ("hellotext", answer(502, {"errors": []}), OutcomeKind.RETRY, 'HTTP 502: {"errors": []}'),
        (
            "hellotext",
            answer(200, {"errors": [{"type": "invalid", "message": "bad", "parameter": "x"}]}),
            OutcomeKind.FAILED,
            "invalid: bad (parameter x)",
        ),
        (
            "primedata",
            answer(200, {"error": {"message": "scope is not exists"}}),
            OutcomeKind.FAILED,
            "scope is not exists",
        ),
    ],
)
def test_classify(make_adapter, vendor, response, kind, message):
    outcome = make_adapter(vendor).classify(response)
    assert (outcome.kind, outcome.http_status, outcome.message) == (
        kind,
        response.status,
        message,
    )


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"retry-after": "7"}, 7.0), ({}, None)],
)
def test_429_is_retried_after_the_vendors_delay(make_adapter, vendor, headers, retry_after):
    outcome = make_adapter(vendor).classify(answer(429, headers=headers))
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.retry_after == retry_after


@pytest.mark.parametrize("vendor", VENDORS)
def test_secrets_in_an_error_body_are_masked(make_adapter, vendor):
    secrets = CREDENTIALS[vendor].values()
    body = {"message": "bad key " + " and ".join(secrets), "error": "token " + ", ".join(secrets)}
    outcome = make_adapter(vendor).classify(answer(401, body))

    assert outcome.kind is OutcomeKind.FAILED
    assert MASK in outcome.message
    for secret in secrets:
        assert secret not in outcome.message


@pytest.mark.parametrize("vendor", VENDORS)
def test_dry_run_view_masks_credentials(make_adapter, make_event, vendor):
    masked = json.dumps(make_adapter(vendor).build_request([make_event()]).masked())
    for secret in CREDENTIALS[vendor].values():
        assert secret not in masked
