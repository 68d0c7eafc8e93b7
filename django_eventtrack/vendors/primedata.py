"""PrimeData ("powehi"): ``POST /powehi/smile``, up to 500 events per request.

Each event names its pre-registered schema in ``eventType``, its data source
in ``scope`` and its time in the required ``timeStamp`` (VENDORS.md §4.3).
Every event also needs a ``source`` (the profile context) and a ``target``
(the entity acted on), each with non-empty ``itemId`` and ``itemType``:
PrimeData's own placeholder for "none" is ``"_"``, and an empty string is a
422 (§4.3). They come from the ``source`` and ``target`` properties when those
are dicts; otherwise the target is the noun-named property (``product`` for
``product.purchased``) when it holds an id. The noun property also stays in
``properties``, where the schema may require it; PrimeData trims what its
schema does not know.

``sessionId`` is optional since 2023-11 (§4.3): PrimeData's own session id
(the ``XSessionId`` cookie) when known, else the visitor id shared by all
vendors (:attr:`Identity.visitor_id`). It goes on each event that has one,
and at the top level too when the whole batch shares it, which is where
PrimeData's SDKs put it (§4.6, §4.8). Either documented success body,
``processedEvents`` or the older ``updated``, is a delivery (§4.5).

``identify()`` sends PrimeData's built-in ``identify`` event to
``/powehi/context``, as its PHP SDK does (§4.3), on the visitor's session: the
target is ``{"itemType": "analyticsUser", "itemId": <user id>}`` and its
properties are the traits, with our user id as the PII key ``id`` (§4.4).
PrimeData then binds the session, and the session's other events, to the
profile that has that PII, creating it if needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django_eventtrack.event import Event, JSONValue
from django_eventtrack.vendors.base import JSONObject, VendorAdapter, iso_utc

#: PrimeData's "no id / no type" placeholder (VENDORS.md §4.3).
NO_ITEM = "_"
#: The target type an ``identify`` event must have (VENDORS.md §4.3, §4.4).
IDENTIFY_ITEM_TYPE = "analyticsUser"


class PrimeDataAdapter(VendorAdapter):
    """PrimeData's event push gateway, with a data source's id and write key."""

    name: ClassVar[str] = "primedata"
    display_name: ClassVar[str] = "PrimeData"
    credential_settings: ClassVar[tuple[str, ...]] = ("CLIENT_ID", "ACCESS_TOKEN")
    default_api_url: ClassVar[str] = "https://dev.primedata.ai"
    path: ClassVar[str] = "/powehi/smile"
    max_batch_size: ClassVar[int] = 500  # VENDORS.md §4.3, §4.6
    identify_path: ClassVar[str] = "/powehi/context"

    @property
    def scope(self) -> str:
        """The data source id: the ``X-Client-ID`` header and every ``scope``."""
        return self.config.credential("CLIENT_ID")

    def headers(self) -> dict[str, str]:
        return {
            "X-Client-ID": self.scope,
            "X-Client-Access-Token": self.config.credential("ACCESS_TOKEN"),
        }

    def body(self, events: Sequence[Event]) -> JSONObject:
        body: JSONObject = {"events": [self._event(event) for event in events]}
        sessions = {_session(event) for event in events}
        if len(sessions) == 1 and (session := sessions.pop()):
            body = {"sessionId": session} | body
        return body

    def _event(self, event: Event) -> JSONObject:
        properties = dict(event.properties)
        source = _pop_entity(properties, "source") or {}
        target = _pop_entity(properties, "target") or _noun_target(event)
        primedata_event: JSONObject = {
            "eventType": self.vendor_event_name(event),
            "scope": self.scope,
            "timeStamp": iso_utc(event.timestamp),
        }
        if session := _session(event):
            primedata_event["sessionId"] = session
        return primedata_event | {
            "properties": properties,
            "source": self._entity(source),
            "target": self._entity(target),
        }

    def identify_skip_reason(self, event: Event) -> str | None:
        if _session(event):
            return None
        return "PrimeData binds a session to a person: the visitor has no session id"

    def identify_body(self, event: Event) -> JSONObject:
        user_id = str(event.identity.user_id)
        identify: JSONObject = {
            "eventType": "identify",
            "scope": self.scope,
            "timeStamp": iso_utc(event.timestamp),
            "sessionId": _session(event),
            "properties": {},
            "source": self._entity({}),
            "target": self._entity(
                {
                    "itemId": user_id,
                    "itemType": IDENTIFY_ITEM_TYPE,
                    "properties": {**event.properties, "id": user_id},
                }
            ),
        }
        return {"sessionId": _session(event), "events": [identify]}

    def _entity(self, entity: Mapping[str, JSONValue]) -> JSONObject:
        """``entity`` with a usable ``itemId`` and ``itemType``, in our ``scope``."""
        return {
            **entity,
            "itemId": _item_text(entity.get("itemId")),
            "itemType": _item_text(entity.get("itemType")),
            "scope": self.scope,
        }

    def error_message(self, payload: Any) -> str | None:
        """``error.message`` and each ``field: description`` from ``error.details``
        (VENDORS.md §4.5)."""
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return None
        details = error.get("details")
        parts = [str(error.get("message") or "")]
        if isinstance(details, list):
            parts += [
                f"{detail.get('field', '?')}: {detail.get('description', '')}"
                for detail in details
                if isinstance(detail, dict)
            ]
        return "; ".join(part for part in parts if part) or None


def _pop_entity(properties: dict[str, JSONValue], key: str) -> dict[str, JSONValue] | None:
    """The ``key`` property when it is an entity (a dict whose ``properties``, if any,
    are a dict too, as PrimeData requires), taken out of ``properties``."""
    value = properties.get(key)
    if not isinstance(value, dict) or not isinstance(value.get("properties", {}), dict):
        return None
    del properties[key]
    return value


def _noun_target(event: Event) -> dict[str, JSONValue]:
    """The noun-named property as the target when it holds an id (``product: "vxqQJ3Yg"``)."""
    item = event.properties.get(event.noun)
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        return {}
    return {"itemId": item, "itemType": event.noun}


def _item_text(value: JSONValue) -> str:
    """A non-empty string id: numbers spelled out, anything else the placeholder."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return NO_ITEM
    return str(value) or NO_ITEM


def _session(event: Event) -> str | None:
    """PrimeData's own session id, else the visitor id shared by all vendors: PrimeData
    sessions are client-chosen ids (§4.4), and a shared one joins its events to the others'."""
    return event.identity.primedata_session_id or event.identity.visitor_id
