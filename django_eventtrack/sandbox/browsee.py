"""Browsee as the sandbox serves it (``docs/vendors/browsee.md``): ``POST /api/v1/track``
and ``POST /api/v1/identify``, with the API key in the body.

A request Browsee refuses gets its documented failure, 400 ``{"status": "failure"}``,
also for an identify whose ``traits.$tags`` is not the documented list of labels.
"""

from __future__ import annotations

from django_eventtrack.sandbox.spec import (
    Answer,
    Credentials,
    Endpoint,
    Incoming,
    JSONObject,
    VendorSpec,
    is_aware_iso8601,
    is_nonempty_string,
    single_event,
    unknown_key,
)


def _browsee_failure(message: str) -> JSONObject:
    return {"status": "failure", "message": message}


BROWSEE_TRACK_KEYS = frozenset(
    {"apiKey", "event", "properties", "userId", "anonymousId", "timestamp"}
)
BROWSEE_IDENTIFY_KEYS = frozenset({"apiKey", "userId", "anonymousId", "traits", "timestamp"})


def _browsee_problem(body: JSONObject) -> str | None:
    unknown = unknown_key(body, BROWSEE_TRACK_KEYS, "")
    if unknown is not None:
        return unknown
    if not is_nonempty_string(body.get("event")):
        return "event is required and must be a non-empty string"
    if "properties" in body and not isinstance(body["properties"], dict):
        return "properties must be an object"
    for key in ("userId", "anonymousId"):
        if key in body and not is_nonempty_string(body[key]):
            return f"{key} must be a non-empty string"
    if "userId" not in body and "anonymousId" not in body:
        return "userId or anonymousId is required"
    if "timestamp" in body and not is_aware_iso8601(body["timestamp"]):
        return "timestamp must be an ISO-8601 time with an offset or Z"
    return None


def validate_browsee_track(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /api/v1/track``: the key rides in the body, so a bad key is a 400 failure.

    Browsee's docs leave the status for a bad key open; the documented
    failure form is 400 ``{"status":"failure"}``, so that is what is answered.
    """
    if incoming.body is None:
        return 400, _browsee_failure(str(incoming.body_problem))
    if incoming.body.get("apiKey") != credentials["API_KEY"]:
        return 400, _browsee_failure("Invalid apiKey")
    problem = _browsee_problem(incoming.body)
    return None if problem is None else (400, _browsee_failure(problem))


def validate_browsee_identify(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /api/v1/identify``: ``apiKey``, ``userId`` or ``anonymousId``, ``traits`` object."""
    body = incoming.body
    if body is None:
        return 400, _browsee_failure(str(incoming.body_problem))
    if body.get("apiKey") != credentials["API_KEY"]:
        return 400, _browsee_failure("Invalid apiKey")
    unknown = unknown_key(body, BROWSEE_IDENTIFY_KEYS, "")
    if unknown is not None:
        return 400, _browsee_failure(unknown)
    for key in ("userId", "anonymousId"):
        if key in body and not is_nonempty_string(body[key]):
            return 400, _browsee_failure(f"{key} must be a non-empty string")
    if "userId" not in body and "anonymousId" not in body:
        return 400, _browsee_failure("userId or anonymousId is required")
    if "traits" in body and not isinstance(body["traits"], dict):
        return 400, _browsee_failure("traits must be an object")
    tags = body.get("traits", {}).get("$tags", [])
    if not isinstance(tags, list) or not all(is_nonempty_string(tag) for tag in tags):
        return 400, _browsee_failure("traits.$tags must be an array of labels (strings)")
    if "timestamp" in body and not is_aware_iso8601(body["timestamp"]):
        return 400, _browsee_failure("timestamp must be an ISO-8601 time with an offset or Z")
    return None


BROWSEE = VendorSpec(
    name="browsee",
    endpoints=(
        Endpoint(
            "POST",
            "/api/v1/track",
            validate_browsee_track,
            success=lambda incoming: (200, {"status": "success"}),
        ),
        Endpoint(
            "POST",
            "/api/v1/identify",
            validate_browsee_identify,
            success=lambda incoming: (200, {"status": "success"}),
        ),
    ),
    error_body=_browsee_failure,
    events=single_event,
    credentials={"API_KEY": "sandbox-browsee-key"},
)
