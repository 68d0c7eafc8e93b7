"""PrimeData as the sandbox serves it (``docs/vendors/primedata.md``): ``POST
/powehi/smile`` and ``/powehi/context``, up to 500 events a request, with both client
headers.

PrimeData keeps the event schemas registered for the data source
(:class:`PrimeDataSchemas`) and processes only events of a registered type that carry
the properties their schema requires; the others are left out of ``processedEvents``,
not refused. A body its schema does not allow (a property of the wrong type, an event
without a session, an identify without PII) is a 422 naming the event and field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django_eventtrack.sandbox.spec import (
    Answer,
    Credentials,
    Endpoint,
    Incoming,
    JSONObject,
    StateOption,
    VendorSpec,
    is_aware_iso8601,
    is_number,
)

#: The property types a schema declares, and what each holds.
SCHEMA_TYPES = ("boolean", "number", "string", "array")
#: The PII keys an ``identify`` target's properties bind a session to a profile by.
PII_KEYS = frozenset({"email", "phone", "cellphone", "phone_number", "device_id", "id"})
#: What stands for "every type registered" in the options.
ANY_TYPE = "*"


@dataclass(frozen=True)
class Schema:
    """A registered event schema: its alias, the properties it requires and the type
    each declared property holds (PrimeData's schema registration body)."""

    alias: str
    required: frozenset[str] = frozenset()
    types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Schema:
        """An alias (``order.placed``), or PrimeData's registration body as JSON:
        ``{"alias": ..., "required": [...], "properties": {name: {"type": ...}}}``."""
        if not text.lstrip().startswith("{"):
            return cls(text.strip())
        try:
            body = json.loads(text)
        except ValueError as error:
            raise ValueError(f"schema {text!r} is not valid JSON: {error}") from None
        properties = body.get("properties", {}) if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(properties, dict):
            raise ValueError('a schema is {"alias", "required": [...], "properties": {...}}')
        types = {
            name: spec.get("type") if isinstance(spec, dict) else spec
            for name, spec in properties.items()
        }
        return cls.of(str(body.get("alias", "")), body.get("required", ()), types)

    @classmethod
    def of(cls, alias: str, required: Iterable[str], types: Mapping[str, Any]) -> Schema:
        if not alias:
            raise ValueError("a schema needs an alias")
        wrong = sorted(name for name, kind in types.items() if kind not in SCHEMA_TYPES)
        if wrong:
            raise ValueError(f"{alias}: the types of {', '.join(wrong)} are not {SCHEMA_TYPES}")
        return cls(alias, frozenset(required), dict(types))


class PrimeDataSchemas:
    """The event schemas registered for the data source.

    Nothing is registered at first: only PrimeData's built-in ``identify`` and
    ``SaveEntity`` are processed, and an event of any other type is dropped from
    ``processedEvents``, not refused, as is one lacking a property its schema
    requires. ``"*"`` registers every type, without rules.
    """

    BUILT_IN = frozenset({"identify", "SaveEntity"})

    def __init__(self, aliases: Iterable[str] = ()) -> None:
        self._initial = tuple(aliases)
        self.schemas: dict[str, Schema] = {}
        self.any_type = False
        self.seed(self._initial)

    @property
    def registered(self) -> frozenset[str]:
        """The aliases registered (``"*"`` among them when every type is)."""
        return frozenset(self.schemas) | ({ANY_TYPE} if self.any_type else frozenset())

    def seed(self, aliases: Iterable[str] = ()) -> None:
        """Register each of ``aliases``: an alias, a schema as JSON, or ``"*"``."""
        for text in aliases:
            if text.strip() == ANY_TYPE:
                self.any_type = True
            else:
                schema = Schema.parse(text)
                self.schemas = {**self.schemas, schema.alias: schema}

    def register(
        self, *aliases: str, required: Iterable[str] = (), types: Mapping[str, str] | None = None
    ) -> None:
        """Register schemas for ``aliases``, each requiring ``required`` and declaring
        ``types`` (property -> ``boolean``, ``number``, ``string`` or ``array``)."""
        added = {alias: Schema.of(alias, required, types or {}) for alias in aliases}
        self.schemas = {**self.schemas, **added}

    def processes(self, event: Mapping[str, Any]) -> bool:
        """Whether PrimeData processes ``event``: a built-in type, or a registered one
        carrying every property its schema requires."""
        event_type = event.get("eventType")
        if event_type in self.BUILT_IN:
            return True
        schema = self.schemas.get(str(event_type))
        if schema is None:
            return self.any_type
        properties = event.get("properties") or {}
        return schema.required <= set(properties)

    def type_problem(self, event: Mapping[str, Any]) -> tuple[str, str] | None:
        """A property of ``event`` whose value is not of its schema's type: (key, type)."""
        schema = self.schemas.get(str(event.get("eventType")))
        properties = event.get("properties")
        if schema is None or not isinstance(properties, dict):
            return None
        for key, kind in schema.types.items():
            if key in properties and not _of_type(properties[key], kind):
                return key, kind
        return None

    def clear(self) -> None:
        """Back to the schemas the sandbox was started with."""
        self.schemas = {}
        self.any_type = False
        self.seed(self._initial)


def _of_type(value: object, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return is_number(value)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, list)


# -- the requests PrimeData accepts -------------------------------------------------------------

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
    return isinstance(value, bool | str | list) or is_number(value)


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


def _primedata_event_problem(
    event: object, field: str, client_id: str, context: _Context
) -> Answer | None:
    if not isinstance(event, dict):
        return _primedata_invalid(field, "must be an object")
    return (
        _primedata_unknown(event, PRIMEDATA_EVENT_KEYS, field)
        or _primedata_event_fields_problem(event, field, client_id)
        or _primedata_session_problem(event, field, context.session)
        or _primedata_properties_problem(event.get("properties", {}), f"{field}.properties")
        or _primedata_schema_problem(event, field, context.schemas)
        or _primedata_identify_problem(event, field)
        or _primedata_entity_problem(event.get("source"), f"{field}.source", client_id)
        or _primedata_entity_problem(event.get("target"), f"{field}.target", client_id)
    )


@dataclass(frozen=True)
class _Context:
    """What an event is checked against besides itself: the request's ``sessionId`` and
    the schemas registered."""

    session: object
    schemas: PrimeDataSchemas


def _primedata_session_problem(event: dict[str, Any], field: str, session: object) -> Answer | None:
    """Every event but an entity's belongs to a session (events dynamics: "every
    non-system event carries a client-generated session ID"), its own or the request's;
    the docs made the top-level one optional, so per event is the stricter reading."""
    if event.get("eventType") == "SaveEntity" or event.get("sessionId") or session:
        return None
    return _primedata_invalid(f"{field}.sessionId", "is required: every event belongs to a session")


def _primedata_schema_problem(
    event: dict[str, Any], field: str, schemas: PrimeDataSchemas
) -> Answer | None:
    problem = schemas.type_problem(event)
    if problem is None:
        return None
    key, kind = problem
    return _primedata_invalid(f"{field}.properties.{key}", f"must be a {kind} (its schema's type)")


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
    if not is_aware_iso8601(event.get("timeStamp")):
        return _primedata_invalid(
            f"{field}.timeStamp", "is required: an ISO-8601 time with an offset or Z"
        )
    if "sendAt" in event and not is_aware_iso8601(event["sendAt"]):
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
    """An ``identify`` binds its session to the person its target's PII names: the target
    is an ``analyticsUser`` whose properties hold one of the PII keys."""
    if event.get("eventType") != "identify":
        return None
    target = event.get("target")
    if not isinstance(target, dict) or target.get("itemType") != "analyticsUser":
        return _primedata_invalid(
            f"{field}.target.itemType", 'must be "analyticsUser" for identify'
        )
    properties = target.get("properties")
    if not isinstance(properties, dict) or not any(
        isinstance(properties.get(key), str | int) and str(properties[key]) for key in PII_KEYS
    ):
        return _primedata_invalid(
            f"{field}.target.properties",
            f"identify needs PII: one of {', '.join(sorted(PII_KEYS))}",
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
    if "sendAt" in body and not is_aware_iso8601(body["sendAt"]):
        return _primedata_invalid("sendAt", "must be an ISO-8601 time with an offset or Z")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return _primedata_invalid("events", "is required and must be a non-empty array")
    if len(events) > PRIMEDATA_MAX_EVENTS:
        return _primedata_invalid(
            "events", f"must contain at most {PRIMEDATA_MAX_EVENTS} items, got {len(events)}"
        )
    schemas = incoming.state if isinstance(incoming.state, PrimeDataSchemas) else None
    context = _Context(body.get("sessionId"), schemas or PrimeDataSchemas())
    for index, event in enumerate(events):
        problem = _primedata_event_problem(event, f"events[{index}]", client_id, context)
        if problem is not None:
            return problem
    return None


def _primedata_events(body: JSONObject) -> list[JSONObject]:
    events = body.get("events")
    return (
        [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []
    )


def _primedata_processed(incoming: Incoming) -> int:
    """How many events PrimeData processes: those of a registered type with the properties
    it requires; the others are dropped from the count, not refused."""
    events = _primedata_events(incoming.body or {})
    schemas: PrimeDataSchemas = incoming.state
    return sum(schemas.processes(event) for event in events)


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
            "SCHEMA",
            "an event schema registered in PrimeData: its alias, or its registration body as "
            'JSON ({"alias": ..., "required": [...], "properties": {"total": {"type": '
            '"number"}}}), or * for every type; events of other types, and events without '
            "a required property, are left out of processedEvents",
        ),
    ),
)
