"""Browsee: ``POST /api/v1/track``, one event per request, the key in the body.

Browsee has no auth header: the project ``apiKey`` travels in the JSON, which
is why it is listed among the secrets to mask (``docs/vendors/browsee.md``).
The visitor is ``userId`` and/or ``anonymousId``: both are sent when known,
since Browsee simply prefers ``userId``. The anonymous id is Browsee's own
browser id when the front end passed it, else the visitor id shared by all
vendors (:meth:`~VendorAdapter.visitor_id`).

Browsee can refuse inside a 200: ``{"status": "failure", "message": ...}``,
so a 2xx is only a delivery when it does not say so.

Browsee's API "must not be used to dump historical data": an event that happened
longer than ``MAX_LATENESS`` ago (default six hours, counted from the event's own
time) is skipped with the reason.

``identify()`` becomes ``POST /api/v1/identify`` with ``userId``, the
visitor's ``anonymousId`` (so the anonymous session joins the user) and the
traits; a ``name`` trait is made from ``first_name``/``last_name`` when none is
given, since ``name``, ``email`` and ``phone`` are the keys Browsee shows. The
``$tags`` trait is a list of labels: one label given as a string is sent as a
list of one, and what is not a label is left out (noted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django_eventtrack.core.event import Identity, JSONValue, TrackedEvent
from django_eventtrack.vendors.base import (
    BrowserId,
    JSONObject,
    Notes,
    VendorAdapter,
    iso_utc,
    note,
)

#: The identity key of Browsee's own anonymous id.
ANONYMOUS_ID = "browsee_anonymous_id"
#: Default ``MAX_LATENESS``: Browsee gives no number for "historical", so six hours.
DEFAULT_MAX_LATENESS = 6 * 3600.0
#: The trait holding Browsee's searchable labels, a list of strings.
TAGS = "$tags"


class BrowseeAdapter(VendorAdapter):
    """Browsee's track-event HTTP API."""

    name: ClassVar[str] = "browsee"
    display_name: ClassVar[str] = "Browsee"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_KEY",)
    default_api_url: ClassVar[str] = "https://api.browsee.io"
    #: Default ``PURPOSES``: what this vendor's events serve (see the privacy docs).
    default_purposes: ClassVar[tuple[str, ...]] = ("analytics",)
    path: ClassVar[str] = "/api/v1/track"
    identify_path: ClassVar[str] = "/api/v1/identify"
    default_max_lateness: ClassVar[float | None] = DEFAULT_MAX_LATENESS
    lateness_why: ClassVar[str] = (
        "Browsee's API must not be used to dump historical data (docs/vendors/browsee.md)"
    )
    browser_ids: ClassVar[tuple[BrowserId, ...]] = (
        BrowserId(
            ANONYMOUS_ID,
            "Browsee anonymous id",
            script_key=ANONYMOUS_ID,
            script="window._browsee.user.getId()",
            ready_event="br_session_init",
        ),
    )
    sandbox: ClassVar[str | None] = "django_eventtrack.sandbox.browsee.BROWSEE"

    def skip_reason(self, event: TrackedEvent) -> str | None:
        if self._visitor(event.identity):
            return None
        return "Browsee needs a user id or an anonymous id"

    def body(self, events: Sequence[TrackedEvent], notes: Notes) -> JSONObject:
        (event,) = events
        return {
            "apiKey": self.config.credential("API_KEY"),
            "event": self.vendor_event_name(event),
            "properties": dict(event.properties),
            **self._visitor(event.identity),
            "timestamp": iso_utc(event.timestamp),
        }

    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        traits = dict(event.properties)
        full_name = " ".join(
            str(traits[key]) for key in ("first_name", "last_name") if traits.get(key)
        )
        if full_name and not traits.get("name"):
            traits["name"] = full_name
        if TAGS in traits:
            traits[TAGS] = _tags(event, traits[TAGS], notes)
        return {
            "apiKey": self.config.credential("API_KEY"),
            **self._visitor(event.identity),
            "traits": traits,
            "timestamp": iso_utc(event.timestamp),
        }

    def failure_in_success(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and payload.get("status") == "failure":
            return _message(payload) or "Browsee answered status failure"
        return None

    def error_message(self, payload: Any) -> str | None:
        return _message(payload)

    def _visitor(self, identity: Identity) -> JSONObject:
        visitor: JSONObject = {}
        if identity.user_id:
            visitor["userId"] = identity.user_id
        if anonymous_id := identity.get(ANONYMOUS_ID) or self.visitor_id(identity):
            visitor["anonymousId"] = anonymous_id
        return visitor


def _tags(event: TrackedEvent, value: JSONValue, notes: Notes) -> list[JSONValue]:
    """``$tags`` as Browsee takes it, a list of labels: a string is one label, numbers are
    spelled out, and anything else (empty, objects) is left out, each change noted."""
    if isinstance(value, str):
        note(notes, event, f"traits.{TAGS}: one label, sent as a list of one", lossless=True)
        value = [value]
    items = value if isinstance(value, list) else [value]
    labels: list[JSONValue] = [
        str(item)
        for item in items
        if isinstance(item, str | int | float) and not isinstance(item, bool) and str(item)
    ]
    if len(labels) != len(items):
        note(notes, event, f"traits.{TAGS}: left out what is not a label (a non-empty string)")
    return labels


def _message(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"] or None
    return None
