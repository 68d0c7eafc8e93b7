"""Hellotext: ``POST /v1/attribution/events``, one event per request.

The request speaks Hellotext's current contract (VENDORS.md §1.3): the event
name is the ``action``, the visitor is a ``profile`` and/or ``session`` (never
the legacy ``profile_id``/``session_id``), and the event time is ``tracked_at``.
Properties map onto Hellotext's words like this:

* ``object``, ``object_parameters``, ``object_type``, ``amount``, ``currency``
  and ``url`` are Hellotext fields and go to the top level as given;
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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from django_eventtrack.event import Event, Identity, JSONValue
from django_eventtrack.vendors.base import JSONObject, VendorAdapter, iso_utc

#: Hellotext request fields a caller may set through properties (VENDORS.md §1.3).
PASSTHROUGH_FIELDS = ("object", "object_parameters", "object_type", "url")
NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")


class HellotextAdapter(VendorAdapter):
    """Hellotext's attribution events API, with the business's private token."""

    name: ClassVar[str] = "hellotext"
    display_name: ClassVar[str] = "Hellotext"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_TOKEN",)
    default_api_url: ClassVar[str] = "https://api.hellotext.com"
    path: ClassVar[str] = "/v1/attribution/events"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.credential('API_TOKEN')}"}

    def skip_reason(self, event: Event) -> str | None:
        if event.identity.profile or event.identity.session:
            return None
        return (
            "Hellotext needs a profile or session id (pass profile= or session=, "
            "or use the middleware)"
        )

    def body(self, events: Sequence[Event]) -> JSONObject:
        (event,) = events
        metadata = dict(event.properties)
        body: JSONObject = {"action": self.vendor_event_name(event)}
        body |= _visitor(event.identity)
        body |= _object_of_action(event.noun, metadata)
        body |= {key: metadata.pop(key) for key in PASSTHROUGH_FIELDS if key in metadata}
        body |= _revenue(metadata)
        body["tracked_at"] = iso_utc(event.timestamp)
        if metadata:
            body["metadata"] = metadata
        return body

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
    if "object" in metadata or "object_parameters" in metadata:
        return {}
    value = metadata.get(noun)
    if isinstance(value, str):
        return {"object": metadata.pop(noun)}
    if isinstance(value, dict):
        return {"object_parameters": metadata.pop(noun)}
    return {}


def _revenue(metadata: dict[str, JSONValue]) -> JSONObject:
    """``amount`` (and then ``currency``) when the amount is a number; pops what it uses.

    A currency without a usable amount is dropped: Hellotext rejects it (§1.6).
    """
    currency = metadata.pop("currency", None)
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
    if isinstance(value, str) and NUMERIC_STRING.fullmatch(value):
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
