"""What each vendor accepts and answers, as VENDORS.md documents the current contract.

One validator per vendor endpoint and one table (:data:`VENDORS`) mapping the
sandbox's path prefix to the documented path, the validator and the success
answer. Validators are strict on purpose: the sandbox exists so the library's
mistakes show up locally as the vendor's own 4xx answer, not in production.

Everything here is pure (a request in, an answer out) and stdlib-only, so the
server can call it from any thread without locks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

JSONObject = dict[str, Any]
#: An HTTP status and the JSON object sent with it.
Answer = tuple[int, JSONObject]
Credentials = Mapping[str, str]

DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "hellotext": {"API_TOKEN": "sandbox-hellotext-token"},
    "hackle": {"API_KEY": "sandbox-hackle-key"},
    "browsee": {"API_KEY": "sandbox-browsee-key"},
    "primedata": {"CLIENT_ID": "sandbox-client", "ACCESS_TOKEN": "sandbox-primedata-token"},
}


@dataclass(frozen=True)
class Incoming:
    """One request as the validators see it.

    ``headers`` has lower-case names. ``body`` is the JSON object sent, or
    None with ``body_problem`` saying why (wrong Content-Type, not JSON, not
    an object): every vendor documents a JSON-object body, and each answers
    that problem in its own error shape.
    """

    headers: Mapping[str, str]
    body: JSONObject | None
    body_problem: str | None


Validator = Callable[[Incoming, Credentials], Answer | None]
Success = Callable[[Incoming], Answer]


@dataclass(frozen=True)
class Endpoint:
    """A documented route: ``validate`` returns the rejection or None when valid."""

    method: str
    path: str
    validate: Validator
    success: Success
    #: The answer the vendor's older docs showed; None when it never changed.
    legacy_success: Success | None = None


@dataclass(frozen=True)
class VendorSpec:
    """A vendor served under ``/<name>``."""

    name: str
    endpoints: tuple[Endpoint, ...]
    #: The vendor's error body for a message (malformed bodies, injected faults).
    error_body: Callable[[str], JSONObject]
    #: The event payloads a request carries (PrimeData batches, others send one).
    events: Callable[[JSONObject], list[JSONObject]]


def _is_aware_iso8601(value: object) -> bool:
    """An ISO-8601 string with ``Z`` or an offset: a naive time is ambiguous to every vendor."""
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_number(value: object) -> bool:
    # JSON true/false parse to bool, a subclass of int; no vendor means those.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_nonempty_string(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _single_event(body: JSONObject) -> list[JSONObject]:
    return [body]


# --- Hellotext (VENDORS.md 1.2, 1.3, 1.6) -----------------------------------------------------

HELLOTEXT_KEYS = frozenset(
    {
        "action",
        "profile",
        "session",
        "object",
        "object_parameters",
        "object_type",
        "amount",
        "currency",
        "tracked_at",
        "metadata",
        "url",
    }
)
#: Keys of the old docs that the current page forbids, with their replacement.
HELLOTEXT_LEGACY_KEYS = {
    "profile_id": "profile",
    "session_id": "session",
    "product": "object",
    "product_id": "object",
}
_HELLOTEXT_UNAUTHORIZED: Answer = (
    401,
    {"errors": [{"type": "unauthorized", "message": "Invalid or missing token"}]},
)

#: (error type, message, parameter) of a Hellotext 422.
_HellotextProblem = tuple[str, str, str]


def _hellotext_error_body(message: str) -> JSONObject:
    return {"errors": [{"type": "invalid", "message": message}]}


def _hellotext_authorized(incoming: Incoming, credentials: Credentials) -> bool:
    return incoming.headers.get("authorization") == f"Bearer {credentials['API_TOKEN']}"


def _hellotext_problem(body: JSONObject) -> _HellotextProblem | None:
    for key, replacement in HELLOTEXT_LEGACY_KEYS.items():
        if key in body:
            return "invalid", f"{key} is no longer supported; send {replacement}", key
    for key in body:
        if key not in HELLOTEXT_KEYS:
            return "invalid", f"{key} is not a known parameter", key
    action = body.get("action")
    if action is None or action == "":
        return "parameter_missing", "action is missing", "action"
    if not isinstance(action, str):
        return "invalid", "action must be a string", "action"
    for key in ("profile", "session", "object", "object_type", "currency", "url"):
        if key in body and not _is_nonempty_string(body[key]):
            return "invalid", f"{key} must be a non-empty string", key
    if "profile" not in body and "session" not in body:
        return "parameter_missing", "profile or session is missing", "profile"
    for key in ("object_parameters", "metadata"):
        if key in body and not isinstance(body[key], dict):
            return "invalid", f"{key} must be an object", key
    if "amount" in body and not _is_number(body["amount"]):
        return "invalid", "amount must be a number", "amount"
    if "currency" in body and "amount" not in body:
        return "parameter_missing", "amount is required when currency is sent", "amount"
    tracked_at = body.get("tracked_at")
    is_epoch_seconds = isinstance(tracked_at, int) and not isinstance(tracked_at, bool)
    if "tracked_at" in body and not (is_epoch_seconds or _is_aware_iso8601(tracked_at)):
        message = "tracked_at must be an ISO-8601 time with an offset or Z, or epoch seconds"
        return "invalid", message, "tracked_at"
    if action == "page.viewed" and "url" not in body:
        return "parameter_missing", "url is required for page.viewed", "url"
    return None


def validate_hellotext_event(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/attribution/events``: bearer token, then the current body contract."""
    if not _hellotext_authorized(incoming, credentials):
        return _HELLOTEXT_UNAUTHORIZED
    if incoming.body is None:
        return 400, _hellotext_error_body(str(incoming.body_problem))
    problem = _hellotext_problem(incoming.body)
    if problem is None:
        return None
    error_type, message, parameter = problem
    return 422, {"errors": [{"type": error_type, "message": message, "parameter": parameter}]}


def validate_hellotext_profiles(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``GET /v1/profiles``: the documented way to check a token."""
    return None if _hellotext_authorized(incoming, credentials) else _HELLOTEXT_UNAUTHORIZED


# --- Hackle (VENDORS.md 2.2, 2.3, 2.5) --------------------------------------------------------

HACKLE_MAX_KEY_LENGTH = 128
HACKLE_MAX_EVENT_PROPERTIES = 64
HACKLE_MAX_USER_PROPERTIES = 128
HACKLE_MAX_STRING_VALUE = 1024
HACKLE_MAX_IDENTIFIER_VALUE = 512


def _hackle_scalar_ok(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= HACKLE_MAX_STRING_VALUE
    return isinstance(value, bool) or _is_number(value)


def _hackle_properties_problem(properties: object, field: str, limit: int) -> str | None:
    """Property rules from the SDK docs: the HTTP docs give none, the SDKs enforce these."""
    if not isinstance(properties, dict):
        return f"{field} must be an object"
    if len(properties) > limit:
        return f"{field} has {len(properties)} properties; at most {limit} are allowed"
    for key, value in properties.items():
        if len(key) > HACKLE_MAX_KEY_LENGTH:
            return f"{field} keys must be at most {HACKLE_MAX_KEY_LENGTH} characters"
        values = value if isinstance(value, list) else [value]
        if not all(_hackle_scalar_ok(item) for item in values):
            return (
                f"{field}.{key} must be a string (at most {HACKLE_MAX_STRING_VALUE} characters), "
                "number, boolean or an array of those"
            )
    return None


def _hackle_event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "event is required and must be an object"
    key = event.get("key")
    if not _is_nonempty_string(key):
        return "event.key is required and must be a non-empty string"
    if len(key) > HACKLE_MAX_KEY_LENGTH:
        return f"event.key must be at most {HACKLE_MAX_KEY_LENGTH} characters"
    if "value" in event and not _is_number(event["value"]):
        return "event.value must be a number"
    if "properties" in event:
        return _hackle_properties_problem(
            event["properties"], "event.properties", HACKLE_MAX_EVENT_PROPERTIES
        )
    return None


def _hackle_user_problem(user: object) -> str | None:
    if not isinstance(user, dict):
        return "user is required and must be an object"
    for key in ("id", "userId", "deviceId"):
        if key in user and not isinstance(user[key], str):
            return f"user.{key} must be a string"
    identifiers = user.get("identifiers", {})
    if not isinstance(identifiers, dict):
        return "user.identifiers must be an object"
    for key, value in identifiers.items():
        if len(key) > HACKLE_MAX_KEY_LENGTH:
            return f"user.identifiers keys must be at most {HACKLE_MAX_KEY_LENGTH} characters"
        if not isinstance(value, str) or len(value) > HACKLE_MAX_IDENTIFIER_VALUE:
            return (
                f"user.identifiers.{key} must be a string of at most "
                f"{HACKLE_MAX_IDENTIFIER_VALUE} characters"
            )
    if not (user.get("userId") or user.get("deviceId") or any(identifiers.values())):
        return (
            "user needs userId, deviceId or a non-empty identifiers entry "
            "(user.id is deprecated and does not count)"
        )
    if "properties" in user:
        return _hackle_properties_problem(
            user["properties"], "user.properties", HACKLE_MAX_USER_PROPERTIES
        )
    return None


def validate_hackle_track(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/track``: ``X-HACKLE-API-KEY``, one event, a user with an identifier."""
    if incoming.headers.get("x-hackle-api-key") != credentials["API_KEY"]:
        return 401, {"message": "Unauthorized"}
    if incoming.body is None:
        return 400, {"message": str(incoming.body_problem)}
    problem = _hackle_event_problem(incoming.body.get("event")) or _hackle_user_problem(
        incoming.body.get("user")
    )
    return None if problem is None else (400, {"message": problem})


# --- Browsee (VENDORS.md 3.2, 3.3, 3.5) -------------------------------------------------------


def _browsee_failure(message: str) -> JSONObject:
    return {"status": "failure", "message": message}


def _browsee_problem(body: JSONObject) -> str | None:
    if not _is_nonempty_string(body.get("event")):
        return "event is required and must be a non-empty string"
    if "properties" in body and not isinstance(body["properties"], dict):
        return "properties must be an object"
    for key in ("userId", "anonymousId"):
        if key in body and not _is_nonempty_string(body[key]):
            return f"{key} must be a non-empty string"
    if "userId" not in body and "anonymousId" not in body:
        return "userId or anonymousId is required"
    if "timestamp" in body and not _is_aware_iso8601(body["timestamp"]):
        return "timestamp must be an ISO-8601 time with an offset or Z"
    return None


def validate_browsee_track(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /api/v1/track``: the key rides in the body, so a bad key is a 400 failure.

    VENDORS.md 3.9 leaves the status for a bad key open; the documented
    failure form is 400 ``{"status":"failure"}``, so that is what is answered.
    """
    if incoming.body is None:
        return 400, _browsee_failure(str(incoming.body_problem))
    if incoming.body.get("apiKey") != credentials["API_KEY"]:
        return 400, _browsee_failure("Invalid apiKey")
    problem = _browsee_problem(incoming.body)
    return None if problem is None else (400, _browsee_failure(problem))


# --- PrimeData (VENDORS.md 4.2, 4.3, 4.5) -----------------------------------------------------

PRIMEDATA_MAX_EVENTS = 500
_PRIMEDATA_TOO_SHORT = "String length must be greater than or equal to 1"


def _primedata_error_body(message: str) -> JSONObject:
    return {"error": {"message": message}}


def _primedata_invalid(field: str, description: str, message: str = "Schema is invalid") -> Answer:
    return 422, {
        "error": {"details": [{"field": field, "description": description}], "message": message}
    }


def _primedata_string_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "is required and must be a string"
    return _PRIMEDATA_TOO_SHORT if value == "" else None


def _primedata_entity_problem(entity: object, field: str, client_id: str) -> Answer | None:
    if not isinstance(entity, dict):
        return _primedata_invalid(field, "is required and must be an object")
    for key in ("itemId", "itemType"):
        description = _primedata_string_problem(entity.get(key))
        if description is not None:
            return _primedata_invalid(f"{field}.{key}", description)
    if entity.get("scope") != client_id:
        return _primedata_invalid(
            f"{field}.scope", "must equal X-Client-ID", message="scope is not exists"
        )
    if "properties" in entity and not isinstance(entity["properties"], dict):
        return _primedata_invalid(f"{field}.properties", "must be an object")
    return None


def _primedata_event_problem(event: object, field: str, client_id: str) -> Answer | None:
    if not isinstance(event, dict):
        return _primedata_invalid(field, "must be an object")
    description = _primedata_string_problem(event.get("eventType"))
    if description is not None:
        return _primedata_invalid(f"{field}.eventType", description)
    if event.get("scope") != client_id:
        return _primedata_invalid(
            f"{field}.scope", "must equal X-Client-ID", message="scope is not exists"
        )
    if not _is_aware_iso8601(event.get("timeStamp")):
        return _primedata_invalid(
            f"{field}.timeStamp", "is required: an ISO-8601 time with an offset or Z"
        )
    if "sendAt" in event and not _is_aware_iso8601(event["sendAt"]):
        return _primedata_invalid(f"{field}.sendAt", "must be an ISO-8601 time with an offset or Z")
    if "sessionId" in event and not isinstance(event["sessionId"], str):
        return _primedata_invalid(f"{field}.sessionId", "must be a string")
    if "properties" in event and not isinstance(event["properties"], dict):
        return _primedata_invalid(f"{field}.properties", "must be an object")
    return _primedata_entity_problem(
        event.get("source"), f"{field}.source", client_id
    ) or _primedata_entity_problem(event.get("target"), f"{field}.target", client_id)


def validate_primedata_smile(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /powehi/smile``: both client headers, then up to 500 well-formed events."""
    client_id = credentials["CLIENT_ID"]
    if (
        incoming.headers.get("x-client-id") != client_id
        or incoming.headers.get("x-client-access-token") != credentials["ACCESS_TOKEN"]
    ):
        return 401, _primedata_error_body("client: unauthorized")
    body = incoming.body
    if body is None:
        return 400, _primedata_error_body(str(incoming.body_problem))
    if "sessionId" in body and not isinstance(body["sessionId"], str):
        return _primedata_invalid("sessionId", "must be a string")
    if "sendAt" in body and not _is_aware_iso8601(body["sendAt"]):
        return _primedata_invalid("sendAt", "must be an ISO-8601 time with an offset or Z")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return _primedata_invalid("events", "is required and must be a non-empty array")
    if len(events) > PRIMEDATA_MAX_EVENTS:
        return _primedata_invalid(
            "events", f"must contain at most {PRIMEDATA_MAX_EVENTS} items, got {len(events)}"
        )
    for index, event in enumerate(events):
        problem = _primedata_event_problem(event, f"events[{index}]", client_id)
        if problem is not None:
            return problem
    return None


def _primedata_events(body: JSONObject) -> list[JSONObject]:
    events = body.get("events")
    return (
        [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []
    )


def _primedata_success(incoming: Incoming) -> Answer:
    events = _primedata_events(incoming.body or {})
    return 200, {"processedEvents": len(events), "profileId": None}


# --- The table --------------------------------------------------------------------------------

VENDORS: dict[str, VendorSpec] = {
    "hellotext": VendorSpec(
        name="hellotext",
        endpoints=(
            Endpoint(
                "POST",
                "/v1/attribution/events",
                validate_hellotext_event,
                success=lambda incoming: (200, {"status": "received"}),
                legacy_success=lambda incoming: (201, {"state": "ok"}),
            ),
            Endpoint(
                "GET",
                "/v1/profiles",
                validate_hellotext_profiles,
                success=lambda incoming: (200, {"data": []}),
            ),
        ),
        error_body=_hellotext_error_body,
        events=_single_event,
    ),
    "hackle": VendorSpec(
        name="hackle",
        endpoints=(
            Endpoint(
                "POST", "/v1/track", validate_hackle_track, success=lambda incoming: (200, {})
            ),
        ),
        error_body=lambda message: {"message": message},
        events=_single_event,
    ),
    "browsee": VendorSpec(
        name="browsee",
        endpoints=(
            Endpoint(
                "POST",
                "/api/v1/track",
                validate_browsee_track,
                success=lambda incoming: (200, {"status": "success"}),
            ),
        ),
        error_body=_browsee_failure,
        events=_single_event,
    ),
    "primedata": VendorSpec(
        name="primedata",
        endpoints=(
            Endpoint(
                "POST",
                "/powehi/smile",
                validate_primedata_smile,
                success=_primedata_success,
                legacy_success=lambda incoming: (200, {"updated": 0}),
            ),
        ),
        error_body=_primedata_error_body,
        events=_primedata_events,
    ),
}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_incoming(headers: Mapping[str, str], raw: bytes) -> tuple[Incoming, Any]:
    """The validators' view of a request, and the parsed JSON (any type) for the record.

    The Content-Type check comes first so a library that forgets the header
    is told so even when its body happens to be valid JSON.
    """
    parsed: Any = None
    problem: str | None = None
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant) if raw else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors.
        problem = "body is not valid JSON"
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        problem = "Content-Type must be application/json"
    elif problem is None and not isinstance(parsed, dict):
        problem = "body must be a JSON object"
    body = parsed if problem is None else None
    return Incoming(headers=headers, body=body, body_problem=problem), parsed
