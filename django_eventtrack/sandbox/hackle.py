"""Hackle as the sandbox serves it (``docs/vendors/hackle.md``): ``POST /v1/track`` and
``POST /v1/properties``, keyed by ``X-HACKLE-API-KEY``.

The HTTP docs list the fields; the limits on keys, properties and numbers come from
Hackle's SDK docs, which enforce them. Anything else is refused with a 400, as Hackle does.
Where the docs are silent, the stricter reading: an array holding a boolean (Hackle's SDKs
drop those) and an empty ``$set``/``$setOnce``/``$unset`` are refused.
"""

from __future__ import annotations

from django_eventtrack.sandbox.spec import (
    Answer,
    Credentials,
    Endpoint,
    Incoming,
    JSONObject,
    VendorSpec,
    is_nonempty_string,
    is_number,
    single_event,
    unknown_key,
)

HACKLE_MAX_KEY_LENGTH = 128
HACKLE_MAX_EVENT_PROPERTIES = 64
HACKLE_MAX_USER_PROPERTIES = 128
HACKLE_MAX_STRING_VALUE = 1024
HACKLE_MAX_IDENTIFIER_VALUE = 512


#: What a Hackle request body and its objects may hold.
HACKLE_BODY_KEYS = frozenset({"event", "user"})
HACKLE_EVENT_KEYS = frozenset({"key", "value", "properties"})
HACKLE_USER_KEYS = frozenset({"id", "userId", "deviceId", "identifiers", "properties"})
#: Hackle numbers: at most 15 integer digits and 6 decimal places.
HACKLE_NUMBER_LIMIT = 10**15
HACKLE_DECIMAL_PLACES = 6


def _hackle_number_ok(value: float) -> bool:
    if abs(value) >= HACKLE_NUMBER_LIMIT:
        return False
    return isinstance(value, int) or round(value, HACKLE_DECIMAL_PLACES) == value


def _hackle_scalar_ok(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= HACKLE_MAX_STRING_VALUE
    if isinstance(value, bool):
        return True
    return is_number(value) and _hackle_number_ok(value)


def _hackle_properties_problem(properties: object, field: str, limit: int) -> str | None:
    """Property rules from the SDK docs: the HTTP docs give none, the SDKs enforce these."""
    if not isinstance(properties, dict):
        return f"{field} must be an object"
    if len(properties) > limit:
        return f"{field} has {len(properties)} properties; at most {limit} are allowed"
    seen: set[str] = set()
    for key, value in properties.items():
        if len(key) > HACKLE_MAX_KEY_LENGTH:
            return f"{field} keys must be at most {HACKLE_MAX_KEY_LENGTH} characters"
        if key.casefold() in seen:
            return f"{field}.{key} repeats another key but for case; Hackle's keys ignore case"
        seen.add(key.casefold())
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            return f"{field}.{key} is an array holding a boolean; arrays hold strings and numbers"
        values = value if isinstance(value, list) else [value]
        if not all(_hackle_scalar_ok(item) for item in values):
            return (
                f"{field}.{key} must be a string (at most {HACKLE_MAX_STRING_VALUE} characters), "
                "number (at most 15 integer digits and 6 decimal places), boolean or an array "
                "of strings and numbers"
            )
    return None


def _hackle_event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "event is required and must be an object"
    unknown = unknown_key(event, HACKLE_EVENT_KEYS, "event")
    if unknown is not None:
        return unknown
    key = event.get("key")
    if not is_nonempty_string(key):
        return "event.key is required and must be a non-empty string"
    if len(key) > HACKLE_MAX_KEY_LENGTH:
        return f"event.key must be at most {HACKLE_MAX_KEY_LENGTH} characters"
    if "value" in event and not (is_number(event["value"]) and _hackle_number_ok(event["value"])):
        return "event.value must be a number (at most 15 integer digits and 6 decimal places)"
    if "properties" in event:
        return _hackle_properties_problem(
            event["properties"], "event.properties", HACKLE_MAX_EVENT_PROPERTIES
        )
    return None


def _hackle_user_problem(user: object) -> str | None:
    if not isinstance(user, dict):
        return "user is required and must be an object"
    unknown = unknown_key(user, HACKLE_USER_KEYS, "user")
    if unknown is not None:
        return unknown
    for key in ("id", "userId", "deviceId"):
        if key in user and not isinstance(user[key], str):
            return f"user.{key} must be a string"
    identifiers = user.get("identifiers", {})
    problem = _hackle_identifiers_problem(identifiers)
    if problem is not None:
        return problem
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


def _hackle_identifiers_problem(identifiers: object) -> str | None:
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
    return None


def validate_hackle_track(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/track``: ``X-HACKLE-API-KEY``, one event, a user with an identifier."""
    if incoming.headers.get("x-hackle-api-key") != credentials["API_KEY"]:
        return 401, {"message": "Unauthorized"}
    if incoming.body is None:
        return 400, {"message": str(incoming.body_problem)}
    problem = (
        unknown_key(incoming.body, HACKLE_BODY_KEYS, "")
        or _hackle_event_problem(incoming.body.get("event"))
        or _hackle_user_problem(incoming.body.get("user"))
    )
    return None if problem is None else (400, {"message": problem})


HACKLE_OPERATIONS = ("$set", "$setOnce", "$unset")
HACKLE_PROPERTIES_KEYS = frozenset({"userId", "deviceId", "phoneNumber", "operations"})


def validate_hackle_properties(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/properties``: ``userId`` or ``deviceId`` and ``$set``/``$setOnce``/``$unset``."""
    if incoming.headers.get("x-hackle-api-key") != credentials["API_KEY"]:
        return 401, {"message": "Unauthorized"}
    body = incoming.body
    if body is None:
        return 400, {"message": str(incoming.body_problem)}
    problem = _hackle_properties_body_problem(body)
    return None if problem is None else (400, {"message": problem})


def _hackle_properties_body_problem(body: JSONObject) -> str | None:
    unknown = unknown_key(body, HACKLE_PROPERTIES_KEYS, "")
    if unknown is not None:
        return unknown
    for key in ("userId", "deviceId"):
        if key in body and not is_nonempty_string(body[key]):
            return f"{key} must be a non-empty string"
    if "userId" not in body and "deviceId" not in body:
        return "userId or deviceId is required"
    operations = body.get("operations")
    if not isinstance(operations, dict) or not operations:
        return "operations is required: an object with $set, $setOnce or $unset"
    for name, properties in operations.items():
        if name not in HACKLE_OPERATIONS:
            return f"unknown operation {name!r}"
        if properties == {}:
            return f"operations.{name} is empty: give it at least one property"
        problem = _hackle_properties_problem(
            properties, f"operations.{name}", HACKLE_MAX_USER_PROPERTIES
        )
        if problem is not None:
            return problem
    return None


HACKLE = VendorSpec(
    name="hackle",
    endpoints=(
        Endpoint("POST", "/v1/track", validate_hackle_track, success=lambda incoming: (200, {})),
        Endpoint(
            "POST",
            "/v1/properties",
            validate_hackle_properties,
            success=lambda incoming: (200, {}),
        ),
    ),
    error_body=lambda message: {"message": message},
    events=single_event,
    credentials={"API_KEY": "sandbox-hackle-key"},
)
