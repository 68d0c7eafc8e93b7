"""Hellotext as the sandbox serves it (``docs/vendors/hellotext.md``): the events,
profiles and sessions endpoints, and what Hellotext remembers between requests.

Hellotext keeps profiles, browser sessions and whose they are, objects (products,
orders, carts...) found or created from ``object_parameters``, and the custom actions a
business created; it refuses an event that names any of them wrongly
(:class:`HellotextDirectory`, guarded by its own lock so request threads can share it).
The validators are strict on purpose: whatever Hellotext documents as refused is refused
here, so the library's mistakes show up locally as Hellotext's own 4xx answer.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django_eventtrack.core.currencies import ISO_4217
from django_eventtrack.sandbox.spec import (
    Answer,
    Credentials,
    Endpoint,
    Incoming,
    JSONObject,
    StateOption,
    VendorSpec,
    is_aware_iso8601,
    is_nonempty_string,
    is_number,
    single_event,
)

#: Hellotext's built-in actions and the type of object each takes (None: no object).
HELLOTEXT_ACTIONS: dict[str, str | None] = {
    "subscribed": None,
    "unsubscribed": None,
    "page.viewed": None,
    **dict.fromkeys(("product.viewed", "product.purchased"), "product"),
    **dict.fromkeys(("cart.viewed", "cart.added", "cart.removed", "cart.abandoned"), "cart"),
    "checkout.started": "order",
    **dict.fromkeys(
        ("order.placed", "order.confirmed", "order.cancelled", "order.shipped", "order.delivered"),
        "order",
    ),
    "coupon.redeemed": "coupon",
    **dict.fromkeys(("refund.requested", "refund.received"), "refund"),
    "form.completed": "form",
    **dict.fromkeys(("app.installed", "app.removed", "app.spent"), "app"),
}
#: Actions Hellotext records itself; nobody may send them.
HELLOTEXT_GENERATED = frozenset(
    {"short_link.clicked", "product.browse_abandoned", "product.price_changed"}
    | {"order.printed_label"}
)
CUSTOM_ACTION_NAME = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
#: Fields of ``object_parameters`` that must be non-empty strings when present.
OBJECT_TEXT_FIELDS = ("reference", "source", "name", "sku", "url", "image_url", "code")
#: Fields holding a money object ``{amount, currency}``.
OBJECT_MONEY_FIELDS = ("price", "total")


def hellotext_error(status: int, kind: str, message: str, parameter: str | None) -> Answer:
    """Hellotext's error body: ``{"errors": [{type, message, parameter}]}``."""
    error = {"type": kind, "message": message}
    return status, {"errors": [error | ({"parameter": parameter} if parameter else {})]}


def _not_found(what: str, parameter: str) -> Answer:
    return hellotext_error(404, "not_found", f"{what} not found", parameter)


# -- what Hellotext remembers between requests -------------------------------------------------


class HellotextDirectory:
    """Hellotext's profiles, sessions, objects and custom actions.

    Profiles are matched on email or phone, as Hellotext does. Every session is
    taken to have reached Hellotext from the browser unless :meth:`forget_session`
    (or the ``unseen_sessions`` option) says otherwise (then events and ``PATCH``
    answer 404); a session attached to a profile stays with it. Objects are matched
    on type + ``reference`` + ``source``; a product can only be created with a ``name``.
    """

    def __init__(
        self,
        actions: Iterable[str] = (),
        unseen_sessions: Iterable[str] = (),
        seen_sessions: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, Iterator[int]] = {}
        self.profiles: dict[str, JSONObject] = {}
        self.sessions: dict[str, str] = {}
        self.unseen: set[str] = set()
        self.objects: dict[str, JSONObject] = {}
        #: (type, reference, source) -> object id: what Hellotext matches objects on.
        self._object_ids: dict[tuple[str, str, str | None], str] = {}
        self.custom_actions: set[str] = set()
        #: Every event accepted: action, profile, session and the object id it names.
        self.events: list[JSONObject] = []
        self._initial = {"actions": tuple(actions), "unseen_sessions": tuple(unseen_sessions)}
        self.seed(**self._initial)

    def clear(self) -> None:
        """Forget everything but the custom actions and unseen sessions given when created."""
        with self._lock:
            self.profiles.clear()
            self.sessions.clear()
            self.unseen.clear()
            self.objects.clear()
            self._object_ids.clear()
            self.custom_actions.clear()
            self.events.clear()
        self.seed(**self._initial)

    def seed(
        self,
        actions: Iterable[str] = (),
        unseen_sessions: Iterable[str] = (),
        seen_sessions: Iterable[str] = (),
    ) -> None:
        """Custom actions created, sessions Hellotext has not seen yet and sessions it has
        seen since (the options, by the command line and ``POST /_sandbox/seed``)."""
        for action in actions:
            self.add_action(action)
        for session in unseen_sessions:
            self.forget_session(session)
        for session in seen_sessions:
            self.see_session(session)

    # -- set up by tests and the demo ----------------------------------------------------

    def forget_session(self, session: str) -> None:
        """Answer 404 for ``session`` until :meth:`see_session` (not yet seen by Hellotext)."""
        with self._lock:
            self.unseen.add(session)

    def see_session(self, session: str) -> None:
        with self._lock:
            self.unseen.discard(session)

    def add_action(self, action: str) -> None:
        """Create the custom action ``action`` (lowercase ``noun.verb``), as the business
        does in Settings -> Actions before its first event."""
        if not CUSTOM_ACTION_NAME.fullmatch(action):
            raise ValueError(f"{action!r} is not a custom action name (lowercase noun.verb)")
        if action in HELLOTEXT_ACTIONS or action in HELLOTEXT_GENERATED:
            raise ValueError(f"{action!r} is one of Hellotext's own actions")
        with self._lock:
            self.custom_actions.add(action)

    def add_profile(self, profile_id: str | None = None, **fields: Any) -> str:
        """A profile Hellotext already has (created elsewhere); returns its id."""
        with self._lock:
            profile_id = profile_id or self._new_id("prf")
            self.profiles[profile_id] = dict(fields)
            return profile_id

    def delete_profile(self, profile_id: str) -> None:
        """Hellotext no longer has ``profile_id`` (deleted or merged on their side)."""
        with self._lock:
            self.profiles.pop(profile_id, None)

    def add_object(self, kind: str, object_id: str | None = None, **fields: Any) -> str:
        """An object Hellotext already has (created through its own API); returns its id."""
        with self._lock:
            object_id = object_id or self._new_id("obj")
            self.objects[object_id] = {"type": kind, **fields}
            if "reference" in fields:
                self._object_ids[(kind, fields["reference"], fields.get("source"))] = object_id
            return object_id

    def object_id(self, kind: str, reference: str, source: str) -> str | None:
        """The id of the ``kind`` object with that ``reference`` and ``source``, if any."""
        with self._lock:
            return self._object_ids.get((kind, reference, source))

    # -- the API -----------------------------------------------------------------------------

    def create_profile(self, body: JSONObject) -> Answer:
        with self._lock:
            for profile_id, profile in self.profiles.items():
                if any(
                    body.get(key) and body.get(key) == profile.get(key)
                    for key in ("email", "phone")
                ):
                    return 200, _profile(profile_id, profile)
            profile_id = self._new_id("prf")
            self.profiles[profile_id] = dict(body)
            return 201, _profile(profile_id, body)

    def attach(self, session: str, profile_id: str) -> Answer:
        with self._lock:
            if session in self.unseen:
                return _not_found("Session", "session")
            if profile_id not in self.profiles:
                return _not_found("Profile", "profile")
            bound = self.sessions.setdefault(session, profile_id)
            return 200, {
                "id": session,
                "type": "session",
                "profile": bound,
                "created_at": int(time.time()),
            }

    def track(self, body: JSONObject) -> Answer:
        """``POST /v1/attribution/events`` once the body's shape is valid: the action, the
        profile, the session and the object must all be ones Hellotext knows."""
        action = str(body["action"])
        with self._lock:
            if action not in HELLOTEXT_ACTIONS and action not in self.custom_actions:
                return _not_found("Action", "action")
            refusal = self._identity_refusal(body)
            if refusal is not None:
                return refusal
            found = self._object_for(action, body)
            if isinstance(found, tuple):
                return found
            self.events.append(
                {
                    "action": action,
                    "profile": body.get("profile"),
                    "session": body.get("session"),
                    "object": found,
                }
            )
        return 200, {"status": "received"}

    # -- inside the lock ---------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        """``prf00001``, ``obj00001``...: numbered per kind, in the order created."""
        return f"{prefix}{next(self._ids.setdefault(prefix, itertools.count(1))):05d}"

    def _identity_refusal(self, body: JSONObject) -> Answer | None:
        profile, session = body.get("profile"), body.get("session")
        if profile is not None and profile not in self.profiles:
            return _not_found("Profile", "profile")
        if session is None:
            return None
        if session in self.unseen:
            return _not_found("Session", "session")
        owner = self.sessions.get(session)
        if profile is not None and owner not in (None, profile):
            return hellotext_error(
                422,
                "identity_assigned",
                "the session is already assigned to another profile",
                "session",
            )
        return None

    def _object_for(self, action: str, body: JSONObject) -> str | Answer | None:
        """The id of the event's object (found or created), None without one, or the refusal."""
        if "object" in body:
            if body["object"] not in self.objects:
                return _not_found("Object", "object")
            return str(body["object"])
        kind = body.get("object_type") or HELLOTEXT_ACTIONS.get(action)
        parameters = body.get("object_parameters")
        if parameters is None:
            if HELLOTEXT_ACTIONS.get(action) is None:
                return None
            return hellotext_error(
                422,
                "parameter_missing",
                f"{action} needs object or object_parameters",
                "object",
            )
        if kind is None:
            return hellotext_error(
                422,
                "parameter_missing",
                "object_type is required for a custom object",
                "object_type",
            )
        return self._find_or_create(str(kind), parameters)

    def _find_or_create(self, kind: str, parameters: JSONObject) -> str | Answer:
        problem = _object_problem(parameters)
        if problem is not None:
            return problem
        key = (kind, parameters.get("reference"), parameters.get("source"))
        if key[1] is not None and key in self._object_ids:
            return self._object_ids[key]
        if kind == "product" and "name" not in parameters:
            return hellotext_error(
                422,
                "parameter_missing",
                "name is required to create a product",
                "object_parameters.name",
            )
        object_id = self._new_id("obj")
        self.objects[object_id] = {"type": kind, **parameters}
        if key[1] is not None:
            self._object_ids[key] = object_id  # type: ignore[index]
        return object_id


def _profile(profile_id: str, body: JSONObject) -> JSONObject:
    return {"id": profile_id, "type": "profile", **body}


def _money_problem(value: object) -> bool:
    if not isinstance(value, dict) or set(value) - {"amount", "currency"}:
        return True
    if not is_number(value.get("amount")):
        return True
    return "currency" in value and value["currency"] not in ISO_4217


def _object_problem(parameters: JSONObject) -> Answer | None:
    """The documented shapes of ``object_parameters`` fields (products, orders, carts)."""
    for key in OBJECT_TEXT_FIELDS:
        if key in parameters and not (isinstance(parameters[key], str) and parameters[key]):
            message = f"object_parameters.{key} must be a non-empty string"
            return hellotext_error(422, "object_invalid", message, f"object_parameters.{key}")
    for key in OBJECT_MONEY_FIELDS:
        if key in parameters and _money_problem(parameters[key]):
            message = (
                f"object_parameters.{key} must be {{amount: number, currency: an ISO 4217 code}}"
            )
            return hellotext_error(422, "object_invalid", message, f"object_parameters.{key}")
    items = parameters.get("items", [])
    if not isinstance(items, list) or not all(
        isinstance(item, dict)
        and "product" in item
        and ("price" not in item or not _money_problem(item["price"]))
        for item in items
    ):
        message = "object_parameters.items must be a list of {product, quantity, price}"
        return hellotext_error(422, "object_invalid", message, "object_parameters.items")
    return None


# -- the requests Hellotext accepts -------------------------------------------------------------

HELLOTEXT_KEYS = frozenset(
    {
        "action",
        "profile",
        "session",
        "object",
        "object_parameters",
        "object_type",
        "amount",
        "currency",
        "tracked_at",
        "metadata",
        "url",
    }
)
#: Keys of the old docs that the current page forbids, with their replacement.
HELLOTEXT_LEGACY_KEYS = {
    "profile_id": "profile",
    "session_id": "session",
    "product": "object",
    "product_id": "object",
}
_HELLOTEXT_UNAUTHORIZED: Answer = (
    401,
    {"errors": [{"type": "unauthorized", "message": "Invalid or missing token"}]},
)

#: Epoch seconds this large are the year 5138: it is a time in milliseconds. Hellotext
#: documents seconds and is silent on milliseconds (our reading: refused).
EPOCH_MILLISECONDS = 10**11

#: (error type, message, parameter) of a Hellotext 422.
_HellotextProblem = tuple[str, str, str]


def _hellotext_error_body(message: str) -> JSONObject:
    return {"errors": [{"type": "invalid", "message": message}]}


def _hellotext_authorized(incoming: Incoming, credentials: Credentials) -> bool:
    return incoming.headers.get("authorization") == f"Bearer {credentials['API_TOKEN']}"


def _hellotext_problem(body: JSONObject) -> _HellotextProblem | None:
    """The first thing Hellotext refuses in an event body, checked in Hellotext's order."""
    return (
        _hellotext_key_problem(body)
        or _hellotext_field_problem(body)
        or _hellotext_combination_problem(body)
    )


def _hellotext_key_problem(body: JSONObject) -> _HellotextProblem | None:
    """A key of the old docs, or one the current page does not list."""
    for key, replacement in HELLOTEXT_LEGACY_KEYS.items():
        if key in body:
            return "invalid", f"{key} is no longer supported; send {replacement}", key
    for key in body:
        if key not in HELLOTEXT_KEYS:
            return "invalid", f"{key} is not a known parameter", key
    return None


def _hellotext_field_problem(body: JSONObject) -> _HellotextProblem | None:
    """A field of the wrong type, each on its own."""
    action = body.get("action")
    if action is None or action == "":
        return "parameter_missing", "action is missing", "action"
    if not isinstance(action, str):
        return "invalid", "action must be a string", "action"
    for key in ("profile", "session", "object", "object_type", "currency", "url"):
        if key in body and not is_nonempty_string(body[key]):
            return "invalid", f"{key} must be a non-empty string", key
    if "profile" not in body and "session" not in body:
        return "parameter_missing", "profile or session is missing", "profile"
    for key in ("object_parameters", "metadata"):
        if key in body and not isinstance(body[key], dict):
            return "invalid", f"{key} must be an object", key
    if "amount" in body and not is_number(body["amount"]):
        return "invalid", "amount must be a number", "amount"
    return None


def _hellotext_combination_problem(body: JSONObject) -> _HellotextProblem | None:
    """Fields that need another (a currency its amount, page.viewed its url), and the time."""
    if "currency" in body and "amount" not in body:
        return "parameter_missing", "amount is required when currency is sent", "amount"
    if "currency" in body and body["currency"] not in ISO_4217:
        return "invalid", "currency must be an ISO 4217 code, such as USD", "currency"
    tracked_at = body.get("tracked_at")
    if isinstance(tracked_at, int) and not isinstance(tracked_at, bool):
        if abs(tracked_at) >= EPOCH_MILLISECONDS:
            message = "tracked_at is in epoch seconds; this looks like milliseconds"
            return "invalid", message, "tracked_at"
    elif "tracked_at" in body and not is_aware_iso8601(tracked_at):
        message = "tracked_at must be an ISO-8601 time with an offset or Z, or epoch seconds"
        return "invalid", message, "tracked_at"
    if body.get("action") == "page.viewed" and "url" not in body:
        return "parameter_missing", "url is required for page.viewed", "url"
    return None


def _hellotext_unreadable(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """The answer to a request without the private token or without a JSON object."""
    if not _hellotext_authorized(incoming, credentials):
        return _HELLOTEXT_UNAUTHORIZED
    if incoming.body is None:
        return 400, _hellotext_error_body(str(incoming.body_problem))
    return None


def _hellotext_invalid(message: str, parameter: str | None = None, kind: str = "invalid") -> Answer:
    return hellotext_error(422, kind, message, parameter)


def validate_hellotext_event(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``POST /v1/attribution/events``: bearer token, then the current body contract."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    problem = _hellotext_problem(incoming.body)
    if problem is None:
        return None
    error_type, message, parameter = problem
    return _hellotext_invalid(message, parameter, error_type)


def validate_hellotext_profiles(incoming: Incoming, credentials: Credentials) -> Answer | None:
    """``GET /v1/profiles``: the documented way to check a token."""
    return None if _hellotext_authorized(incoming, credentials) else _HELLOTEXT_UNAUTHORIZED


#: Fields ``POST /v1/profiles`` takes and the JSON types they hold.
HELLOTEXT_PROFILE_FIELDS: dict[str, tuple[type, ...]] = {
    "first_name": (str,),
    "last_name": (str,),
    "email": (str, dict),
    "phone": (str, dict),
    "reference": (str,),
    "lists": (list,),
    "session": (str,),
    "property_by_id": (dict,),
}


def validate_hellotext_profile_create(
    incoming: Incoming, credentials: Credentials
) -> Answer | None:
    """``POST /v1/profiles``: private token; known fields of the right JSON types."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    for key, value in incoming.body.items():
        types = HELLOTEXT_PROFILE_FIELDS.get(key)
        if types is None:
            return _hellotext_invalid(f"unknown profile field {key!r}", key)
        if not isinstance(value, types):
            return _hellotext_invalid(f"{key} has the wrong type", key)
    if not any(incoming.body.get(key) for key in ("email", "phone", "reference")):
        return _hellotext_invalid("a profile needs an email, phone or reference")
    return None


def validate_hellotext_session_attach(
    incoming: Incoming, credentials: Credentials
) -> Answer | None:
    """``PATCH /v1/sessions/{id}``: private token and ``{"profile": "<id>"}``."""
    unreadable = _hellotext_unreadable(incoming, credentials)
    if unreadable is not None or incoming.body is None:
        return unreadable
    if not is_nonempty_string(incoming.body.get("profile")):
        return _hellotext_invalid("profile is required and must be a profile id", "profile")
    return None


def _hellotext_attach(incoming: Incoming) -> Answer:
    session = incoming.path.rsplit("/", 1)[-1]
    directory: HellotextDirectory = incoming.state
    return directory.attach(session, str((incoming.body or {})["profile"]))


def _hellotext_track(incoming: Incoming) -> Answer:
    """A well-formed event still needs an action, profile, session and object Hellotext knows."""
    directory: HellotextDirectory = incoming.state
    return directory.track(incoming.body or {})


# -- the spec (the adapter's ``sandbox`` names it) ---------------------------------------------

HELLOTEXT = VendorSpec(
    name="hellotext",
    endpoints=(
        Endpoint(
            "POST",
            "/v1/attribution/events",
            validate_hellotext_event,
            success=_hellotext_track,
            legacy_success=lambda incoming: (201, {"state": "ok"}),
        ),
        Endpoint(
            "GET",
            "/v1/profiles",
            validate_hellotext_profiles,
            success=lambda incoming: (200, {"data": []}),
        ),
        Endpoint(
            "POST",
            "/v1/profiles",
            validate_hellotext_profile_create,
            success=lambda incoming: incoming.state.create_profile(incoming.body or {}),
        ),
        Endpoint(
            "PATCH",
            "/v1/sessions/{session}",
            validate_hellotext_session_attach,
            success=_hellotext_attach,
        ),
    ),
    error_body=_hellotext_error_body,
    events=single_event,
    credentials={"API_TOKEN": "sandbox-hellotext-token"},
    state=HellotextDirectory,
    options=(
        StateOption(
            "action",
            "actions",
            "ACTION",
            "a custom action the Hellotext business has created (lowercase noun.verb)",
        ),
        StateOption(
            "unseen-session",
            "unseen_sessions",
            "SESSION",
            "a session Hellotext has not seen from the browser yet: events and PATCH naming "
            "it get a 404 until it is seeded as seen",
        ),
        StateOption(
            "seen-session",
            "seen_sessions",
            "SESSION",
            "a session Hellotext.js has since reported",
            command_line=False,
        ),
    ),
)
