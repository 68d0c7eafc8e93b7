"""What each vendor accepts and answers, as the project's vendor notes
(``docs/vendors/*.md``) document the current contract.

One validator per vendor endpoint and one :class:`VendorSpec` per vendor
(:data:`HELLOTEXT`, :data:`HACKLE`, :data:`BROWSEE`, :data:`PRIMEDATA`) naming
its documented paths, validators, success answers, test credentials and what it
remembers. Each vendor's adapter points at its spec (``VendorAdapter.sandbox``),
so the server serves whatever the registry lists and names no vendor itself.
Validators are strict on purpose: the sandbox exists so the library's mistakes
show up locally as the vendor's own 4xx answer, not in production. Whatever a
vendor documents as refused is refused here, and nothing is accepted that its
documentation does not allow.

Validators are pure (a request in, an answer out); what the vendors remember
between requests (Hellotext's profiles, sessions, objects and custom actions,
PrimeData's registered schemas) lives in :mod:`django_eventtrack.sandbox.state`,
and the success answers consult it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from django_eventtrack.sandbox.state import (
    Answer,
    HellotextDirectory,
    JSONObject,
    PrimeDataSchemas,
    hellotext_error,
)

Credentials = Mapping[str, str]


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
    #: The vendor path (``/v1/sessions/abc``), for endpoints with an id in it.
    path: str = ""
    #: What the vendor remembers between requests (its spec's ``state``), if anything.
    state: Any = None


Validator = Callable[[Incoming, Credentials], Answer | None]
Success = Callable[[Incoming], Answer]


@dataclass(frozen=True)
class Endpoint:
    """A documented route: ``validate`` returns the rejection or None when valid."""

    method: str
    path: str
    validate: Validator
    #: The answer to a valid request; stateful endpoints may still refuse here
    #: (an unknown Hellotext profile), so only a 2xx counts as accepted.
    success: Success
    #: The answer the vendor's older docs showed instead of a 2xx ``success``; None
    #: when it never changed.
    legacy_success: Success | None = None

    def matches(self, path: str) -> bool:
        """``path`` is this endpoint's; a trailing ``{id}`` segment matches any one segment."""
        head, brace, _ = self.path.partition("{")
        if not brace:
            return path == self.path
        rest = path[len(head) :]
        return path.startswith(head) and rest != "" and "/" not in rest


@dataclass(frozen=True)
class StateOption:
    """A setting of what a vendor remembers: ``Sandbox(options={vendor: {keyword: ...}})``,
    or ``--<vendor>-<flag>`` (repeatable) on the command line."""

    flag: str
    keyword: str
    metavar: str
    help: str
    #: The command line's default: ``[]`` or None (then unset unless given).
    default: list[str] | None = field(default_factory=list)


@dataclass(frozen=True)
class VendorSpec:
    """A vendor served under ``/<name>``."""

    name: str
    endpoints: tuple[Endpoint, ...]
    #: The vendor's error body for a message (malformed bodies, injected faults).
    error_body: Callable[[str], JSONObject]
    #: The event payloads a request carries (PrimeData batches, others send one).
    events: Callable[[JSONObject], list[JSONObject]]
    #: The credentials the sandbox accepts unless told others.
    credentials: Mapping[str, str]
    #: Builds what the vendor remembers between requests from its ``options``; the
    #: object's ``clear()`` forgets all but those.
    state: Callable[..., Any] | None = None
    options: tuple[StateOption, ...] = ()

    @property
    def has_legacy(self) -> bool:
        """Whether some endpoint answers differently in legacy mode."""
        return any(endpoint.legacy_success is not None for endpoint in self.endpoints)


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


# --- Hellotext (docs/vendors/hellotext.md) ----------------------------------------------------

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
    """The first thing Hellotext refuses in an event body, checked in Hellotext's order."""
    return (
        _hellotext_key_problem(body)
        or _hellotext_field_problem(body)
        or _hellotext_combination_problem(body)
    )


def _hellotext_key_problem(body: JSONObject) -> _HellotextProblem | None:
    """A key of the old docs, or one the current page does not list."""
    for key, replacement in HELLOTEXT_LEGACY_KEYS.items():
        if key in body:
            return "invalid", f"{key} is no longer supported; send {replacement}", key
    for key in body:
        if key not in HELLOTEXT_KEYS:
            return "invalid", f"{key} is not a known parameter", key
    return None


def _hellotext_field_problem(body: JSONObject) -> _HellotextProblem | None:
    """A field of the wrong type, each on its own."""
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
    return None


def _hellotext_combination_problem(body: JSONObject) -> _HellotextProblem | None:
    """Fields that need another (a currency its amount, page.viewed its url), and the time."""
    if "currency" in body and "amount" not in body:
        return "parameter_missing", "amount is required when currency is sent", "amount"
    tracked_at = body.get("tracked_at")
    is_epoch_seconds = isinstance(tracked_at, int) and not isinstance(tracked_at, bool)
    if "tracked_at" in body and not (is_epoch_seconds or _is_aware_iso8601(tracked_at)):
        message = "tracked_at must be an ISO-8601 time with an offset or Z, or epoch seconds"
        return "invalid", message, "tracked_at"
    if body.get("action") == "page.viewed" and "url" not in body:
        return "parameter_missing", "url is required for page.viewed", "url"
    return None


def _hellotext_unreadable(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """The answer to a request without the private token or without a JSON object."""
    if not _hellotext_authorized(incoming, credentials):
        return _HELLOTEXT_UNAUTHORIZED
    if incoming.body is None:
        return 400, _hellotext_error_body(str(incoming.body_problem))
    return None


def _hellotext_invalid(message: str, parameter: str | None = None, kind: str = "invalid") -> Answer:
    return hellotext_error(422, kind, message, parameter)


def validate_hellotext_event(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/attribution/events``: bearer token, then the current body contract."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    problem = _hellotext_problem(incoming.body)
    if problem is None:
        return None
    error_type, message, parameter = problem
    return _hellotext_invalid(message, parameter, error_type)


def validate_hellotext_profiles(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``GET /v1/profiles``: the documented way to check a token."""
    return None if _hellotext_authorized(incoming, credentials) else _HELLOTEXT_UNAUTHORIZED


#: Fields ``POST /v1/profiles`` takes and the JSON types they hold.
HELLOTEXT_PROFILE_FIELDS: dict[str, tuple[type, ...]] = {
    "first_name": (str,),
    "last_name": (str,),
    "email": (str, dict),
    "phone": (str, dict),
    "reference": (str,),
    "lists": (list,),
    "session": (str,),
    "property_by_id": (dict,),
}


def validate_hellotext_profile_create(
    incoming: Incoming, credentials: Credentials
) -> Answer | None:
    """``POST /v1/profiles``: private token; known fields of the right JSON types."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    for key, value in incoming.body.items():
        types = HELLOTEXT_PROFILE_FIELDS.get(key)
        if types is None:
            return _hellotext_invalid(f"unknown profile field {key!r}", key)
        if not isinstance(value, types):
            return _hellotext_invalid(f"{key} has the wrong type", key)
    if not any(incoming.body.get(key) for key in ("email", "phone", "reference")):
        return _hellotext_invalid("a profile needs an email, phone or reference")
    return None


def validate_hellotext_session_attach(
    incoming: Incoming, credentials: Credentials
) -> Answer | None:
    """``PATCH /v1/sessions/{id}``: private token and ``{"profile": "<id>"}``."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    if not _is_nonempty_string(incoming.body.get("profile")):
        return _hellotext_invalid("profile is required and must be a profile id", "profile")
    return None


def _hellotext_attach(incoming: Incoming) -> Answer:
    session = incoming.path.rsplit("/", 1)[-1]
    directory: HellotextDirectory = incoming.state
    return directory.attach(session, str((incoming.body or {})["profile"]))


def _hellotext_track(incoming: Incoming) -> Answer:
    """A well-formed event still needs an action, profile, session and object Hellotext knows."""
    directory: HellotextDirectory = incoming.state
    return directory.track(incoming.body or {})


# --- Hackle (docs/vendors/hackle.md) ----------------------------------------------------------

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
    return _is_number(value) and _hackle_number_ok(value)  # type: ignore[arg-type]


def _unknown_key(value: dict[str, Any], known: frozenset[str], field: str) -> str | None:
    unknown = sorted(set(value) - known)
    if not unknown:
        return None
    where = f"{field}.{unknown[0]}" if field else unknown[0]
    return f"{where} is not a documented field (expected some of {', '.join(sorted(known))})"


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
        values = value if isinstance(value, list) else [value]
        if not all(_hackle_scalar_ok(item) for item in values):
            return (
                f"{field}.{key} must be a string (at most {HACKLE_MAX_STRING_VALUE} characters), "
                "number (at most 15 integer digits and 6 decimal places), boolean or an array "
                "of those"
            )
    return None


def _hackle_event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "event is required and must be an object"
    unknown = _unknown_key(event, HACKLE_EVENT_KEYS, "event")
    if unknown is not None:
        return unknown
    key = event.get("key")
    if not _is_nonempty_string(key):
        return "event.key is required and must be a non-empty string"
    if len(key) > HACKLE_MAX_KEY_LENGTH:
        return f"event.key must be at most {HACKLE_MAX_KEY_LENGTH} characters"
    if "value" in event and not (_is_number(event["value"]) and _hackle_number_ok(event["value"])):
        return "event.value must be a number (at most 15 integer digits and 6 decimal places)"
    if "properties" in event:
        return _hackle_properties_problem(
            event["properties"], "event.properties", HACKLE_MAX_EVENT_PROPERTIES
        )
    return None


def _hackle_user_problem(user: object) -> str | None:
    if not isinstance(user, dict):
        return "user is required and must be an object"
    unknown = _unknown_key(user, HACKLE_USER_KEYS, "user")
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
        _unknown_key(incoming.body, HACKLE_BODY_KEYS, "")
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
    unknown = _unknown_key(body, HACKLE_PROPERTIES_KEYS, "")
    if unknown is not None:
        return unknown
    for key in ("userId", "deviceId"):
        if key in body and not _is_nonempty_string(body[key]):
            return f"{key} must be a non-empty string"
    if "userId" not in body and "deviceId" not in body:
        return "userId or deviceId is required"
    operations = body.get("operations")
    if not isinstance(operations, dict) or not operations:
        return "operations is required: an object with $set, $setOnce or $unset"
    for name, properties in operations.items():
        if name not in HACKLE_OPERATIONS:
            return f"unknown operation {name!r}"
        problem = _hackle_properties_problem(
            properties, f"operations.{name}", HACKLE_MAX_USER_PROPERTIES
        )
        if problem is not None:
            return problem
    return None


# --- Browsee (docs/vendors/browsee.md) --------------------------------------------------------


def _browsee_failure(message: str) -> JSONObject:
    return {"status": "failure", "message": message}


BROWSEE_TRACK_KEYS = frozenset(
    {"apiKey", "event", "properties", "userId", "anonymousId", "timestamp"}
)
BROWSEE_IDENTIFY_KEYS = frozenset({"apiKey", "userId", "anonymousId", "traits", "timestamp"})


def _browsee_problem(body: JSONObject) -> str | None:
    unknown = _unknown_key(body, BROWSEE_TRACK_KEYS, "")
    if unknown is not None:
        return unknown
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

    Browsee's docs leave the status for a bad key open; the documented
    failure form is 400 ``{"status":"failure"}``, so that is what is answered.
    """
    if incoming.body is None:
        return 400, _browsee_failure(str(incoming.body_problem))
    if incoming.body.get("apiKey") != credentials["API_KEY"]:
        return 400, _browsee_failure("Invalid apiKey")
    problem = _browsee_problem(incoming.body)
    return None if problem is None else (400, _browsee_failure(problem))


def validate_browsee_identify(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /api/v1/identify``: ``apiKey``, ``userId`` or ``anonymousId``, ``traits`` object."""
    body = incoming.body
    if body is None:
        return 400, _browsee_failure(str(incoming.body_problem))
    if body.get("apiKey") != credentials["API_KEY"]:
        return 400, _browsee_failure("Invalid apiKey")
    unknown = _unknown_key(body, BROWSEE_IDENTIFY_KEYS, "")
    if unknown is not None:
        return 400, _browsee_failure(unknown)
    for key in ("userId", "anonymousId"):
        if key in body and not _is_nonempty_string(body[key]):
            return 400, _browsee_failure(f"{key} must be a non-empty string")
    if "userId" not in body and "anonymousId" not in body:
        return 400, _browsee_failure("userId or anonymousId is required")
    if "traits" in body and not isinstance(body["traits"], dict):
        return 400, _browsee_failure("traits must be an object")
    if "timestamp" in body and not _is_aware_iso8601(body["timestamp"]):
        return 400, _browsee_failure("timestamp must be an ISO-8601 time with an offset or Z")
    return None


# --- PrimeData (docs/vendors/primedata.md) ----------------------------------------------------

PRIMEDATA_MAX_EVENTS = 500
_PRIMEDATA_TOO_SHORT = "String length must be greater than or equal to 1"
#: What a request, an event and an entity may hold (the docs, plus ``profileId`` and
#: the per-event ``itemType`` that PrimeData's PHP SDK sends).
PRIMEDATA_BODY_KEYS = frozenset({"sessionId", "events", "sendAt", "profileId"})
PRIMEDATA_EVENT_KEYS = frozenset(
    {"eventType", "scope", "timeStamp", "sendAt", "properties", "source", "target"}
    | {"sessionId", "profileId", "itemType"}
)
PRIMEDATA_ENTITY_KEYS = frozenset({"itemId", "itemType", "scope", "properties"})


def _primedata_unknown(value: dict[str, Any], known: frozenset[str], field: str) -> Answer | None:
    unknown = sorted(set(value) - known)
    if not unknown:
        return None
    where = f"{field}.{unknown[0]}" if field else unknown[0]
    return _primedata_invalid(where, "is not a field of the schema")


def _primedata_property_ok(value: object) -> bool:
    """A schema property is a boolean, number, string or array."""
    return isinstance(value, bool | str | list) or _is_number(value)


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
    unknown = _primedata_unknown(entity, PRIMEDATA_ENTITY_KEYS, field)
    if unknown is not None:
        return unknown
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
    return (
        _primedata_unknown(event, PRIMEDATA_EVENT_KEYS, field)
        or _primedata_event_fields_problem(event, field, client_id)
        or _primedata_properties_problem(event.get("properties", {}), f"{field}.properties")
        or _primedata_identify_problem(event, field)
        or _primedata_entity_problem(event.get("source"), f"{field}.source", client_id)
        or _primedata_entity_problem(event.get("target"), f"{field}.target", client_id)
    )


def _primedata_event_fields_problem(
    event: dict[str, Any], field: str, client_id: str
) -> Answer | None:
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
    return None


def _primedata_properties_problem(properties: object, field: str) -> Answer | None:
    if not isinstance(properties, dict):
        return _primedata_invalid(field, "must be an object")
    for key, value in properties.items():
        if not _primedata_property_ok(value):
            return _primedata_invalid(
                f"{field}.{key}", "must be a boolean, number, string or array"
            )
    return None


def _primedata_identify_problem(event: dict[str, Any], field: str) -> Answer | None:
    if event.get("eventType") != "identify":
        return None
    target = event.get("target")
    if not isinstance(target, dict) or target.get("itemType") != "analyticsUser":
        return _primedata_invalid(
            f"{field}.target.itemType", 'must be "analyticsUser" for identify'
        )
    return None


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
    unknown = _primedata_unknown(body, PRIMEDATA_BODY_KEYS, "")
    if unknown is not None:
        return unknown
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


def _primedata_processed(incoming: Incoming) -> int:
    """How many events PrimeData processes: those of a registered type; the others
    are dropped from the count, not refused."""
    events = _primedata_events(incoming.body or {})
    schemas: PrimeDataSchemas = incoming.state
    return sum(schemas.processes(event.get("eventType")) for event in events)


def _primedata_success(incoming: Incoming) -> Answer:
    return 200, {"processedEvents": _primedata_processed(incoming), "profileId": None}


def _primedata_context(incoming: Incoming) -> Answer:
    """``/powehi/context`` also answers the session's profile (its Android SDK reads
    ``profileId``)."""
    body = incoming.body or {}
    user = next(
        (
            event["target"].get("itemId")
            for event in _primedata_events(body)
            if event.get("eventType") == "identify"
        ),
        None,
    )
    return 200, {
        "processedEvents": _primedata_processed(incoming),
        "sessionId": body.get("sessionId"),
        "profileId": f"profile-{user}" if user else None,
    }


# --- The specs, one per vendor (each adapter's ``sandbox`` names its own) ---------------------

HELLOTEXT = VendorSpec(
    name="hellotext",
    endpoints=(
        Endpoint(
            "POST",
            "/v1/attribution/events",
            validate_hellotext_event,
            success=_hellotext_track,
            legacy_success=lambda incoming: (201, {"state": "ok"}),
        ),
        Endpoint(
            "GET",
            "/v1/profiles",
            validate_hellotext_profiles,
            success=lambda incoming: (200, {"data": []}),
        ),
        Endpoint(
            "POST",
            "/v1/profiles",
            validate_hellotext_profile_create,
            success=lambda incoming: incoming.state.create_profile(incoming.body or {}),
        ),
        Endpoint(
            "PATCH",
            "/v1/sessions/{session}",
            validate_hellotext_session_attach,
            success=_hellotext_attach,
        ),
    ),
    error_body=_hellotext_error_body,
    events=_single_event,
    credentials={"API_TOKEN": "sandbox-hellotext-token"},
    state=HellotextDirectory,
    options=(
        StateOption(
            "action",
            "actions",
            "ACTION",
            "a custom action the Hellotext business has created (lowercase noun.verb)",
        ),
    ),
)
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
    events=_single_event,
    credentials={"API_KEY": "sandbox-hackle-key"},
)
BROWSEE = VendorSpec(
    name="browsee",
    endpoints=(
        Endpoint(
            "POST",
            "/api/v1/track",
            validate_browsee_track,
            success=lambda incoming: (200, {"status": "success"}),
        ),
        Endpoint(
            "POST",
            "/api/v1/identify",
            validate_browsee_identify,
            success=lambda incoming: (200, {"status": "success"}),
        ),
    ),
    error_body=_browsee_failure,
    events=_single_event,
    credentials={"API_KEY": "sandbox-browsee-key"},
)
PRIMEDATA = VendorSpec(
    name="primedata",
    endpoints=(
        Endpoint(
            "POST",
            "/powehi/smile",
            validate_primedata_smile,
            success=_primedata_success,
            legacy_success=lambda incoming: (200, {"updated": 0}),
        ),
        Endpoint(
            "POST",
            "/powehi/context",
            validate_primedata_smile,
            success=_primedata_context,
        ),
    ),
    error_body=_primedata_error_body,
    events=_primedata_events,
    credentials={"CLIENT_ID": "sandbox-client", "ACCESS_TOKEN": "sandbox-primedata-token"},
    state=PrimeDataSchemas,
    options=(
        StateOption(
            "schema",
            "aliases",
            "ALIAS",
            "an event schema registered in PrimeData; once any is given, events of other "
            "types are left out of processedEvents",
            default=None,
        ),
    ),
)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_incoming(
    headers: Mapping[str, str], raw: bytes, path: str = "", state: Any = None
) -> tuple[Incoming, Any]:
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
    incoming = Incoming(
        headers=headers,
        body=body,
        body_problem=problem,
        path=path,
        state=state,
    )
    return incoming, parsed
