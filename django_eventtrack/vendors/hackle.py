"""Hackle: ``POST /v1/track``, one event per request, keyed by ``X-HACKLE-API-KEY``.

The body is ``{"event": {"key", "value"?, "properties"}, "user": {...}}``.
Hackle documents no timestamp field, so events are stamped when they arrive: an
event that happened longer than ``MAX_LATENESS`` ago (default an hour) is skipped
with the reason rather than recorded at the wrong time, and one sent a minute or
more after it happened says so on its delivery. What is sent field by field is in
``docs/vendors/hackle.md``.

Properties are fitted to Hackle's documented limits here, so a request is
never refused for its shape, and every change is noted on the delivery (and
logged once) instead of made silently:

* a numeric ``value`` property becomes ``event.value``, Hackle's one number
  per event; any other ``value`` stays a property;
* ``None`` values and keys longer than 128 characters are dropped, and so is a
  key that differs from an earlier one only in case (Hackle's keys are
  case-insensitive);
* strings, numbers, booleans and lists of strings and numbers are kept; dicts
  and lists holding anything else (booleans too: Hackle's SDKs drop those from
  arrays) are sent as compact JSON strings, or dropped when that JSON is longer
  than 1,024 characters (cut JSON is not JSON any more);
* plain strings are cut to 1,024 characters;
* numbers keep at most 6 decimal places, and a number with more than 15 integer
  digits (which Hackle cannot hold) is sent as a string;
* at most 64 properties are sent: the first 64, in the caller's order.

The user is ``userId`` (our user id), ``deviceId`` (the Hackle browser SDK's
device id) and the custom identifier ``identifiers.anonymousId``, the visitor
id shared by all vendors (:meth:`~VendorAdapter.visitor_id`), so Hackle's events
join the other vendors' on one key.

``identify()`` becomes ``POST /v1/properties``: the user's traits as a
``$set`` operation on ``userId`` (plus ``deviceId`` when known), fitted to the
same limits as event properties. Hackle applies them to later events only; a call
with no trait left to set is skipped (an empty ``$set`` is refused).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import ClassVar

from django.utils import timezone

from django_eventtrack.core.event import Identity, JSONValue, TrackedEvent
from django_eventtrack.vendors.base import (
    BrowserId,
    DeclaredEvent,
    JSONObject,
    Notes,
    Reshaped,
    VendorAdapter,
    named,
    note,
    spelled_duration,
)

MAX_EVENT_KEY_LENGTH = 128
MAX_PROPERTIES = 64
MAX_PROPERTY_KEY_LENGTH = 128
MAX_STRING_LENGTH = 1024
#: Hackle numbers: up to 15 integer and 6 decimal digits.
NUMBER_LIMIT = 10**15
DECIMAL_PLACES = 6

Scalar = str | int | float | bool
#: Default ``MAX_LATENESS``: an event that happened longer ago is not sent, since Hackle
#: would record it at its arrival. An hour keeps hourly charts at most one bucket off
#: and still outlasts a short outage's retries.
DEFAULT_MAX_LATENESS = 3600.0
#: Lateness from which the delivery says how late Hackle's recorded time is: below it,
#: ordinary sending delay (a worker's poll, a retry's first backoff).
NOTED_LATENESS = 60.0
#: The identity key of the Hackle browser SDK's device id.
DEVICE_ID = "device_id"
#: Hackle's docs declare ``const hackleClient = ...``: a global binding, not a window property.
_CLIENT = '(typeof hackleClient !== "undefined" ? hackleClient : window.hackleClient)'


def _scalar_items(schema: Mapping[str, object]) -> bool:
    """An array of strings, numbers or booleans (Hackle keeps those as they are)."""
    items = schema.get("items")
    declared = items.get("type") if isinstance(items, Mapping) else None
    scalar = {"string", "number", "integer", "boolean"}
    if isinstance(declared, str):
        return schema.get("type") == "array" and declared in scalar
    return False


class HackleAdapter(VendorAdapter):
    """Hackle's public HTTP track API, with the server SDK key."""

    name: ClassVar[str] = "hackle"
    display_name: ClassVar[str] = "Hackle"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_KEY",)
    default_api_url: ClassVar[str] = "https://api.hackle.io"
    #: Default ``PURPOSES``: what this vendor's events serve (see the privacy docs).
    default_purposes: ClassVar[tuple[str, ...]] = ("analytics",)
    path: ClassVar[str] = "/v1/track"
    identify_path: ClassVar[str] = "/v1/properties"
    browser_ids: ClassVar[tuple[BrowserId, ...]] = (
        BrowserId(
            DEVICE_ID,
            "Hackle device id",
            script_key="hackle_device_id",
            script=f"{_CLIENT}.getDeviceId()",
            script_ready=f"{_CLIENT}.onReady(collect)",
        ),
    )
    sandbox: ClassVar[str | None] = "django_eventtrack.sandbox.hackle.HACKLE"
    default_max_lateness: ClassVar[float | None] = DEFAULT_MAX_LATENESS
    lateness_why: ClassVar[str] = (
        "Hackle's HTTP API has no time field and would record it at its arrival"
    )

    def headers(self) -> dict[str, str]:
        return {"X-HACKLE-API-KEY": self.config.credential("API_KEY")}

    def skip_reason(self, event: TrackedEvent) -> str | None:
        if not self._user(event.identity):
            return "Hackle needs at least one identifier (user_id, device_id or anonymous_id)"
        return self.name_refusal(event.name)

    def name_refusal(self, name: str) -> str | None:
        if len(self.config.event_names.get(name, name)) > MAX_EVENT_KEY_LENGTH:
            return f"Hackle event keys are at most {MAX_EVENT_KEY_LENGTH} characters"
        return None

    def plan_notes(self, event: DeclaredEvent) -> list[str]:
        """Hackle's limits on keys, values and counts, for properties declared beyond them."""
        notes = super().plan_notes(event)
        names = list(event.properties)
        long_keys = [name for name in names if len(name) > MAX_PROPERTY_KEY_LENGTH]
        nested = [
            name
            for name in names
            if {"object", "array"} & set(event.declared_type(name))
            and not _scalar_items(event.properties[name])
        ]
        long_text = [
            name for name in names if event.properties[name].get("maxLength", 0) > MAX_STRING_LENGTH
        ]
        for found, what in (
            (long_keys, f"drops properties whose key is longer than {MAX_PROPERTY_KEY_LENGTH}"),
            (nested, "gets objects as JSON strings (dropped past 1,024 characters)"),
            (long_text, f"cuts strings to {MAX_STRING_LENGTH:,} characters"),
        ):
            if found:
                notes.append(f"Hackle {what}: {event.name!r}'s {named(found)}")
        if len(names) > MAX_PROPERTIES:
            notes.append(
                f"Hackle takes {MAX_PROPERTIES} properties per event; {event.name!r} declares "
                f"{len(names)}: those past the first {MAX_PROPERTIES} given are dropped"
            )
        return notes

    def body(self, events: Sequence[TrackedEvent], notes: Notes) -> JSONObject:
        (event,) = events
        properties = dict(event.properties)
        hackle_event: JSONObject = {"key": self.vendor_event_name(event)}
        value = properties.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool) and _fits(value):
            fitting = _Fitting()
            hackle_event["value"] = fitting.scalar("value", value)
            del properties["value"]
            for line in fitting.lines("event.value"):
                note(notes, event, line)
        hackle_event["properties"] = _fit_properties(event, properties, notes, "properties")
        late = (timezone.now() - event.timestamp).total_seconds()
        if late >= NOTED_LATENESS:
            note(
                notes,
                event,
                f"time: sent {spelled_duration(late)} after it happened; Hackle records the "
                "time it arrives",
            )
        return {"event": hackle_event, "user": self._user(event.identity)}

    def _user(self, identity: Identity) -> JSONObject:
        """Hackle's user object, empty when we know nobody (Hackle then answers 400).
        Every id fits: identity values are at most 256 characters, Hackle takes 512."""
        user: JSONObject = {}
        if user_id := identity.user_id:
            user["userId"] = user_id
        if device_id := identity.get(DEVICE_ID):
            user["deviceId"] = device_id
        if visitor_id := self.visitor_id(identity):
            user["identifiers"] = {"anonymousId": visitor_id}
        return user

    def identify_skip_reason(self, event: TrackedEvent) -> str | None:
        if not _fit_properties(event, event.properties, {}, "traits"):
            return (
                "Hackle's identify sets user properties, and this call has no trait Hackle "
                "can hold (an empty $set is refused)"
            )
        return None

    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        user = self._user(event.identity)
        body: JSONObject = {"userId": user["userId"]}
        if "deviceId" in user:
            body["deviceId"] = user["deviceId"]
        traits = _fit_properties(event, event.properties, notes, "traits")
        return body | {"operations": {"$set": traits}}


def _fit_properties(
    event: TrackedEvent, properties: Mapping[str, JSONValue], notes: Notes, where: str
) -> dict[str, JSONValue]:
    """``properties`` within Hackle's limits; what had to change is noted for ``event``."""
    fitting = _Fitting()
    fitted: dict[str, JSONValue] = {}
    seen: set[str] = set()
    for key, value in properties.items():
        if value is None:
            fitting.dropped_null.append(key)
        elif len(key) > MAX_PROPERTY_KEY_LENGTH:
            fitting.dropped_long_key.append(key[:32] + "...")
        elif key.casefold() in seen:
            fitting.dropped_case.append(key)
        elif len(fitted) == MAX_PROPERTIES:
            fitting.over_limit.append(key)
        else:
            fitted_value = fitting.value(key, value)
            if fitted_value is not None:
                seen.add(key.casefold())
                fitted[key] = fitted_value
    for line in fitting.lines(where, offered=len(properties), kept=len(fitted)):
        note(notes, event, line)
    return fitted


class _Fitting:
    """The changes made while fitting one set of properties, by kind, for the notes."""

    def __init__(self) -> None:
        self.dropped_null: list[str] = []
        self.dropped_long_key: list[str] = []
        self.dropped_case: list[str] = []
        self.over_limit: list[str] = []
        self.as_json: list[str] = []
        self.dropped_long_json: list[str] = []
        self.cut: list[str] = []
        self.as_string: list[str] = []
        self.rounded: list[str] = []

    def value(self, key: str, value: JSONValue) -> JSONValue:
        """``value`` as Hackle can hold it, or None when it has to be dropped."""
        if isinstance(value, Scalar):
            return self.scalar(key, value)
        if isinstance(value, list) and all(_array_item(item) for item in value):
            return [self.scalar(key, item) for item in value if isinstance(item, Scalar)]
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_STRING_LENGTH:
            self.dropped_long_json.append(key)
            return None
        self.as_json.append(key)
        return text

    def scalar(self, key: str, value: Scalar) -> Scalar:
        if isinstance(value, str):
            if len(value) > MAX_STRING_LENGTH:
                _once(self.cut, key)
                return value[:MAX_STRING_LENGTH]
            return value
        if isinstance(value, bool):
            return value
        if not _fits(value):
            _once(self.as_string, key)
            return str(value)
        if isinstance(value, float) and round(value, DECIMAL_PLACES) != value:
            _once(self.rounded, key)
            return round(value, DECIMAL_PLACES)
        return value

    def lines(self, where: str, offered: int = 0, kept: int = 0) -> list[str]:
        """One short line per kind of change, naming the keys (never the values)."""
        limit = f"{MAX_STRING_LENGTH:,}"
        lines = [
            Reshaped(f"{where}: {text}: {named(keys)}")
            if keys is self.as_json
            else f"{where}: {text}: {named(keys)}"
            for text, keys in (
                ("dropped null values", self.dropped_null),
                (f"dropped keys over {MAX_PROPERTY_KEY_LENGTH} characters", self.dropped_long_key),
                ("dropped keys that repeat an earlier key but for case", self.dropped_case),
                ("nested values sent as JSON strings", self.as_json),
                (
                    f"dropped nested values whose JSON is over {limit} characters",
                    self.dropped_long_json,
                ),
                (f"strings cut to {limit} characters", self.cut),
                ("numbers over 15 integer digits sent as strings", self.as_string),
                (f"numbers rounded to {DECIMAL_PLACES} decimal places", self.rounded),
            )
            if keys
        ]
        if self.over_limit:
            lines.append(
                f"{where}: {offered} keys, kept {kept} (Hackle takes {MAX_PROPERTIES}; "
                f"dropped: {named(self.over_limit)})"
            )
        return lines


def _array_item(value: JSONValue) -> bool:
    """What a Hackle array may hold: strings and numbers (its SDKs drop booleans)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _once(keys: list[str], key: str) -> None:
    if key not in keys:
        keys.append(key)


def _fits(number: int | float) -> bool:
    """Whether Hackle can hold ``number``: at most 15 integer digits."""
    return abs(number) < NUMBER_LIMIT
