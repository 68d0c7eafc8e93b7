"""PrimeData ("powehi"): ``POST /powehi/smile``, up to 500 events per request.

Each event names its pre-registered schema in ``eventType``, its data source
in ``scope`` and its time in the required ``timeStamp``. Every event also
needs a ``source`` (the profile context) and a ``target`` (the entity acted
on), each with non-empty ``itemId`` and ``itemType``: PrimeData's own
placeholder for "none" is ``"_"``, and an empty string is a 422. They come from
the ``source`` and ``target`` properties when those are dicts; otherwise the
target is the noun-named property (``product`` for ``product.purchased``):
its id, or the ``reference`` of the dict describing it. Field by field, with
the reasons, in ``docs/vendors/primedata.md``.

Properties are fitted to what a schema can hold (boolean, number, string,
array): a nested object is sent as a JSON string and ``None`` is dropped, each
change noted on the delivery. With ``EVENT_TYPES`` (the schema aliases
registered in PrimeData) set, an event of any other type is skipped before
sending, with the reason.

``sessionId`` is PrimeData's session, which a client chooses and which belongs
to one person: PrimeData's own (the ``XSessionId`` cookie) when known, else the
visitor's browser session (the visitor id the other vendors share, but never a
vendor's profile id), else for a known user a server session derived from the
user id (:func:`server_session`), which ``identify()`` binds to the user too.

An event's ``vendor_extra["primedata"]`` is read as laid over the body it would have
alone: ``{"events": [{...}]}`` merges into its own entry, so it can share a request
with other visitors' events; any other key (``sessionId``, ``sendAt``) is the whole
request's, so that event goes in a request of its own (:meth:`VendorAdapter.build_request`).

A success answer says how many events PrimeData processed (``processedEvents``).
Fewer than sent is read like this: none processed fails every event of the
request (PrimeData keeps no part of it); some processed delivers the request
but says, on each delivery, that it is unconfirmed which were dropped. None is
sent again: PrimeData documents no way to recognise a duplicate, and sending
the processed ones again would count them twice.

``identify()`` sends PrimeData's built-in ``identify`` event to
``/powehi/context``, as its PHP SDK does, on the visitor's session and on the
user's server session: the target is ``{"itemType": "analyticsUser",
"itemId": <user id>}`` and its properties are the traits, with our user id as
the PII key ``id``. PrimeData then binds those sessions, and their events, to
the profile that has that PII, creating it if needed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django_eventtrack.core.event import JSONValue, TrackedEvent
from django_eventtrack.core.settings import parse_names, setting_path
from django_eventtrack.vendors.base import (
    BrowserId,
    DeclaredEvent,
    JSONObject,
    Notes,
    Outcome,
    OutcomeKind,
    OwnSetting,
    ProfileStore,
    Send,
    VendorAdapter,
    VendorRequest,
    iso_utc,
    named,
    note,
)

logger = logging.getLogger("django_eventtrack.vendors.primedata")

#: PrimeData's "no id / no type" placeholder.
NO_ITEM = "_"
#: The fields of a ``source`` or ``target`` entity.
ENTITY_FIELDS = frozenset({"itemId", "itemType", "scope", "properties"})
#: The target type an ``identify`` event must have.
IDENTIFY_ITEM_TYPE = "analyticsUser"
#: Namespace of the server sessions derived from user ids (a fixed, random UUID).
SERVER_SESSIONS = uuid.UUID("9d3c7a52-52e4-4f36-9c1f-4a0f1f0b6a77")
#: The identity key of PrimeData's own session id.
SESSION_ID = "primedata_session_id"


def server_session(user_id: str) -> str:
    """The PrimeData session of a user's server-side events: the same UUID for the same
    user every time, and no way back from it to the user id."""
    return str(uuid.uuid5(SERVER_SESSIONS, user_id))


class PrimeDataAdapter(VendorAdapter):
    """PrimeData's event push gateway, with a data source's id and write key."""

    name: ClassVar[str] = "primedata"
    display_name: ClassVar[str] = "PrimeData"
    credential_settings: ClassVar[tuple[str, ...]] = ("CLIENT_ID", "ACCESS_TOKEN")
    default_api_url: ClassVar[str] = "https://dev.primedata.ai"
    #: Default ``PURPOSES``: what this vendor's events serve (see the privacy docs).
    default_purposes: ClassVar[tuple[str, ...]] = ("marketing",)
    path: ClassVar[str] = "/powehi/smile"
    max_batch_size: ClassVar[int] = 500  # PrimeData's documented cap
    entries_key: ClassVar[str | None] = "events"
    identify_path: ClassVar[str] = "/powehi/context"
    own_settings: ClassVar[Mapping[str, OwnSetting]] = {"EVENT_TYPES": (parse_names, None)}
    plan_keys: ClassVar[Mapping[str, str]] = {
        "event_type": "the registered schema alias (EVENT_NAMES; the plan's types are EVENT_TYPES)"
    }
    browser_ids: ClassVar[tuple[BrowserId, ...]] = (
        BrowserId(
            SESSION_ID,
            "PrimeData session id",
            # The 2020 tracker sets the cookie; later SDKs keep it in window.cxs.
            cookie="XSessionId",
            script_key=SESSION_ID,
            script="window.cxs.sessionId",
        ),
    )
    sandbox: ClassVar[str | None] = "django_eventtrack.sandbox.primedata.PRIMEDATA"

    @property
    def scope(self) -> str:
        """The data source id: the ``X-Client-ID`` header and every ``scope``."""
        return self.config.credential("CLIENT_ID")

    def headers(self) -> dict[str, str]:
        return {
            "X-Client-ID": self.scope,
            "X-Client-Access-Token": self.config.credential("ACCESS_TOKEN"),
        }

    @classmethod
    def settings_from_plan(cls, mappings: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """``event_type`` is the event's schema alias (``EVENT_NAMES``); once the plan names
        one, the plan's aliases are the registered ones (``EVENT_TYPES``)."""
        types = {event: m["event_type"] for event, m in mappings.items() if "event_type" in m}
        if not types:
            return {}
        return {"EVENT_NAMES": types, "EVENT_TYPES": sorted(set(types.values()))}

    def plan_notes(self, event: DeclaredEvent) -> list[str]:
        """A schema property holds a boolean, number, string or array: objects are sent as
        JSON strings, nulls dropped."""
        notes = super().plan_notes(event)
        objects = [name for name in event.properties if "object" in event.declared_type(name)]
        nulls = [name for name in event.properties if "null" in event.declared_type(name)]
        if objects:
            notes.append(
                f"PrimeData gets {event.name!r}'s object properties as JSON strings "
                f"(a schema property cannot hold an object): {named(objects)}"
            )
        if nulls:
            notes.append(
                f"PrimeData does not get {event.name!r}'s properties when they are null "
                f"(dropped): {named(nulls)}"
            )
        return notes

    def name_refusal(self, name: str) -> str | None:
        """With ``EVENT_TYPES`` declared, a type PrimeData has no schema for is refused."""
        registered: frozenset[str] | None = self.config.options.get("EVENT_TYPES")
        event_type = self.config.event_names.get(name, name)
        if registered is None or event_type in registered:
            return None
        called = f"{name!r}" if event_type == name else f"{name!r} (mapped to {event_type!r})"
        return (
            f"{called} is not a registered PrimeData event type: register its schema in "
            f"PrimeData and add the alias to {setting_path('VENDORS', self.name, 'EVENT_TYPES')}"
            f", or map the event to a registered alias in "
            f"{setting_path('VENDORS', self.name, 'EVENT_NAMES')}"
        )

    def envelope(self, body: JSONObject) -> JSONObject:
        """The request's ``sessionId`` too, when every event has the same one."""
        sessions = {entry.get("sessionId") for entry in body["events"]}
        if len(sessions) == 1 and (session := sessions.pop()):
            return {"sessionId": session} | body
        return body

    def entry(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        properties = dict(event.properties)
        source = _fit_entity(event, "source", _pop_entity(properties, "source") or {}, notes)
        target = _fit_entity(
            event, "target", _pop_entity(properties, "target") or _noun_target(event), notes
        )
        primedata_event: JSONObject = {
            "eventType": self.vendor_event_name(event),
            "scope": self.scope,
            "timeStamp": iso_utc(event.timestamp),
        }
        if session := self._session(event):
            primedata_event["sessionId"] = session
        return primedata_event | {
            "properties": _fit_properties(event, properties, notes),
            "source": self._entity(source),
            "target": self._entity(target),
        }

    def send_events(self, events: Sequence[TrackedEvent], send: Send) -> Outcome:
        return self._processed(self.build_request(events), send)

    def send_identify(self, event: TrackedEvent, send: Send, profiles: ProfileStore) -> Outcome:
        return self._processed(self.identify_request(event), send)

    def _processed(self, request: VendorRequest, send: Send) -> Outcome:
        """Send ``request``; a success that processed fewer events than sent is read as
        the module docstring says (never sent again)."""
        attempt = send(request)
        outcome = attempt.outcome.adjusted(request.notes)
        payload = attempt.response.json() if attempt.response is not None else None
        processed = payload.get("processedEvents") if isinstance(payload, dict) else None
        sent = len(request.body["events"])
        if not outcome.ok or not isinstance(processed, int) or processed >= sent:
            return outcome
        if processed <= 0:
            return Outcome(
                OutcomeKind.FAILED,
                outcome.http_status,
                f"PrimeData processed none of the {sent} event(s) in this request (is the event "
                "type registered as a schema alias, with the properties it requires?)",
                adjustments=outcome.adjustments,
            )
        logger.warning(
            "events=%s: PrimeData processed %d of %d events without saying which; "
            "none is sent again",
            ",".join(request.event_ids),
            processed,
            sent,
        )
        return Outcome(
            OutcomeKind.DELIVERED,
            outcome.http_status,
            f"unconfirmed: PrimeData processed {processed} of the {sent} events in this request "
            "without saying which; none is sent again (PrimeData cannot recognise a duplicate)",
            adjustments=outcome.adjustments,
        )

    def identify_skip_reason(self, event: TrackedEvent) -> str | None:
        return None

    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        user_id = str(event.identity.user_id)
        browser = self._browser_session(event)
        sessions = dict.fromkeys(s for s in (browser, server_session(user_id)) if s)
        identifies: list[JSONObject] = [
            {
                "eventType": "identify",
                "scope": self.scope,
                "timeStamp": iso_utc(event.timestamp),
                "sessionId": session,
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
            for session in sessions
        ]
        body: JSONObject = {"events": identifies}
        return {"sessionId": identifies[0]["sessionId"]} | body if len(identifies) == 1 else body

    def _entity(self, entity: Mapping[str, JSONValue]) -> JSONObject:
        """``entity`` with a usable ``itemId`` and ``itemType``, in our ``scope``."""
        return {
            **entity,
            "itemId": _item_text(entity.get("itemId")),
            "itemType": _item_text(entity.get("itemType")),
            "scope": self.scope,
        }

    def _browser_session(self, event: TrackedEvent) -> str | None:
        """The visitor's browser session: PrimeData's own id, else the browser-level visitor
        id the vendors share, never a profile id (:meth:`~VendorAdapter.visitor_id`)."""
        own = event.identity.get(SESSION_ID)
        return own or self.visitor_id(event.identity, profiles=False)

    def _session(self, event: TrackedEvent) -> str | None:
        """The event's PrimeData session: the browser's, else the user's server session.
        Never a vendor's profile id: PrimeData's session is one client-chosen visit."""
        user_id = event.identity.user_id
        return self._browser_session(event) or (server_session(user_id) if user_id else None)

    def error_message(self, payload: Any) -> str | None:
        """``error.message`` and each ``field: description`` from ``error.details``."""
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

    def failure_in_success(self, payload: Any) -> str | None:
        """A 2xx carrying PrimeData's ``error`` object is a refusal."""
        if isinstance(payload, dict) and payload.get("error"):
            return self.error_message(payload) or "PrimeData answered with an error"
        return None


def _pop_entity(properties: dict[str, JSONValue], key: str) -> dict[str, JSONValue] | None:
    """The ``key`` property when it is an entity (a dict whose ``properties``, if any,
    are a dict too, as PrimeData requires), taken out of ``properties``."""
    value = properties.get(key)
    if not isinstance(value, dict) or not isinstance(value.get("properties", {}), dict):
        return None
    del properties[key]
    return value


def _fit_entity(
    event: TrackedEvent, where: str, entity: dict[str, JSONValue], notes: Notes
) -> dict[str, JSONValue]:
    """``entity`` with only the fields PrimeData's entities have; other keys are moved
    into its ``properties`` (free-form), and noted."""
    extra = {key: value for key, value in entity.items() if key not in ENTITY_FIELDS}
    if not extra:
        return entity
    note(notes, event, f"{where}: moved into {where}.properties: {named(list(extra))}")
    kept = {key: value for key, value in entity.items() if key in ENTITY_FIELDS}
    inner = kept.get("properties")
    return kept | {"properties": {**(inner if isinstance(inner, dict) else {}), **extra}}


def _fit_properties(
    event: TrackedEvent, properties: Mapping[str, JSONValue], notes: Notes
) -> dict[str, JSONValue]:
    """``properties`` as a schema can hold them: a schema property is a boolean, number,
    string or array, so objects become JSON strings and ``None`` is dropped (noted)."""
    fitted: dict[str, JSONValue] = {}
    as_json: list[str] = []
    dropped: list[str] = []
    for key, value in properties.items():
        if value is None:
            dropped.append(key)
        elif isinstance(value, dict):
            as_json.append(key)
            fitted[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            fitted[key] = value
    if as_json:
        note(notes, event, f"properties: objects sent as JSON strings: {named(as_json)}")
    if dropped:
        note(notes, event, f"properties: dropped null values: {named(dropped)}")
    return fitted


def _noun_target(event: TrackedEvent) -> dict[str, JSONValue]:
    """The noun-named property as the target: its id (``product: "vxqQJ3Yg"``), or the
    ``reference`` of the dict that describes it (``order: {"reference": "A-1", ...}``)."""
    item = event.properties.get(event.noun)
    if isinstance(item, dict):
        item = item.get("reference")
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        return {}
    return {"itemId": item, "itemType": event.noun}


def _item_text(value: JSONValue) -> str:
    """A non-empty string id: numbers spelled out, anything else the placeholder."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return NO_ITEM
    return str(value) or NO_ITEM
