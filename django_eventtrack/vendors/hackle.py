"""Hackle: ``POST /v1/track``, one event per request, keyed by ``X-HACKLE-API-KEY``.

The body is ``{"event": {"key", "value"?, "properties"}, "user": {...}}``
(VENDORS.md §2.3). Hackle documents no timestamp field, so events are stamped
when they arrive (§2.7).

Properties are fitted to Hackle's documented limits (§2.3) here, so a request
is never refused for its shape:

* a numeric ``value`` property becomes ``event.value``, Hackle's one number
  per event; any other ``value`` stays a property;
* ``None`` values and keys longer than 128 characters are dropped, and so is a
  key that differs from an earlier one only in case (Hackle's keys are
  case-insensitive);
* strings, numbers, booleans and lists of those are kept; dicts and lists
  holding anything else are sent as compact JSON strings;
* strings (including those JSON strings) are cut to 1024 characters;
* numbers keep at most 6 decimal places, and a number with more than 15 integer
  digits (which Hackle cannot hold) is sent as a string;
* at most 64 properties are sent: the first 64, in the caller's order.

The user is ``userId`` (our user id), ``deviceId`` (the Hackle browser SDK's
device id) and the custom identifier ``identifiers.anonymousId``, the visitor
id shared by all vendors (:attr:`Identity.visitor_id`: the Hellotext session,
else our anonymous id, else the Hellotext profile), so Hackle's events join the
other vendors' on one key. Identifier values longer than 512 characters are
not used (§2.3).

``identify()`` becomes ``POST /v1/properties`` (§2.1): the user's traits as a
``$set`` operation on ``userId`` (plus ``deviceId`` when known), fitted to the
same limits as event properties. Hackle applies them to later events only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import ClassVar

from django_eventtrack.event import Event, Identity, JSONValue
from django_eventtrack.vendors.base import JSONObject, VendorAdapter

MAX_EVENT_KEY_LENGTH = 128
MAX_PROPERTIES = 64
MAX_PROPERTY_KEY_LENGTH = 128
MAX_STRING_LENGTH = 1024
MAX_IDENTIFIER_LENGTH = 512
#: Hackle numbers: up to 15 integer and 6 decimal digits (VENDORS.md §2.3).
NUMBER_LIMIT = 10**15
DECIMAL_PLACES = 6

Scalar = str | int | float | bool


class HackleAdapter(VendorAdapter):
    """Hackle's public HTTP track API, with the server SDK key."""

    name: ClassVar[str] = "hackle"
    display_name: ClassVar[str] = "Hackle"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_KEY",)
    default_api_url: ClassVar[str] = "https://api.hackle.io"
    path: ClassVar[str] = "/v1/track"
    identify_path: ClassVar[str] = "/v1/properties"

    def headers(self) -> dict[str, str]:
        return {"X-HACKLE-API-KEY": self.config.credential("API_KEY")}

    def skip_reason(self, event: Event) -> str | None:
        if not _user(event.identity):
            return "Hackle needs at least one identifier (user_id, device_id or anonymous_id)"
        if len(self.vendor_event_name(event)) > MAX_EVENT_KEY_LENGTH:
            return f"Hackle event keys are at most {MAX_EVENT_KEY_LENGTH} characters"
        return None

    def body(self, events: Sequence[Event]) -> JSONObject:
        (event,) = events
        properties = dict(event.properties)
        hackle_event: JSONObject = {"key": self.vendor_event_name(event)}
        value = properties.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and _fits(value):
            hackle_event["value"] = _fit_scalar(value)
            del properties["value"]
        hackle_event["properties"] = _fit_properties(properties)
        return {"event": hackle_event, "user": _user(event.identity)}

    def identify_skip_reason(self, event: Event) -> str | None:
        if _usable(event.identity.user_id):
            return None
        return f"Hackle user ids are 1 to {MAX_IDENTIFIER_LENGTH} characters"

    def identify_body(self, event: Event) -> JSONObject:
        user = _user(event.identity)
        body: JSONObject = {"userId": user["userId"]}
        if "deviceId" in user:
            body["deviceId"] = user["deviceId"]
        return body | {"operations": {"$set": _fit_properties(event.properties)}}


def _user(identity: Identity) -> JSONObject:
    """Hackle's user object, empty when we know nobody (Hackle then answers 400)."""
    user: JSONObject = {}
    if user_id := _usable(identity.user_id):
        user["userId"] = user_id
    if device_id := _usable(identity.device_id):
        user["deviceId"] = device_id
    if visitor_id := _usable(identity.visitor_id):
        user["identifiers"] = {"anonymousId": visitor_id}
    return user


def _usable(identifier: str | None) -> str | None:
    """The identifier when Hackle takes it: non-empty and at most 512 characters."""
    return identifier if identifier and len(identifier) <= MAX_IDENTIFIER_LENGTH else None


def _fit_properties(properties: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    fitted: dict[str, JSONValue] = {}
    seen: set[str] = set()
    for key, value in properties.items():
        if len(fitted) == MAX_PROPERTIES:
            break
        if value is None or len(key) > MAX_PROPERTY_KEY_LENGTH or key.casefold() in seen:
            continue
        seen.add(key.casefold())
        fitted[key] = _fit_value(value)
    return fitted


def _fit_value(value: JSONValue) -> JSONValue:
    if isinstance(value, Scalar):
        return _fit_scalar(value)
    if isinstance(value, list):
        scalars: list[JSONValue] = [_fit_scalar(item) for item in value if isinstance(item, Scalar)]
        if len(scalars) == len(value):
            return scalars
    return _fit_scalar(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _fit_scalar(value: Scalar) -> Scalar:
    if isinstance(value, str):
        return value[:MAX_STRING_LENGTH]
    if isinstance(value, bool):
        return value
    if not _fits(value):
        return str(value)
    return round(value, DECIMAL_PLACES) if isinstance(value, float) else value


def _fits(number: int | float) -> bool:
    """Whether Hackle can hold ``number``: at most 15 integer digits."""
    return abs(number) < NUMBER_LIMIT
