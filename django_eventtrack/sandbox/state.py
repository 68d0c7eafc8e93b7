"""What the sandbox's vendors remember between requests, as the real ones do.

Hellotext keeps profiles, browser sessions and whose they are, objects
(products, orders, carts...) found or created from ``object_parameters``, and
the custom actions a business created; it refuses an event that names any of
them wrongly. PrimeData keeps the event schemas registered for the data
source, and processes only events of a registered type.

Each class guards its state with its own lock, so request threads can share
it. The rules are the ones written in ``docs/vendors/hellotext.md`` and
``docs/vendors/primedata.md``; this module is their executable form and knows
nothing of the library.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

JSONObject = dict[str, Any]
#: An HTTP status and the JSON object sent with it.
Answer = tuple[int, JSONObject]

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


class HellotextDirectory:
    """Hellotext's profiles, sessions, objects and custom actions.

    Profiles are matched on email or phone, as Hellotext does. Every session is
    taken to have reached Hellotext from the browser unless :meth:`forget_session`
    says otherwise (then events and ``PATCH`` answer 404); a session attached
    to a profile stays with it. Objects are matched on type + ``reference`` +
    ``source``; a product can only be created with a ``name``.
    """

    def __init__(self, actions: Iterable[str] = ()) -> None:
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
        self._initial_actions = tuple(actions)
        for action in self._initial_actions:
            self.add_action(action)

    def clear(self) -> None:
        """Forget everything but the custom actions given when created."""
        with self._lock:
            self.profiles.clear()
            self.sessions.clear()
            self.unseen.clear()
            self.objects.clear()
            self._object_ids.clear()
            self.custom_actions.clear()
            self.events.clear()
        for action in self._initial_actions:
            self.add_action(action)

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
    amount = value.get("amount")
    if not isinstance(amount, int | float) or isinstance(amount, bool) or not math.isfinite(amount):
        return True
    return "currency" in value and not (isinstance(value["currency"], str) and value["currency"])


def _object_problem(parameters: JSONObject) -> Answer | None:
    """The documented shapes of ``object_parameters`` fields (products, orders, carts)."""
    for key in OBJECT_TEXT_FIELDS:
        if key in parameters and not (isinstance(parameters[key], str) and parameters[key]):
            message = f"object_parameters.{key} must be a non-empty string"
            return hellotext_error(422, "object_invalid", message, f"object_parameters.{key}")
    for key in OBJECT_MONEY_FIELDS:
        if key in parameters and _money_problem(parameters[key]):
            message = f"object_parameters.{key} must be {{amount: number, currency: string}}"
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
