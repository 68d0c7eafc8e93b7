"""PrimeData as the sandbox serves it (``docs/vendors/primedata.md``): ``POST
/powehi/smile`` and ``/powehi/context``, up to 500 events a request, with both client
headers.

PrimeData keeps the event schemas registered for the data source
(:class:`PrimeDataSchemas`) and processes only events of a registered type; the others
are left out of ``processedEvents``, not refused. A body its schema does not allow is a
422 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
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


class PrimeDataSchemas:
    """The event schemas (aliases) registered for the data source.

    ``None`` (the default) stands for a data source where every event type sent
    has been registered; after :meth:`register` only the registered ones (and
    PrimeData's built-in ``identify`` and ``SaveEntity``) are processed, and an
    event of any other type is dropped from ``processedEvents``, not refused.
    """

    BUILT_IN = frozenset({"identify", "SaveEntity"})

    def __init__(self, aliases: Iterable[str] | None = None) -> None:
        self._initial = None if aliases is None else frozenset(aliases)
        self.registered: frozenset[str] | None = self._initial

    def register(self, *aliases: str) -> None:
        self.registered = (self.registered or frozenset()) | frozenset(aliases)

    def processes(self, event_type: object) -> bool:
        if self.registered is None:
            return True
        return event_type in self.BUILT_IN or event_type in self.registered

    def clear(self) -> None:
        """Back to the aliases the sandbox was started with."""
        self.registered = self._initial


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


def _primedata_event_problem(event: object, field: str, client_id: str) -> Answer | None:
    if not isinstance(event, dict):
        return _primedata_invalid(field, "must be an object")
    return (
        _primedata_unknown(event, PRIMEDATA_EVENT_KEYS, field)
        or _primedata_event_fields_problem(event, field, client_id)
        or _primedata_properties_problem(event.get("properties", {}), f"{field}.properties")
        or _primedata_identify_problem(event, field)
        or _primedata_entity_problem(event.get("source"), f"{field}.source", client_id)
        or _primedata_entity_problem(event.get("target"), f"{field}.target", client_id)
    )


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
    if event.get("eventType") != "identify":
        return None
    target = event.get("target")
    if not isinstance(target, dict) or target.get("itemType") != "analyticsUser":
        return _primedata_invalid(
            f"{field}.target.itemType", 'must be "analyticsUser" for identify'
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
    for index, event in enumerate(events):
        problem = _primedata_event_problem(event, f"events[{index}]", client_id)
        if problem is not None:
            return problem
    return None


def _primedata_events(body: JSONObject) -> list[JSONObject]:
    events = body.get("events")
    return (
        [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []
    )


def _primedata_processed(incoming: Incoming) -> int:
    """How many events PrimeData processes: those of a registered type; the others
    are dropped from the count, not refused."""
    events = _primedata_events(incoming.body or {})
    schemas: PrimeDataSchemas = incoming.state
    return sum(schemas.processes(event.get("eventType")) for event in events)


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
            "ALIAS",
            "an event schema registered in PrimeData; once any is given, events of other "
            "types are left out of processedEvents",
            default=None,
        ),
    ),
)
