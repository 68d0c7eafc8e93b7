"""Hellotext: ``POST /v1/attribution/events``, one event per request.

The request speaks Hellotext's current contract (VENDORS.md §1.3): the event
name is the ``action``, the visitor is a ``profile`` and/or ``session`` (never
the legacy ``profile_id``/``session_id``), and the event time is ``tracked_at``.
Properties map onto Hellotext's words like this:

* ``object``, ``object_parameters``, ``object_type``, ``amount``, ``currency``
  and ``url`` are Hellotext fields and go to the top level when they have the
  type Hellotext takes (a non-empty string; an object for ``object_parameters``),
  otherwise they stay in ``metadata``;
* the property named after the event's noun (``product`` for
  ``product.purchased``, ``order`` for ``order.placed``) is the object of the
  action: a string becomes ``object`` (an existing Hellotext id), a dict
  ``object_parameters`` (data to find or create it), unless either was given
  explicitly;
* ``amount`` is sent only when it is a number (a numeric string such as
  ``"89.90"`` is converted); otherwise it stays in ``metadata``;
* ``currency`` is sent only alongside ``amount``, since Hellotext answers 422
  to a currency without an amount (§1.6); without one it is dropped;
* everything else rides in ``metadata``, left out when empty.

``identify()`` follows Hellotext's backend flow (§1.5) in up to two requests:
``POST /v1/profiles`` creates the user's profile (only the first time: the
returned id is kept per user, and later events for that user carry it as
``profile``), then ``PATCH /v1/sessions/{session}`` attaches the visitor's
browser session to it. A 404 there means the session has not reached
Hellotext from the browser yet, so it is retried later (and given up after
``MAX_ATTEMPTS``/``MAX_AGE``). A session already attached to a different
profile is left alone and the delivery fails with that reason: Hellotext never
moves a session between profiles, and neither do we.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from django_eventtrack.event import Event, Identity, JSONValue
from django_eventtrack.vendors.base import (
    JSONObject,
    Outcome,
    OutcomeKind,
    ProfileStore,
    Send,
    VendorAdapter,
    VendorRequest,
    VendorResponse,
    iso_utc,
)

#: Hellotext request fields a caller may set through properties (VENDORS.md §1.3).
PASSTHROUGH_FIELDS = ("object", "object_parameters", "object_type", "url")
NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")
#: Longer numeric strings are not amounts (and may not convert: int digit limits, inf).
MAX_NUMERIC_STRING = 32
#: Traits ``POST /v1/profiles`` takes (VENDORS.md §1.5); others are not sent.
PROFILE_FIELDS = ("first_name", "last_name", "email", "phone", "lists")


class HellotextAdapter(VendorAdapter):
    """Hellotext's attribution events API, with the business's private token."""

    name: ClassVar[str] = "hellotext"
    display_name: ClassVar[str] = "Hellotext"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_TOKEN",)
    default_api_url: ClassVar[str] = "https://api.hellotext.com"
    path: ClassVar[str] = "/v1/attribution/events"
    identify_path: ClassVar[str] = "/v1/profiles"
    remembers_profiles: ClassVar[bool] = True

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.credential('API_TOKEN')}"}

    def skip_reason(self, event: Event) -> str | None:
        if not (event.identity.profile or event.identity.session):
            return (
                "Hellotext needs a profile or session id (pass profile= or session=, "
                "or use the middleware)"
            )
        if self.vendor_event_name(event) == "page.viewed" and not _usable(
            "url", event.properties.get("url")
        ):
            return "Hellotext's page.viewed needs a url property (a non-empty string)"
        return None

    def body(self, events: Sequence[Event]) -> JSONObject:
        (event,) = events
        metadata = dict(event.properties)
        body: JSONObject = {"action": self.vendor_event_name(event)}
        body |= _visitor(event.identity)
        body |= _object_of_action(event.noun, metadata)
        body |= {
            key: metadata.pop(key) for key in PASSTHROUGH_FIELDS if _usable(key, metadata.get(key))
        }
        body |= _revenue(metadata)
        body["tracked_at"] = iso_utc(event.timestamp)
        if metadata:
            body["metadata"] = metadata
        return body

    def identify_body(self, event: Event) -> JSONObject:
        """``POST /v1/profiles``: our user id as the ``reference``, plus known traits."""
        traits = event.properties
        profile: JSONObject = {"reference": event.identity.user_id}
        return profile | {key: traits[key] for key in PROFILE_FIELDS if traits.get(key)}

    def attach_request_for(self, event: Event, profile: str) -> VendorRequest:
        """``PATCH /v1/sessions/{session}`` with ``{"profile": ...}`` (VENDORS.md §1.5)."""
        session = quote(str(event.identity.session), safe="")
        url = f"{self.config.api_url}/v1/sessions/{session}"
        return self.request("PATCH", url, {"profile": profile}, [event])

    def send_identify(self, event: Event, send: Send, profiles: ProfileStore) -> Outcome:
        user_id = str(event.identity.user_id)
        profile = profiles.get(self.name, user_id)
        if profile is None:
            created = send(self.identify_request(event))
            if not created.outcome.ok:
                return created.outcome
            new_profile = _id_in(created.response)
            if new_profile is None:
                return Outcome(
                    OutcomeKind.FAILED,
                    created.outcome.http_status,
                    "Hellotext created a profile but its answer carries no id",
                )
            profile = profiles.remember(self.name, user_id, new_profile)
        if not event.identity.session:
            return Outcome(OutcomeKind.DELIVERED, None, f"profile {profile}; no session to attach")
        attached = send(self.attach_request_for(event, profile))
        return _attach_outcome(attached.outcome, attached.response, profile)

    def error_message(self, payload: Any) -> str | None:
        """Hellotext's ``errors[]`` list, or the single ``error`` form (VENDORS.md §1.6)."""
        if not isinstance(payload, dict):
            return None
        errors = payload.get("errors")
        if isinstance(errors, list):
            messages = [_describe(error) for error in errors if isinstance(error, dict)]
            return "; ".join(message for message in messages if message) or None
        error = payload.get("error")
        if isinstance(error, dict):
            return _describe(error) or None
        if isinstance(error, str):
            return error
        return None


def _id_in(response: VendorResponse | None) -> str | None:
    payload = response.json() if response is not None else None
    value = payload.get("id") if isinstance(payload, dict) else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _attach_outcome(outcome: Outcome, response: VendorResponse | None, profile: str) -> Outcome:
    """Read the PATCH answer: 404 is "not seen yet" (retry); a session that came back
    bound to another profile is refused for good."""
    if outcome.http_status == 404:
        return Outcome(
            OutcomeKind.RETRY,
            404,
            "Hellotext has not seen this session yet (it reaches Hellotext from the "
            "browser); retrying later",
        )
    if not outcome.ok or response is None:
        return outcome
    payload = response.json()
    bound = payload.get("profile") if isinstance(payload, dict) else None
    if bound not in (None, "", profile):
        return Outcome(
            OutcomeKind.FAILED,
            outcome.http_status,
            "the session already belongs to another Hellotext profile; it was not moved",
        )
    return outcome


def _visitor(identity: Identity) -> JSONObject:
    """``profile`` and ``session``; Hellotext accepts both together (VENDORS.md §1.3)."""
    visitor: JSONObject = {}
    if identity.profile:
        visitor["profile"] = identity.profile
    if identity.session:
        visitor["session"] = identity.session
    return visitor


def _object_of_action(noun: str, metadata: dict[str, JSONValue]) -> JSONObject:
    """The noun-named property as ``object`` or ``object_parameters``, unless the
    caller already named the object explicitly. Pops what it uses."""
    if _usable("object", metadata.get("object")) or _usable(
        "object_parameters", metadata.get("object_parameters")
    ):
        return {}
    value = metadata.get(noun)
    if _usable("object", value):
        return {"object": metadata.pop(noun)}
    if _usable("object_parameters", value):
        return {"object_parameters": metadata.pop(noun)}
    return {}


def _usable(key: str, value: JSONValue) -> bool:
    """Whether ``value`` has the type Hellotext takes for field ``key`` (§1.3)."""
    if key == "object_parameters":
        return isinstance(value, dict)
    return isinstance(value, str) and value != ""


def _revenue(metadata: dict[str, JSONValue]) -> JSONObject:
    """``amount`` (and then ``currency``) when the amount is a number; pops what it uses.

    A currency without a usable amount is dropped: Hellotext rejects it (§1.6).
    """
    currency = metadata.pop("currency") if _usable("currency", metadata.get("currency")) else None
    amount = _number(metadata.get("amount"))
    if amount is None:
        return {}
    del metadata["amount"]
    return {"amount": amount} if currency is None else {"amount": amount, "currency": currency}


def _number(value: JSONValue) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if (
        isinstance(value, str)
        and len(value) <= MAX_NUMERIC_STRING
        and NUMERIC_STRING.fullmatch(value)
    ):
        return float(value) if "." in value else int(value)
    return None


def _describe(error: dict[str, Any]) -> str:
    """``type: message (parameter name)``, from whichever of those keys are present;
    ``message`` and ``description`` are aliases in Hellotext's docs (§1.6)."""
    text = error.get("message") or error.get("description") or ""
    if error.get("type"):
        text = f"{error['type']}: {text}" if text else str(error["type"])
    if error.get("parameter"):
        text = f"{text} (parameter {error['parameter']})"
    return str(text).strip()
