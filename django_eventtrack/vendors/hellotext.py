"""Hellotext: ``POST /v1/attribution/events``, one event per request.

What is sent, field by field, and why, is in ``docs/vendors/hellotext.md``. In
short: the event name is the ``action``, which must be a Hellotext action (a
built-in one, or a custom action declared in ``ACTIONS``), else the event is
skipped with the way to map it; the visitor is a ``profile`` and/or
``session``; the event time is ``tracked_at``. The action's object comes from
the property named after its noun (``order`` for ``order.placed``) and is sent
as ``object_parameters``, the data Hellotext finds or creates the object by,
matched on ``reference`` + ``source`` (``source`` defaults to
``OBJECT_SOURCE``): a dict as given, a plain string as the ``reference`` (with
the event's ``name`` property as its name). Only
an explicit ``object`` property is sent as a Hellotext object id. Built-in
actions that need an object and have none are skipped, not refused, and so is a
product described without a ``name`` (Hellotext cannot create it) unless
``PRODUCTS_SYNCED`` says Hellotext has every product already. Currencies are ISO
4217 codes, sent upper-case; an event with any other is skipped.

The answer is read by its error ``type`` and ``parameter``, never by its
English text:

* ``identity_assigned`` (the session belongs to another profile): sent again
  at once without the session, and the session's owner is remembered, so later
  events of that profile leave it out before sending;
* ``not_found`` on the ``profile`` (Hellotext no longer has a profile we
  kept): the profile is forgotten and, for a known user, created again once
  (by the sender, :meth:`create_profile`), then the event is retried;
* ``not_found`` on the ``session`` (a server event on a visitor's first page
  can beat Hellotext.js to Hellotext): retried for :data:`UNSEEN_SESSION_WAIT`
  after the event, then sent with the profile alone, or failed without one. It is
  the answer Hellotext documents for that case, not Hellotext failing
  (:attr:`Outcome.expected`): the circuit breaker and the window do not count it.
  A 404 naming no parameter is not read so (it can be an unknown action: failed).

``identify()`` follows Hellotext's backend flow in up to two requests:
``POST /v1/profiles`` creates the user's profile (once: the id is kept per
user), then ``PATCH /v1/sessions/{session}`` attaches the visitor's browser
session to it. A session already attached to another profile is left with it
(Hellotext never moves one, and neither do we) and remembered as that
profile's.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Literal, NamedTuple
from urllib.parse import quote

from django.utils import timezone

from django_eventtrack.core.browser_ids import BrowserId
from django_eventtrack.core.currencies import iso_4217
from django_eventtrack.core.event import Identity, JSONValue, TrackedEvent
from django_eventtrack.core.settings import parse_bool, parse_event_names, parse_names, setting_path
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.vendors.base import (
    DeclaredEvent,
    JSONObject,
    Notes,
    Outcome,
    OutcomeKind,
    OwnSetting,
    ProfileGone,
    ProfileStore,
    Send,
    SessionOwner,
    VendorAdapter,
    VendorRequest,
    VendorResponse,
    iso_utc,
    note,
)

#: Hellotext's built-in actions (docs/vendors/hellotext.md, "Actions").
BUILT_IN_ACTIONS = frozenset(
    {
        "subscribed",
        "unsubscribed",
        "page.viewed",
        "product.viewed",
        "product.purchased",
        "cart.viewed",
        "cart.added",
        "cart.removed",
        "cart.abandoned",
        "checkout.started",
        "order.placed",
        "order.confirmed",
        "order.cancelled",
        "order.shipped",
        "order.delivered",
        "coupon.redeemed",
        "refund.requested",
        "refund.received",
        "form.completed",
        "app.installed",
        "app.removed",
        "app.spent",
    }
)
#: Built-in actions that take no object (``page.viewed`` takes a ``url`` instead).
ACTIONS_WITHOUT_OBJECT = frozenset({"subscribed", "unsubscribed", "page.viewed"})
#: Actions Hellotext records by itself; sending them is not allowed.
GENERATED_ACTIONS = frozenset(
    {"short_link.clicked", "product.browse_abandoned", "product.price_changed"}
    | {"order.printed_label"}
)
#: A custom action's tracking name: lowercase ``noun.verb``.
CUSTOM_ACTION = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
#: ``source`` of the objects we describe, unless a setting or the object says otherwise.
DEFAULT_OBJECT_SOURCE = "django"
#: Hellotext request fields a caller may set through properties.
PASSTHROUGH_FIELDS = ("object_type", "url")
NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")
#: Longer numeric strings are not amounts (and may not convert: int digit limits, inf).
MAX_NUMERIC_STRING = 32
#: Traits ``POST /v1/profiles`` takes; others are not sent.
PROFILE_FIELDS = ("first_name", "last_name", "email", "phone", "lists")
#: How long after the event a session Hellotext has not seen yet is waited for:
#: Hellotext.js reports it within the visitor's first page view, so minutes are
#: plenty; retried every :data:`UNSEEN_SESSION_RETRY` seconds or more, which
#: with the default ``MAX_ATTEMPTS`` (10) outlasts the wait.
UNSEEN_SESSION_WAIT = timedelta(minutes=4)
UNSEEN_SESSION_RETRY = 30.0
#: Hellotext.js's cookie and short-link query parameter (docs/vendors/hellotext.md).
SESSION_COOKIE = "hello_session"
#: The identity keys of Hellotext's ids.
PROFILE = "profile"
SESSION = "session"


def parse_actions(value: Any, where: str) -> frozenset[str]:
    """``ACTIONS``: the custom actions created in Hellotext (lowercase ``noun.verb``)."""
    actions = parse_names(value, where)
    for action in sorted(actions):
        if not CUSTOM_ACTION.fullmatch(action):
            raise ConfigurationError(
                f"{where}: {action!r} is not a custom action name; Hellotext's are "
                "lowercase noun.verb, like 'appointment.booked'"
            )
        if action in BUILT_IN_ACTIONS or action in GENERATED_ACTIONS:
            raise ConfigurationError(
                f"{where}: {action!r} is one of Hellotext's own actions, not a custom one; "
                "remove it (built-in actions need no declaring)"
            )
    return actions


def parse_source(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a non-empty string, like 'my-shop'")
    return value.strip()


class HellotextError(NamedTuple):
    """The first error of a Hellotext answer: its ``type`` and ``parameter``."""

    type: str | None
    parameter: str | None


class HellotextAdapter(VendorAdapter):
    """Hellotext's attribution events API, with the business's private token."""

    name: ClassVar[str] = "hellotext"
    display_name: ClassVar[str] = "Hellotext"
    credential_settings: ClassVar[tuple[str, ...]] = ("API_TOKEN",)
    default_api_url: ClassVar[str] = "https://api.hellotext.com"
    #: Default ``PURPOSES``: what this vendor's events serve (see the privacy docs).
    default_purposes: ClassVar[tuple[str, ...]] = ("marketing",)
    path: ClassVar[str] = "/v1/attribution/events"
    identify_path: ClassVar[str] = "/v1/profiles"
    erasure_instructions: ClassVar[str] = (
        "Delete the profile in Hellotext's dashboard (Hellotext documents no deletion API, "
        "and deleting a profile there is not the whole erasure: ask Hellotext to erase the "
        "rest of this person's data)"
    )
    remembers_profiles: ClassVar[bool] = True
    profile_key: ClassVar[str | None] = PROFILE
    session_key: ClassVar[str | None] = SESSION
    browser_ids: ClassVar[tuple[BrowserId, ...]] = (
        BrowserId(PROFILE, "Hellotext profile id"),
        BrowserId(
            SESSION,
            f"Hellotext session id (the {SESSION_COOKIE} cookie)",
            cookie=SESSION_COOKIE,
            query=SESSION_COOKIE,
            visitor="session",
        ),
    )
    sandbox: ClassVar[str | None] = "django_eventtrack.sandbox.hellotext.HELLOTEXT"
    own_settings: ClassVar[Mapping[str, OwnSetting]] = {
        "ACTIONS": (parse_actions, frozenset()),
        "OBJECT_SOURCE": (parse_source, DEFAULT_OBJECT_SOURCE),
        "OBJECTS": (parse_event_names, {}),
        "PRODUCTS_SYNCED": (parse_bool, False),
    }
    plan_keys: ClassVar[Mapping[str, str]] = {
        "action": "the Hellotext action (EVENT_NAMES; a custom one is added to ACTIONS)",
        "object": "the property holding the action's object (OBJECTS)",
    }

    @classmethod
    def settings_from_plan(cls, mappings: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """``action`` is the event's name here (``EVENT_NAMES``), and one that is not
        built in is a custom action (``ACTIONS``); ``object`` names the property the
        action's object comes from (``OBJECTS``)."""
        actions = {event: m["action"] for event, m in mappings.items() if "action" in m}
        custom = sorted(set(actions.values()) - BUILT_IN_ACTIONS)
        objects = {event: m["object"] for event, m in mappings.items() if "object" in m}
        derived: dict[str, Any] = {"EVENT_NAMES": actions, "ACTIONS": custom, "OBJECTS": objects}
        return {key: value for key, value in derived.items() if value}

    def plan_notes(self, event: DeclaredEvent) -> list[str]:
        """An action that needs its object (or ``page.viewed`` its url) skips the events
        the plan lets go without it."""
        notes = super().plan_notes(event)
        if notes:
            return notes
        action = self.config.event_names.get(event.name, event.name)
        if action == "page.viewed":
            needed = ["url"]
        elif self._needs_object(action):
            needed = [*self._object_properties(event.name, action), "object", "object_parameters"]
        else:
            return []
        if any(name in event.required for name in needed):
            return []
        what = "its url" if action == "page.viewed" else f"its object ({needed[0]!r})"
        declared = [name for name in needed if name in event.properties]
        if not declared and event.closed:
            return [
                f"Hellotext skips every {event.name!r} event: {action} needs {what}, "
                "which the plan does not declare"
            ]
        return [
            f"Hellotext skips {event.name!r} events without {what}: {action} needs it, "
            "and the plan does not require it"
        ]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.credential('API_TOKEN')}"}

    @property
    def custom_actions(self) -> frozenset[str]:
        actions: frozenset[str] = self.config.options.get("ACTIONS", frozenset())
        return actions

    @property
    def object_source(self) -> str:
        return str(self.config.options.get("OBJECT_SOURCE", DEFAULT_OBJECT_SOURCE))

    # -- deciding ---------------------------------------------------------
    def name_refusal(self, name: str) -> str | None:
        """Hellotext refuses (404) an action it does not know, so an event that maps
        to none is skipped with the way to map it."""
        action = self.config.event_names.get(name, name)
        if action in BUILT_IN_ACTIONS or action in self.custom_actions:
            return None
        names = setting_path("VENDORS", self.name, "EVENT_NAMES")
        actions = setting_path("VENDORS", self.name, "ACTIONS")
        called = f"{name!r}" if action == name else f"{name!r} (mapped to {action!r})"
        if action in GENERATED_ACTIONS:
            return f"{called} is an action Hellotext records itself and cannot be sent"
        return (
            f"{called} is not a Hellotext action: map it to a built-in action (such as "
            f"'order.placed') in {names}, or create a custom action in Hellotext and "
            f"declare it in {actions}"
        )

    def skip_reason(self, event: TrackedEvent) -> str | None:
        if not (event.identity.get(PROFILE) or event.identity.get(SESSION)):
            return (
                "Hellotext needs a profile or session id (identify() the user, whose events "
                "then carry their profile; pass profile= or session=; or use the middleware)"
            )
        refusal = self.name_refusal(event.name)
        if refusal is not None:
            return refusal
        action = self.vendor_event_name(event)
        if action == "page.viewed" and not _text(event.properties.get("url")):
            return "Hellotext's page.viewed needs a url property (a non-empty string)"
        described = self._object(event, dict(event.properties))
        if self._needs_object(action) and not described:
            noun = action.split(".", 1)[0]
            return (
                f"Hellotext's {action} needs its {noun}: give the event the property {noun!r} "
                "(a dict such as {'reference': ..., 'name': ...}, or your reference string), "
                "or 'object' (a Hellotext object id) or 'object_parameters'"
            )
        return self._nameless_product(event, described) or _currency_refusal(event, described)

    def _nameless_product(self, event: TrackedEvent, described: JSONObject) -> str | None:
        """Hellotext creates a product it does not know from ``object_parameters`` only
        with a ``name``: without one, the event is refused (422) unless Hellotext has the
        product already, which ``PRODUCTS_SYNCED`` declares for every product."""
        parameters = described.get("object_parameters")
        if not isinstance(parameters, dict) or _text(parameters.get("name")):
            return None
        action = self.vendor_event_name(event)
        kind = event.properties.get("object_type") or (
            action.split(".", 1)[0] if self._needs_object(action) else None
        )
        if kind != "product" or self.config.options.get("PRODUCTS_SYNCED"):
            return None
        reference = parameters.get("reference")
        product = f"the product {reference!r}" if reference is not None else "the product"
        return (
            f"Hellotext's {action}: {product} has no name, and Hellotext can only create a "
            "product it does not know with one: give the event a 'name' property (or the "
            "product dict a 'name'); if Hellotext already has every product (synced through "
            f"its products API), set {setting_path('VENDORS', self.name, 'PRODUCTS_SYNCED')} "
            "= True"
        )

    # -- building ---------------------------------------------------------
    def body(self, events: Sequence[TrackedEvent], notes: Notes) -> JSONObject:
        (event,) = events
        metadata = dict(event.properties)
        body: JSONObject = {"action": self.vendor_event_name(event)}
        body |= _visitor(event.identity)
        body |= self._object(event, metadata)
        if isinstance(body.get("object_parameters"), dict):
            body["object_parameters"] = _iso_money(event, body["object_parameters"], notes)
        body |= {key: metadata.pop(key) for key in PASSTHROUGH_FIELDS if _text(metadata.get(key))}
        body |= _revenue(event, metadata, notes)
        body["tracked_at"] = iso_utc(event.timestamp)
        if metadata:
            body["metadata"] = metadata
        return body

    def _needs_object(self, action: str) -> bool:
        return action in BUILT_IN_ACTIONS and action not in ACTIONS_WITHOUT_OBJECT

    def _object(self, event: TrackedEvent, metadata: dict[str, JSONValue]) -> JSONObject:
        """The action's object; pops the properties it uses.

        An explicit ``object`` is a Hellotext object id and explicit
        ``object_parameters`` are sent as given (with our ``source`` unless they
        name one). For a built-in action, the property ``OBJECTS`` names for the
        event, else the one named after the action's noun (``cart`` for
        ``cart.added``), else after our event's noun, is the
        object described by our own data: a dict as ``object_parameters``, a
        string or integer as their ``reference``, with the event's ``name``
        property as the object's name (Hellotext needs one to create a product).
        Never a shop id as ``object``: Hellotext refuses an object id it did not
        hand out.
        """
        if _text(metadata.get("object")):
            return {"object": metadata.pop("object")}
        parameters = metadata.get("object_parameters")
        if isinstance(parameters, dict):
            del metadata["object_parameters"]
            return {"object_parameters": self._described(parameters)}
        action = self.vendor_event_name(event)
        if not self._needs_object(action):
            return {}
        for noun in self._object_properties(event.name, action):
            value = metadata.get(noun)
            if isinstance(value, dict):
                del metadata[noun]
                return {"object_parameters": self._described(value)}
            if _text(value) or (isinstance(value, int) and not isinstance(value, bool)):
                del metadata[noun]
                described: dict[str, JSONValue] = {"reference": str(value)}
                if _text(metadata.get("name")):
                    described["name"] = metadata.pop("name")
                return {"object_parameters": self._described(described)}
        return {}

    def _object_properties(self, name: str, action: str) -> list[str]:
        """Where the object of ``name`` is looked for: the property ``OBJECTS`` names, then
        the action's noun, then our event's."""
        objects: Mapping[str, str] = self.config.options.get("OBJECTS", {})
        nouns = (objects.get(name), action.split(".", 1)[0], name.split(".", 1)[0])
        return [noun for noun in dict.fromkeys(nouns) if noun]

    def _described(self, parameters: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """``parameters`` with our ``source``: Hellotext matches objects on ``reference``
        + ``source``, so the same order keeps being the same object."""
        return {"source": self.object_source, **parameters}

    # -- sending ----------------------------------------------------------
    def send_events(self, events: Sequence[TrackedEvent], send: Send) -> Outcome:
        (event,) = events
        request = self.build_request(events)
        attempt = send(request)
        outcome = attempt.outcome.adjusted(request.notes)
        error = _first_error(attempt.response)
        identity = event.identity
        session, profile = identity.get(SESSION), identity.get(PROFILE)
        if error.type == "identity_assigned" and session and profile:
            owner = SessionOwner(session, "")
            line = "session not sent: Hellotext says it belongs to another profile"
            return self._again(event, send, line, leave_out="session").learning(owner)
        if error.type == "not_found" or outcome.http_status == 404:
            return self._not_found(event, error, outcome, send)
        return outcome

    def _again(
        self,
        event: TrackedEvent,
        send: Send,
        line: str,
        *,
        leave_out: Literal["session", "profile"],
    ) -> Outcome:
        """``event`` sent once more without its ``leave_out`` id (``line`` says why)."""
        retry = event.about(event.identity.replace(**{leave_out: None}))
        notes: Notes = {}
        note(notes, event, line)
        request = self.build_request([retry])
        return self.sent(request, send).adjusted(notes)

    def _not_found(
        self, event: TrackedEvent, error: HellotextError, outcome: Outcome, send: Send
    ) -> Outcome:
        identity = event.identity
        profile, session = identity.get(PROFILE), identity.get(SESSION)
        if error.parameter == "profile" and profile:
            gone = ProfileGone(profile, identity.user_id)
            if identity.user_id:
                return Outcome(
                    OutcomeKind.RETRY,
                    404,
                    "Hellotext no longer has this user's profile; it is created again, "
                    "then the event is sent",
                    retry_after=0.0,
                ).learning(gone)
            if session:
                line = "profile not sent: Hellotext no longer has it"
                return self._again(event, send, line, leave_out="profile").learning(gone)
            return outcome.learning(gone)
        # Only a 404 naming the session is an unseen one: without a parameter it can be
        # an action Hellotext does not know, which it says never to retry unchanged.
        if session and error.parameter == "session":
            return self._unseen_session(event, send, outcome)
        return outcome

    def _unseen_session(self, event: TrackedEvent, send: Send, outcome: Outcome) -> Outcome:
        """Wait for Hellotext.js to bring the session; past the wait, send without it."""
        if _waiting_for_session(event):
            return Outcome(
                OutcomeKind.RETRY,
                404,
                f"Hellotext has not seen this session yet (it comes from Hellotext.js in the "
                f"browser); retrying for {_minutes(UNSEEN_SESSION_WAIT)} after the event",
                retry_after=UNSEEN_SESSION_RETRY,
                adjustments=outcome.adjustments,
                expected=True,
            )
        if event.identity.get(PROFILE):
            line = (
                f"session not sent: Hellotext had not seen it "
                f"{_minutes(UNSEEN_SESSION_WAIT)} after the event"
            )
            return self._again(event, send, line, leave_out="session")
        return dataclasses.replace(
            outcome,
            kind=OutcomeKind.FAILED,
            message=f"Hellotext never saw this session within {_minutes(UNSEEN_SESSION_WAIT)} "
            "of the event (does the page load Hellotext.js?), and there is no profile to "
            "send the event with",
        )

    def create_profile(self, user_id: str, send: Send) -> str | None:
        """``POST /v1/profiles`` with our user id as the ``reference``."""
        url = self.config.api_url + self.identify_path
        created = send(self.request("POST", url, {"reference": user_id}, []))
        return _id_in(created.response) if created.outcome.ok else None

    # -- identify ---------------------------------------------------------
    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        """``POST /v1/profiles``: our user id as the ``reference``, plus known traits."""
        traits = event.properties
        profile: JSONObject = {"reference": event.identity.user_id}
        return profile | {key: traits[key] for key in PROFILE_FIELDS if traits.get(key)}

    def attach_request_for(self, event: TrackedEvent, profile: str) -> VendorRequest:
        """``PATCH /v1/sessions/{session}`` with ``{"profile": ...}``."""
        session = quote(str(event.identity.get(SESSION)), safe="")
        url = f"{self.config.api_url}/v1/sessions/{session}"
        return self.request("PATCH", url, {"profile": profile}, [event])

    def send_identify(self, event: TrackedEvent, send: Send, profiles: ProfileStore) -> Outcome:
        user_id = str(event.identity.user_id)
        profile: str | Outcome = profiles.get(self.name, user_id) or self._created(
            event, send, profiles
        )
        if isinstance(profile, Outcome):
            return profile
        if not event.identity.get(SESSION):
            return Outcome(OutcomeKind.DELIVERED, None, f"profile {profile}; no session to attach")
        attached = send(self.attach_request_for(event, profile))
        if _first_error(attached.response) == HellotextError("not_found", "profile"):
            # Hellotext lost the profile we kept: forget it, create it again once.
            profiles.forget(self.name, profile)
            profile = self._created(event, send, profiles)
            if isinstance(profile, Outcome):
                return profile
            attached = send(self.attach_request_for(event, profile))
        return self._attached(event, attached.outcome, attached.response, profile, profiles)

    def _created(self, event: TrackedEvent, send: Send, profiles: ProfileStore) -> str | Outcome:
        """The user's new profile id (kept), or the outcome of failing to create it."""
        created = send(self.identify_request(event))
        if not created.outcome.ok:
            return created.outcome
        new_profile = _id_in(created.response)
        if new_profile is None:
            return Outcome(
                OutcomeKind.FAILED,
                created.outcome.http_status,
                "Hellotext created a profile but its answer carries no id",
            )
        return profiles.remember(self.name, str(event.identity.user_id), new_profile)

    def _attached(
        self,
        event: TrackedEvent,
        outcome: Outcome,
        response: VendorResponse | None,
        profile: str,
        profiles: ProfileStore,
    ) -> Outcome:
        """Read the PATCH answer. A session Hellotext has not seen is waited for; one that
        belongs to another profile is left with it, and remembered as that profile's."""
        session = str(event.identity.get(SESSION))
        error = _first_error(response)
        if outcome.http_status == 404 and error.parameter in ("session", None):
            if _waiting_for_session(event):
                return Outcome(
                    OutcomeKind.RETRY,
                    404,
                    "Hellotext has not seen this session yet (it reaches Hellotext from the "
                    "browser); retrying later",
                    retry_after=UNSEEN_SESSION_RETRY,
                    expected=True,
                )
            return Outcome(
                OutcomeKind.FAILED,
                404,
                f"profile {profile} kept, but Hellotext never saw the session within "
                f"{_minutes(UNSEEN_SESSION_WAIT)} of the login, so it was not attached",
            )
        payload = response.json() if response is not None else None
        bound = payload.get("profile") if isinstance(payload, dict) else None
        if error.type == "identity_assigned" or (outcome.ok and bound not in (None, "", profile)):
            owner = str(bound) if outcome.ok and bound else ""
            profiles.remember_session(self.name, session, owner)
            return Outcome(
                OutcomeKind.DELIVERED,
                outcome.http_status,
                f"profile {profile}; the session belongs to another Hellotext profile and "
                "stays with it (this profile's events are sent without it)",
            )
        if outcome.ok:
            profiles.remember_session(self.name, session, profile)
        return outcome

    # -- reading the answer -----------------------------------------------
    def failure_in_success(self, payload: Any) -> str | None:
        """A 2xx whose body lists ``errors`` (or one ``error``) is a refusal."""
        if isinstance(payload, dict) and (payload.get("errors") or payload.get("error")):
            return self.error_message(payload) or "Hellotext answered with errors"
        return None

    def error_message(self, payload: Any) -> str | None:
        """Hellotext's ``errors[]`` list, or the single ``error`` form."""
        if not isinstance(payload, dict):
            return None
        errors = payload.get("errors")
        if isinstance(errors, list):
            messages = [_describe(error) for error in errors if isinstance(error, dict)]
            return "; ".join(message for message in messages if message) or None
        error = payload.get("error")
        if isinstance(error, dict):
            return _describe(error) or None
        if isinstance(error, str):
            return error
        return None


def _first_error(response: VendorResponse | None) -> HellotextError:
    """``type`` and ``parameter`` of the first error in the answer (either form)."""
    payload = response.json() if response is not None else None
    if not isinstance(payload, dict):
        return HellotextError(None, None)
    errors = payload.get("errors")
    error = errors[0] if isinstance(errors, list) and errors else payload.get("error")
    if not isinstance(error, dict):
        return HellotextError(None, None)
    kind, parameter = error.get("type"), error.get("parameter")
    return HellotextError(
        kind if isinstance(kind, str) else None, parameter if isinstance(parameter, str) else None
    )


def _waiting_for_session(event: TrackedEvent) -> bool:
    return timezone.now() - event.timestamp < UNSEEN_SESSION_WAIT


def _minutes(wait: timedelta) -> str:
    return f"{wait.total_seconds() / 60:g} minutes"


def _id_in(response: VendorResponse | None) -> str | None:
    payload = response.json() if response is not None else None
    value = payload.get("id") if isinstance(payload, dict) else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _visitor(identity: Identity) -> JSONObject:
    """``profile`` and ``session``; Hellotext accepts both together."""
    visitor: JSONObject = {}
    if profile := identity.get(PROFILE):
        visitor["profile"] = profile
    if session := identity.get(SESSION):
        visitor["session"] = session
    return visitor


def _text(value: JSONValue) -> bool:
    """A non-empty string: what Hellotext takes for its string fields."""
    return isinstance(value, str) and value != ""


def _revenue(event: TrackedEvent, metadata: dict[str, JSONValue], notes: Notes) -> JSONObject:
    """``amount`` (and then ``currency``) when the amount is a number; pops what it uses.

    A currency without a usable amount is dropped: Hellotext refuses it (422).
    """
    currency = metadata.pop("currency") if _text(metadata.get("currency")) else None
    if currency is not None:
        currency = _iso_currency(event, currency, "currency", notes)
    amount = _number(metadata.get("amount"))
    if "amount" in metadata and amount is None:
        note(notes, event, "amount is not a number: sent in metadata, not as revenue")
    if amount is None:
        if currency is not None:
            note(notes, event, "currency not sent: Hellotext refuses a currency without amount")
        return {}
    del metadata["amount"]
    return {"amount": amount} if currency is None else {"amount": amount, "currency": currency}


def _iso_currency(event: TrackedEvent, value: JSONValue, where: str, notes: Notes) -> str | None:
    """``value`` as the upper-case ISO 4217 code Hellotext takes (noted when changed);
    None, noted, when it is no code at all (the event is skipped before it gets here)."""
    code = iso_4217(value)
    if code is None:
        note(notes, event, f"{where}: {value!r} is not an ISO 4217 code, not sent")
    elif code != value:
        note(notes, event, f"{where}: {value!r} sent as {code!r} (ISO 4217)", lossless=True)
    return code


def _money(parameters: Mapping[str, JSONValue]) -> Iterator[tuple[str, dict[str, JSONValue]]]:
    """Each money object ``{amount, currency}`` of an object's parameters, with where it
    is: the object's ``price`` and ``total``, its items' and variants' ``price``, and
    the ``price`` of a product described inside an item."""
    for key in ("price", "total"):
        if isinstance(money := parameters.get(key), dict):
            yield key, money
    for key in ("items", "variants"):
        entries = parameters.get(key)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict):
                continue
            if isinstance(money := entry.get("price"), dict):
                yield f"{key}[{index}].price", money
            product = entry.get("product")
            if isinstance(product, dict) and isinstance(money := product.get("price"), dict):
                yield f"{key}[{index}].product.price", money


def _iso_money(
    event: TrackedEvent, parameters: dict[str, JSONValue], notes: Notes
) -> dict[str, JSONValue]:
    """``parameters`` (a copy, when changed) with each money object's currency as its
    upper-case ISO 4217 code."""
    wrong = [where for where, money in _money(parameters) if _needs_fixing(money)]
    if not wrong:
        return parameters
    fitted = copy.deepcopy(parameters)
    for where, money in _money(fitted):
        if "currency" in money:
            field = f"object_parameters.{where}.currency"
            code = _iso_currency(event, money["currency"], field, notes)
            if code is None:
                del money["currency"]
            else:
                money["currency"] = code
    return fitted


def _needs_fixing(money: Mapping[str, JSONValue]) -> bool:
    return "currency" in money and iso_4217(money["currency"]) != money["currency"]


def _currency_refusal(event: TrackedEvent, described: JSONObject) -> str | None:
    """Why the event is skipped for a currency that is no ISO 4217 code (Hellotext
    refuses it: 422), naming where it is; None when every currency is one."""
    given: list[tuple[str, JSONValue]] = []
    if _text(currency := event.properties.get("currency")):
        given.append(("the event's currency", currency))
    parameters = described.get("object_parameters")
    if isinstance(parameters, dict):
        given += [
            (f"object_parameters.{where}.currency", money["currency"])
            for where, money in _money(parameters)
            if "currency" in money
        ]
    for where, value in given:
        if iso_4217(value) is None:
            return (
                f"{where} {value!r} is not an ISO 4217 currency code (three letters, such as "
                "'USD' or 'EUR'), which Hellotext requires: fix it in the event's properties"
            )
    return None


def _number(value: JSONValue) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if (
        isinstance(value, str)
        and len(value) <= MAX_NUMERIC_STRING
        and NUMERIC_STRING.fullmatch(value)
    ):
        return float(value) if "." in value else int(value)
    return None


def _describe(error: dict[str, Any]) -> str:
    """``type: message (parameter name)``, from whichever of those keys are present;
    ``message`` and ``description`` are aliases in Hellotext's docs."""
    text = error.get("message") or error.get("description") or ""
    if error.get("type"):
        text = f"{error['type']}: {text}" if text else str(error["type"])
    if error.get("parameter"):
        text = f"{text} (parameter {error['parameter']})"
    return str(text).strip()
