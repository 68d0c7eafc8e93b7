"""Acme: ``POST /v1/events``, up to 50 events per request, keyed by ``X-Acme-Key``.

Each event is ``{"type", "visitor"?, "user"?, "properties", "at"}``; the request carries
the ``CHANNEL`` setting. The visitor is Acme's own browser id (its SDK's
``acme.visitorId()``, or the ``acme_vid`` cookie it sets), else the visitor id the
vendors share. ``identify()`` becomes ``POST /v1/users`` with the user, the visitor and
the traits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.vendors.base import (
    BrowserId,
    JSONObject,
    Notes,
    OwnSetting,
    VendorAdapter,
    iso_utc,
)

#: The identity key of Acme's browser id.
VISITOR_ID = "acme_visitor_id"


def parse_channel(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip().isidentifier():
        raise ConfigurationError(f"{where} must be a channel name like 'web', got {value!r}")
    return value.strip()


class AcmeAdapter(VendorAdapter):
    """Acme's batch events API."""

    name: ClassVar[str] = "acme"
    display_name: ClassVar[str] = "Acme"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_KEY",)
    default_api_url: ClassVar[str] = "https://api.acme.example"
    path: ClassVar[str] = "/v1/events"
    identify_path: ClassVar[str] = "/v1/users"
    max_batch_size: ClassVar[int] = 50
    entries_key: ClassVar[str | None] = "events"
    own_settings: ClassVar[Mapping[str, OwnSetting]] = {"CHANNEL": (parse_channel, "web")}
    browser_ids: ClassVar[tuple[BrowserId, ...]] = (
        BrowserId(
            VISITOR_ID,
            "Acme visitor id",
            cookie="acme_vid",
            script_key=VISITOR_ID,
            script="window.acme.visitorId()",
        ),
    )
    sandbox: ClassVar[str | None] = "tests.fifthvendor.sandbox.ACME"

    def headers(self) -> dict[str, str]:
        return {"X-Acme-Key": self.config.credential("API_KEY")}

    def skip_reason(self, event: TrackedEvent) -> str | None:
        if event.identity.user_id or self._visitor(event.identity):
            return None
        return "Acme needs a user id or a visitor id"

    def envelope(self, body: JSONObject) -> JSONObject:
        return {"channel": self.config.options["CHANNEL"]} | body

    def entry(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        sent: JSONObject = {"type": self.vendor_event_name(event)}
        sent |= self._who(event.identity)
        return sent | {"properties": dict(event.properties), "at": iso_utc(event.timestamp)}

    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        return self._who(event.identity) | {"traits": dict(event.properties)}

    def _who(self, identity: Identity) -> JSONObject:
        who: JSONObject = {}
        if visitor := self._visitor(identity):
            who["visitor"] = visitor
        if identity.user_id:
            who["user"] = identity.user_id
        return who

    def _visitor(self, identity: Identity) -> str | None:
        return identity.get(VISITOR_ID) or self.visitor_id(identity)

    def error_message(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return str(payload["error"])
        return None
