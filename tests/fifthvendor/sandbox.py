"""Acme as the sandbox serves it: what ``POST /v1/events`` and ``POST /v1/users`` accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django_eventtrack.sandbox.spec import (
    Answer,
    Credentials,
    Endpoint,
    Incoming,
    JSONObject,
    VendorSpec,
)

MAX_EVENTS = 50


def _error(message: str) -> JSONObject:
    return {"error": message}


def _unreadable(incoming: Incoming, credentials: Credentials) -> Answer | None:
    if incoming.headers.get("x-acme-key") != credentials["API_KEY"]:
        return 401, _error("bad X-Acme-Key")
    if incoming.body is None:
        return 400, _error(str(incoming.body_problem))
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _aware(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _event_problem(event: Any, where: str) -> str | None:
    if not isinstance(event, dict) or set(event) - {"type", "visitor", "user", "properties", "at"}:
        return f"{where} must be an object of type, visitor, user, properties and at"
    if not _text(event.get("type")):
        return f"{where}.type is required"
    if not (_text(event.get("visitor")) or _text(event.get("user"))):
        return f"{where} needs a visitor or a user"
    if not isinstance(event.get("properties", {}), dict):
        return f"{where}.properties must be an object"
    return None if _aware(event.get("at")) else f"{where}.at must be an ISO-8601 time with Z"


def validate_events(incoming: Incoming, credentials: Credentials) -> Answer | None:
    unreadable = _unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    body = incoming.body
    events = body.get("events")
    if set(body) != {"channel", "events"} or not _text(body.get("channel")):
        return 400, _error("the body is {channel, events}")
    if not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS:
        return 400, _error(f"events must hold 1 to {MAX_EVENTS} events")
    for index, event in enumerate(events):
        problem = _event_problem(event, f"events[{index}]")
        if problem is not None:
            return 400, _error(problem)
    return None


def validate_users(incoming: Incoming, credentials: Credentials) -> Answer | None:
    unreadable = _unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    body = incoming.body
    if not _text(body.get("user")) or not isinstance(body.get("traits"), dict):
        return 400, _error("a user and its traits are required")
    return None


def _events(body: JSONObject) -> list[JSONObject]:
    events = body.get("events")
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else [body]


ACME = VendorSpec(
    name="acme",
    endpoints=(
        Endpoint(
            "POST",
            "/v1/events",
            validate_events,
            success=lambda incoming: (200, {"accepted": len((incoming.body or {})["events"])}),
        ),
        Endpoint("POST", "/v1/users", validate_users, success=lambda incoming: (200, {})),
    ),
    error_body=_error,
    events=_events,
    credentials={"API_KEY": "sandbox-acme-key"},
)
