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
user id (:func:`server_session`), which ``identify()`` binds to the user too. An
event with none of these is skipped: PrimeData ties every event to a session.

An event's ``vendor_extra["primedata"]`` is read as laid over the body it would have
alone: ``{"events": [{...}]}`` merges into its own entry, so it can share a request
with other visitors' events; any other key (``sessionId``, ``sendAt``) is the whole
request's, so that event goes in a request of its own (:meth:`VendorAdapter.build_request`).

One request carries events of one type only (:meth:`PrimeDataAdapter.batch_key`),
so PrimeData's answer can be attributed:

* a 422 names the event it refused (``events[i]``) and means nothing of the request
  was processed: that event fails with PrimeData's words, and the others are sent
  again at once without it (:data:`MAX_REFUSED`);
* ``processedEvents`` of 0 means PrimeData dropped every event of the type (no
  schema registered for it, or its required properties missing): they fail with
  the way to register it, and, unless ``EVENT_TYPES`` declares the type, the
  sender remembers it for every process (``NameDropped``) and skips its later
  events with that reason;
* a count between fails nobody: some events lacked properties the schema
  requires, without saying which, so the request is delivered and flagged
  unconfirmed. None is ever sent again once PrimeData may have processed it:
  PrimeData documents no way to recognise a duplicate.

``identify()`` sends PrimeData's built-in ``identify`` event to
``/powehi/context``, as its PHP SDK does, on the visitor's session and on the
user's server session: the target is ``{"itemType": "analyticsUser",
"itemId": <user id>}`` and its properties are the traits, with our user id as
the PII key ``id``. PrimeData then binds those sessions, and their events, to
the profile that has that PII, creating it if needed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

from django_eventtrack.core.event import JSONValue, TrackedEvent
from django_eventtrack.core.settings import parse_names, setting_path
from django_eventtrack.vendors.base import (
    BrowserId,
    DeclaredEvent,
    JSONObject,
    NameDropped,
    Notes,
    Outcome,
    OutcomeKind,
    OwnSetting,
    ProfileStore,
    Send,
    Sent,
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
#: The event types PrimeData has built in (no schema to register).
BUILT_IN_TYPES = frozenset({"identify", "SaveEntity"})
#: Events of one request refused (422) and sent again without, in one attempt: past
#: that, the rest of the request is retried later (each refusal costs a request).
MAX_REFUSED = 20
#: ``events[3].properties.total``: the event a 422's detail names, and the field in it.
REFUSED_FIELD = re.compile(r"events\[(\d+)\]\.?(.*)")


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
        registered = self.declared_types
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

    @property
    def declared_types(self) -> frozenset[str] | None:
        """``EVENT_TYPES``: the aliases registered in PrimeData, or None if not declared."""
        declared: frozenset[str] | None = self.config.options.get("EVENT_TYPES")
        return declared

    def skip_reason(self, event: TrackedEvent) -> str | None:
        refusal = self.name_refusal(event.name)
        if refusal is None and self._session(event) is None:
            return (
                "PrimeData ties every event to a session and this one has none: pass user_id= "
                f"or anonymous_id= (or {SESSION_ID}=), or track it within a request that the "
                "middleware saw"
            )
        return refusal

    def known_drop(self, event: TrackedEvent, dropped: Mapping[str, str]) -> str | None:
        """A type ``EVENT_TYPES`` declares is sent even if PrimeData dropped it before:
        declaring it says its schema is registered now."""
        declared = self.declared_types
        if declared is not None and self.vendor_event_name(event) in declared:
            return None
        return super().known_drop(event, dropped)

    def batch_key(self, event: TrackedEvent) -> Hashable:
        """One type per request, so that a count of processed events points at a type."""
        return self.vendor_event_name(event)

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
        _note_placeholders(event, notes, source=source, target=target)
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
        """Send ``events``; each event a 422 names fails alone and the others are sent
        again without it (nothing of a refused request was processed)."""
        pending = list(events)
        refused: list[tuple[str, Outcome]] = []
        while True:
            request = self.build_request(pending)
            attempt = send(request)
            found = _refused_event(attempt, len(pending))
            if found is None or len(pending) == 1:
                outcome = self._processed(request, attempt)
                break
            if len(refused) == MAX_REFUSED:
                outcome = Outcome(
                    OutcomeKind.RETRY,
                    422,
                    f"PrimeData refused {MAX_REFUSED} events of this request one by one; "
                    "the rest are sent again later",
                    retry_after=0.0,
                ).adjusted(request.notes)
                break
            bad = pending.pop(found[0])
            refused.append((str(bad.id), _refusal(attempt, found, request, bad)))
        for event_id, verdict in refused:
            outcome = outcome.singling_out(event_id, verdict)
        return outcome

    def send_identify(self, event: TrackedEvent, send: Send, profiles: ProfileStore) -> Outcome:
        request = self.identify_request(event)
        return self._processed(request, send(request))

    def _processed(self, request: VendorRequest, attempt: Sent) -> Outcome:
        """The outcome of ``request``, read from how many events PrimeData processed
        (the module docstring says why a shortfall is read so)."""
        outcome = attempt.outcome.adjusted(request.notes)
        payload = attempt.response.json() if attempt.response is not None else None
        if not outcome.ok or not isinstance(payload, dict):
            return outcome
        if "processedEvents" not in payload and "updated" in payload:
            return _older_answer(outcome, payload["updated"], request)
        processed = payload.get("processedEvents")
        sent = len(request.body["events"])
        if not isinstance(processed, int) or isinstance(processed, bool) or processed >= sent:
            return outcome
        types = sorted({str(event.get("eventType")) for event in request.body["events"]})
        if len(types) > 1:
            return _shortfall(outcome, request, processed, sent, "events")
        (event_type,) = types
        if processed > 0:
            return _shortfall(outcome, request, processed, sent, f"{event_type!r} events")
        return self._none_processed(outcome, event_type, sent)

    def _none_processed(self, outcome: Outcome, event_type: str, sent: int) -> Outcome:
        """PrimeData dropped every event of ``event_type`` in the request: failed, with
        the way to register it; remembered, unless ``EVENT_TYPES`` says it is registered."""
        declared = self.declared_types
        events = f"{sent} {event_type!r} event" + ("s" if sent != 1 else "")
        failed = Outcome(OutcomeKind.FAILED, outcome.http_status, adjustments=outcome.adjustments)
        if event_type in BUILT_IN_TYPES or (declared is not None and event_type in declared):
            why = (
                "PrimeData's schema for it requires properties they lack"
                if event_type not in BUILT_IN_TYPES
                else "its target needs PII (email, phone or id) and a session"
            )
            return _with_message(failed, f"PrimeData processed none of the {events}: {why}")
        fix = self._registration(event_type)
        reason = (
            f"PrimeData processed none of the {events}: it has no schema registered for "
            f"{event_type!r} (or they lack properties its schema requires). {fix}"
        )
        later = (
            f"not sent: PrimeData dropped the {event_type!r} events sent before, as it has no "
            f"schema registered for {event_type!r}. {fix}"
        )
        return _with_message(
            failed, f"{reason}; later {event_type!r} events are skipped meanwhile"
        ).learning(NameDropped(event_type, later))

    def _registration(self, event_type: str) -> str:
        return (
            f"Register its schema in PrimeData and add {event_type!r} to "
            f"{setting_path('VENDORS', self.name, 'EVENT_TYPES')}, or map the event to a "
            f"registered alias in {setting_path('VENDORS', self.name, 'EVENT_NAMES')}"
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
    note(
        notes, event, f"{where}: moved into {where}.properties: {named(list(extra))}", lossless=True
    )
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
        note(
            notes,
            event,
            f"properties: objects sent as JSON strings: {named(as_json)}",
            lossless=True,
        )
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


def _note_placeholders(event: TrackedEvent, notes: Notes, **entities: Mapping[str, Any]) -> None:
    """Note an ``itemId``/``itemType`` given but unusable (``""``, an object...): it is sent
    as PrimeData's ``"_"`` placeholder, which a reader of the event should know."""
    for where, entity in entities.items():
        for key in ("itemId", "itemType"):
            if key in entity and _item_text(entity[key]) == NO_ITEM != entity[key]:
                note(notes, event, f"{where}.{key}: not a non-empty id, sent as {NO_ITEM!r}")


def _refused_details(attempt: Sent) -> list[tuple[int, str, str]]:
    """(event index, field in the event, description) of each detail of a 422 that
    names an event (``events[3].properties.total``)."""
    if attempt.outcome.http_status != 422 or attempt.response is None:
        return []
    payload = attempt.response.json()
    error = payload.get("error") if isinstance(payload, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    found = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        matched = REFUSED_FIELD.fullmatch(str(detail.get("field", "")))
        if matched:
            found.append((int(matched[1]), matched[2], str(detail.get("description", ""))))
    return found


def _refused_event(attempt: Sent, count: int) -> tuple[int, str, str] | None:
    """The first event of the request a 422 names, if any (index, field, description)."""
    return next((found for found in _refused_details(attempt) if found[0] < count), None)


def _refusal(
    attempt: Sent, found: tuple[int, str, str], request: VendorRequest, event: TrackedEvent
) -> Outcome:
    """The failed outcome of the one event a 422 named, in PrimeData's words about it."""
    _, field, description = found
    words = ": ".join(part for part in (field, description) if part) or "the event"
    message = attempt.outcome.message.split(";")[0] or "HTTP 422"
    refused = Outcome(
        OutcomeKind.FAILED,
        422,
        f"{message}; {words} (PrimeData refused this event; the others of its request were "
        "sent again without it)",
    )
    return refused.adjusted({str(event.id): request.notes.get(str(event.id), ())})


def _shortfall(
    outcome: Outcome, request: VendorRequest, processed: int, sent: int, what: str
) -> Outcome:
    """Some of the request processed, without saying which: delivered, flagged, never
    sent again (a resend would count the processed ones twice)."""
    logger.warning(
        "events=%s: PrimeData processed %d of %d %s without saying which; none is sent again",
        ",".join(request.event_ids),
        processed,
        sent,
        what,
    )
    cause = "" if what == "events" else ": its schema requires properties some of them lack"
    return _with_message(
        outcome,
        f"unconfirmed: PrimeData processed {processed} of the {sent} {what} in this request "
        f"without saying which{cause}; none is sent again (PrimeData cannot recognise a "
        "duplicate)",
    )


def _older_answer(outcome: Outcome, updated: Any, request: VendorRequest) -> Outcome:
    """``{"updated": N}``, the answer PrimeData's older documentation showed: it says
    whether a profile or session changed, not how many events were processed, so the
    request is delivered as the current documentation's 200 is, with a note. In Apache
    Unomi, which PrimeData's tracker appears to build on, the value is a bit field whose
    1 marks an error: that case is flagged and logged."""
    if isinstance(updated, int) and not isinstance(updated, bool) and updated & 1:
        logger.warning(
            "events=%s: PrimeData answered {'updated': %d}, which may mark an error",
            ",".join(request.event_ids),
            updated,
        )
        return _with_message(
            outcome,
            f'unconfirmed: PrimeData answered in its older form ({{"updated": {updated}}}), '
            "which does not count the events processed, and whose 1 bit marks an error in "
            "Apache Unomi, which its tracker appears to build on",
        )
    return _with_message(
        outcome,
        f'PrimeData answered in its older form ({{"updated": {updated!r}}}), which does not '
        "count the events processed",
    )


def _with_message(outcome: Outcome, message: str) -> Outcome:
    return dataclasses.replace(outcome, message=message)
