"""What every vendor adapter shares: the request description, the outcome, and
the reading of HTTP answers.

An adapter is pure: events in, a :class:`VendorRequest` out; a
:class:`VendorResponse` in, an :class:`Outcome` out. It never opens a socket
(the shared HTTP layer in :mod:`django_eventtrack.delivery.http` does), so the same
adapter serves a dry run, a synchronous send and a background worker.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeGuard

from django.utils import timezone

from django_eventtrack.core.browser_ids import ANONYMOUS_ID, BrowserId
from django_eventtrack.core.redaction import redact, truncate
from django_eventtrack.core.settings import (
    env_name,
    parse_bool,
    parse_count,
    parse_event_names,
    parse_names,
    parse_optional_seconds,
    parse_purposes,
    parse_seconds,
    parse_timeout,
    parse_url,
    setting,
    setting_path,
)

if TYPE_CHECKING:
    from django_eventtrack.core.event import Identity, TrackedEvent

JSONObject = dict[str, Any]
#: A vendor's own setting: its parser ``(raw value, where to fix it) -> value`` and default.
OwnSetting = tuple[Callable[[Any, str], Any], Any]

DEFAULT_CONNECT_TIMEOUT = 3.05
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 10
#: A request that reaches a vendor but gets no answer is sent again, and every event in
#: it then reaches the vendor twice: 50 bounds what one lost answer costs, while a full
#: window of such requests still carries hundreds of events per round trip.
DEFAULT_EVENTS_PER_REQUEST = 50
DEFAULT_MAX_AGE = 3 * 24 * 3600.0
#: What a user's vendor profile is taken to be while it may still be created
#: (:meth:`VendorAdapter.tracked_skip_reason`); never sent.
PROFILE_TO_COME = "profile-to-come"

#: Statuses that mean "not now, try again later" for every vendor. 408 and 425
#: are the HTTP spellings of "too early / too slow", 429 is rate limiting and
#: every 5xx is the vendor's own trouble (docs/vendors/, "What we retry").
RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: Statuses that mean "not these credentials": a missing, wrong or revoked key (401) or
#: an account that may not use the API (403). About the vendor, not the event.
CREDENTIALS_STATUSES = frozenset({401, 403})
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class VendorConfig:
    """One vendor's resolved settings. ``active`` is False when credentials are absent.

    The fields made with :func:`~django_eventtrack.core.settings.setting` are the options
    every vendor has (``EVENTTRACK["VENDORS"][vendor][KEY]``, or ``EVENTTRACK_<VENDOR>_KEY``);
    declaring one here is all it takes to add one. An adapter's ``default_<field>`` class
    attribute, when it has one, is its vendor's default for that option.
    """

    name: str
    credentials: Mapping[str, str]
    #: ``API_URL``: scheme and host (a path prefix allowed); the adapter's ``default_api_url``.
    api_url: str = setting(parse_url, "")
    #: ``EVENTS``: only these event names go to the vendor (None: every event).
    events: frozenset[str] | None = setting(parse_names, None)
    #: ``EVENT_NAMES``: our event name -> the vendor's.
    event_names: Mapping[str, str] = setting(parse_event_names, {})
    #: ``CONNECT_TIMEOUT`` and ``TIMEOUT`` (to read the answer) of one request, in seconds.
    connect_timeout: float = setting(parse_timeout, DEFAULT_CONNECT_TIMEOUT)
    read_timeout: float = setting(parse_timeout, DEFAULT_READ_TIMEOUT, key="TIMEOUT")
    #: ``EVENTS_PER_REQUEST``: the most events one request carries, for a vendor that takes
    #: several (at most its ``max_batch_size``); the sender halves it after a request that
    #: got no answer, which may reach the vendor twice, and grows it back as answers come.
    events_per_request: int = setting(parse_count, DEFAULT_EVENTS_PER_REQUEST)
    #: ``MAX_ATTEMPTS``: a delivery fails after this many.
    max_attempts: int = setting(parse_count, DEFAULT_MAX_ATTEMPTS)
    #: ``MAX_AGE``: seconds after which an undelivered event is given up (``failed``); by
    #: default the adapter's ``default_max_age``.
    max_age: float = setting(parse_seconds, DEFAULT_MAX_AGE)
    #: ``MAX_LATENESS``: seconds after the event's own time past which it is not sent
    #: (``skipped``), for a vendor that records when an event arrives or forbids historical
    #: data; None: no limit. By default the adapter's ``default_max_lateness``.
    max_lateness: float | None = setting(parse_optional_seconds, None)
    #: ``IDENTIFY``: whether ``identify()`` calls go to this vendor.
    identify: bool = setting(parse_bool, True)
    #: ``PURPOSES``: what the vendor's events serve (the adapter's ``default_purposes``); an
    #: event goes to it only when the visitor granted every one of them.
    purposes: tuple[str, ...] = setting(parse_purposes, ())
    #: ``ENABLED``: false turns a configured vendor off (``active`` is then false).
    enabled: bool = setting(parse_bool, True)
    active: bool = True
    #: The settings only this vendor has (its adapter's ``own_settings``), resolved.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The identity keys that may stand for the visitor, best first (every vendor's
    #: ``session`` ids, then our anonymous id): see :class:`BrowserId`.
    visitor_ids: tuple[str, ...] = (ANONYMOUS_ID,)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential value, for redaction."""
        return tuple(value for value in self.credentials.values() if value)

    def credential(self, key: str) -> str:
        return self.credentials[key]

    def __repr__(self) -> str:
        return f"VendorConfig(name={self.name!r}, api_url={self.api_url!r}, active={self.active})"


@dataclass(frozen=True)
class DeclaredEvent:
    """An event as a tracking plan declares it, for an adapter to judge
    (:meth:`VendorAdapter.plan_notes`): each property's JSON Schema (references
    resolved) and which properties are required."""

    name: str
    properties: Mapping[str, Mapping[str, Any]]
    required: frozenset[str] = frozenset()
    closed: bool = False

    def declared_type(self, name: str) -> tuple[str, ...]:
        """The JSON types property ``name`` may have (empty: any)."""
        declared = self.properties.get(name, {}).get("type", ())
        return (declared,) if isinstance(declared, str) else tuple(declared)


class OutcomeKind(StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SessionOwner:
    """Learnt from an answer: browser ``session`` belongs to vendor profile ``profile``
    (empty when the vendor only said "not to the profile you sent")."""

    session: str
    profile: str


@dataclass(frozen=True)
class ProfileGone:
    """Learnt from an answer: the vendor no longer has ``profile`` (``user_id``'s, if known)."""

    profile: str
    user_id: str | None


@dataclass(frozen=True)
class NameDropped:
    """Learnt from an answer: the vendor drops every event it gets as ``name`` (its own
    name, after ``EVENT_NAMES``); ``reason`` says why and how to fix it. The sender
    keeps it for every process and skips later events of that name with the reason
    (:meth:`VendorAdapter.known_drop`)."""

    name: str
    reason: str


#: What an answer taught about the vendor, for the sender to keep.
Learned = SessionOwner | ProfileGone | NameDropped
#: Per event id, what was changed to fit the vendor (one short line each).
Adjustments = tuple[tuple[str, tuple[str, ...]], ...]
#: Filled by an adapter while it builds a request: event id -> adjustment lines.
Notes = dict[str, list[str]]


@dataclass(frozen=True)
class Outcome:
    """The verdict on one attempt, with a message that is safe to log and store.

    ``learned``, ``adjustments`` and ``singled_out`` are empty on the common path, so
    equal verdicts still compare equal (the sender records them together).
    """

    kind: OutcomeKind
    http_status: int | None = None
    message: str = ""
    retry_after: float | None = None
    learned: tuple[Learned, ...] = ()
    adjustments: Adjustments = ()
    #: Events of the request whose verdict is their own (event id, outcome): a batch
    #: whose vendor refused one event and took the others; the rest share this one.
    singled_out: tuple[tuple[str, Outcome], ...] = ()
    #: An answer the vendor documents for this case (a Hellotext session that has not
    #: reached Hellotext yet): the vendor is well, so its circuit breaker and window do
    #: not count it against it, whatever becomes of the delivery.
    expected: bool = False
    #: The vendor refused the credentials (:meth:`VendorAdapter.refuses_credentials`):
    #: a retry, never counted as an attempt; the sender pauses the vendor for every
    #: process until a request with these credentials is accepted again.
    credentials_refused: bool = False

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED

    def adjusted(self, notes: Mapping[str, Sequence[str]]) -> Outcome:
        """This outcome carrying ``notes`` (what the request changed to fit the vendor),
        after the lines it has already for the same events."""
        if not any(notes.values()):
            return self
        merged = {event_id: lines for event_id, lines in self.adjustments}
        for event_id, lines in notes.items():
            if lines:
                merged[event_id] = (*merged.get(event_id, ()), *lines)
        return replace(self, adjustments=tuple(merged.items()))

    def learning(self, *facts: Learned) -> Outcome:
        """This outcome carrying ``facts`` for the sender to keep (:func:`api.learn`)."""
        return replace(self, learned=self.learned + facts)

    def singling_out(self, event_id: str, outcome: Outcome) -> Outcome:
        """This outcome, but ``outcome`` for the event ``event_id`` of the request."""
        return replace(self, singled_out=(*self.singled_out, (event_id, outcome)))

    def for_event(self, event_id: str) -> Outcome:
        """The verdict on the event ``event_id`` of the request (:attr:`singled_out`)."""
        for singled, outcome in self.singled_out:
            if singled == event_id:
                return outcome
        return replace(self, singled_out=()) if self.singled_out else self


class Reshaped(str):
    """A note line for a change that keeps every value, in a form the vendor takes (an
    object as a JSON string): an operator is told at INFO, a loss at WARNING."""

    __slots__ = ()


def note(notes: Notes, event: TrackedEvent, line: str, *, lossless: bool = False) -> None:
    """Record that building ``event``'s request changed something (``line`` says what;
    ``lossless``: every value is still there, in another form)."""
    notes.setdefault(str(event.id), []).append(Reshaped(line) if lossless else line)


def named(keys: Sequence[str], limit: int = 5) -> str:
    """``a, b, c`` for a few property names, ``a, b, c, d, e and 3 more`` for many."""
    shown = ", ".join(keys[:limit])
    return f"{shown} and {len(keys) - limit} more" if len(keys) > limit else shown


@dataclass(frozen=True)
class VendorRequest:
    """An HTTP request described as data: what would go on the wire."""

    vendor: str
    method: str
    url: str
    headers: Mapping[str, str]
    body: JSONObject
    event_ids: tuple[str, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: What building the body changed to fit the vendor, per event id.
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        """The exact bytes sent: compact UTF-8 JSON."""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()

    def masked(self) -> dict[str, Any]:
        """The request with every credential masked, for ``--dry-run`` and logs."""
        text = redact(json.dumps(self.body, ensure_ascii=False, indent=2), self.secrets)
        return {
            "method": self.method,
            "url": redact(self.url, self.secrets),
            "headers": {k: redact(v, self.secrets) for k, v in self.headers.items()},
            "body": json.loads(text),
        }


@dataclass(frozen=True)
class VendorResponse:
    """What came back: status, headers (lower-cased names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return None


class ProfileStore(Protocol):
    """Where a vendor's own profile ids for our users are kept (the database, in
    production: :mod:`django_eventtrack.identify`)."""

    def get(self, vendor: str, user_id: str) -> str | None: ...

    def remember(self, vendor: str, user_id: str, profile_id: str) -> str:
        """Keep ``profile_id`` unless one is already known; return the one kept."""
        ...

    def forget(self, vendor: str, profile_id: str) -> None:
        """The vendor no longer has ``profile_id``: stop sending it."""
        ...

    def remember_session(self, vendor: str, session: str, profile_id: str) -> None:
        """``session`` belongs to ``profile_id`` (empty: to a profile we do not know)."""
        ...


class Sent(Protocol):
    """One request sent: its outcome and the answer, if any (the HTTP layer's ``Attempt``)."""

    @property
    def outcome(self) -> Outcome: ...

    @property
    def response(self) -> VendorResponse | None: ...


#: Sends one request and returns what happened (the shared HTTP layer, or a fake in tests).
Send = Callable[[VendorRequest], Sent]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unreadable header; clamps to an hour so a
    hostile or buggy answer cannot park a delivery for a year.
    """
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def spelled_duration(seconds: float) -> str:
    """``35 days``, ``2 hours``, ``4 minutes``, ``12 seconds``: the largest whole unit."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = int(seconds)
    return f"{count} second{'s' if count != 1 else ''}"


class VendorAdapter:
    """Base of the vendor modules; subclasses hold only what differs.

    Class attributes describe the vendor to the rest of the library, which asks
    the registry (``EVENTTRACK["ADAPTERS"]``) instead of naming a vendor: to the
    settings layer (which credentials it needs, its own settings, its default
    base URL), to the web side (its browser ids), to the sender (how many events
    one request may carry) and to the sandbox (its validator).
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    #: Setting names of the credentials, all required for the vendor to be active.
    credential_settings: ClassVar[tuple[str, ...]]
    #: Default ``API_URL``. (Any ``default_<field>`` is the vendor's default for that
    #: :class:`VendorConfig` option.)
    default_api_url: ClassVar[str]
    #: The documented path appended to ``API_URL``.
    path: ClassVar[str]
    max_batch_size: ClassVar[int] = 1
    #: A vendor whose requests carry several events: the body key of the list with one
    #: entry per event, in order. It builds each event's :meth:`entry` and the
    #: :meth:`envelope` around them instead of :meth:`body`, so each event's extra
    #: reaches its own entry only (:meth:`build_request`). None: one event per request,
    #: or a batching vendor that builds :meth:`body` itself (then an event with an
    #: extra is sent alone).
    entries_key: ClassVar[str | None] = None
    #: Settings of this vendor alone: name -> (parser, default), read like any other.
    own_settings: ClassVar[Mapping[str, OwnSetting]] = {}
    #: Default ``MAX_AGE``: seconds after which an undelivered event is given up.
    default_max_age: ClassVar[float] = DEFAULT_MAX_AGE
    #: Default ``PURPOSES``: the consent purposes this vendor's events serve.
    default_purposes: ClassVar[tuple[str, ...]] = ("analytics",)
    #: Default ``MAX_LATENESS`` (None: no limit), and why an event sent long after it
    #: happened is not wanted (:meth:`lateness_refusal`).
    default_max_lateness: ClassVar[float | None] = None
    lateness_why: ClassVar[str] = ""
    #: The ids this vendor gives visitors in the browser (:class:`BrowserId`).
    browser_ids: ClassVar[tuple[BrowserId, ...]] = ()
    #: Dotted path to this vendor's sandbox description (a
    #: :class:`django_eventtrack.sandbox.spec.VendorSpec`), or None.
    sandbox: ClassVar[str | None] = None
    #: The documented path of the vendor's identify call, appended to ``API_URL``.
    identify_path: ClassVar[str]
    #: True when ``identify()`` learns a vendor profile id that later events for
    #: the same user should carry (:class:`ProfileStore`).
    remembers_profiles: ClassVar[bool] = False
    #: With ``remembers_profiles``: the identity keys of the vendor's profile id and of
    #: the browser session it attaches to a profile.
    profile_key: ClassVar[str | None] = None
    session_key: ClassVar[str | None] = None
    #: Keys of this vendor's mapping in a tracking plan (an event's ``"vendors"``), with
    #: what each means; :meth:`settings_from_plan` turns them into settings.
    plan_keys: ClassVar[Mapping[str, str]] = {
        "name": "the event's name at the vendor (EVENT_NAMES)"
    }

    @classmethod
    def settings_from_plan(cls, mappings: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """The settings a tracking plan declares for this vendor, from each planned event's
        mapping (by our event name), as raw setting values: the settings layer uses them
        where the settings say nothing and refuses a contradiction where they do."""
        names = {event: mapping["name"] for event, mapping in mappings.items() if "name" in mapping}
        return {"EVENT_NAMES": names} if names else {}

    def plan_notes(self, event: DeclaredEvent) -> list[str]:
        """What this vendor will do with events declared like ``event`` that is not what
        the plan says (a property dropped, converted or cut; the event skipped), one
        sentence each: ``manage.py check`` warns with them."""
        refusal = self.name_refusal(event.name)
        return (
            [f"{self.display_name} skips every {event.name!r} event: {refusal}"] if refusal else []
        )

    #: What staff must do at the vendor to erase a person (an erasure task's first line),
    #: for a vendor that documents no deletion API; empty: the generic request.
    erasure_instructions: ClassVar[str] = ""

    def __init__(self, config: VendorConfig) -> None:
        self.config = config

    def erasure_task(self, ids: Sequence[tuple[str, str]]) -> str:
        """An erasure task's instructions: what to delete at the vendor, and the ids it
        knows the person by (of ``ids``, those this library sends it)."""
        keys = {"user_id", ANONYMOUS_ID, *(browser_id.name for browser_id in self.browser_ids)}
        known = ", ".join(f"{key} {value}" for key, value in ids if key in keys)
        what = self.erasure_instructions or (
            f"{self.display_name} documents no deletion API: ask {self.display_name} (its "
            "dashboard or its support) to delete everything it holds about this person"
        )
        return f"{what}. Their ids at {self.display_name}: {known or 'none known'}."

    # -- deciding ---------------------------------------------------------
    def visitor_id(self, identity: Identity) -> str | None:
        """One browser-level id to join vendors on when this vendor's own is unknown:
        the first set of the registry's visitor ids (a browser session, else our
        anonymous id; never a person's profile id, which is no anonymous id)."""
        for key in self.config.visitor_ids:
            if value := identity.get(key):
                return value
        return None

    def vendor_event_name(self, event: TrackedEvent) -> str:
        """Our event name in this vendor's vocabulary (``EVENT_NAMES`` map)."""
        return self.config.event_names.get(event.name, event.name)

    def receives(self, event: TrackedEvent) -> bool:
        """Whether the ``EVENTS`` filter (``IDENTIFY`` for identify calls) lets this
        event through to the vendor."""
        if event.is_identify:
            return self.config.identify
        return self.config.events is None or event.name in self.config.events

    def skip_reason(self, event: TrackedEvent) -> str | None:
        """Why this vendor cannot take the event at all (e.g. no identity), or None."""
        return self.name_refusal(event.name)

    def tracked_skip_reason(self, event: TrackedEvent) -> str | None:
        """:meth:`skip_reason` when the event is tracked. For a vendor that keeps
        profiles, an event naming a user is judged as if it had the user's profile: one
        may not exist yet, but the user's pending ``identify()`` creates it and the
        sender adds it (the event waits for the identify). The sender asks
        :meth:`skip_reason` again with the ids the event is sent with."""
        key = self.profile_key
        identity = event.identity
        if self.remembers_profiles and key and identity.user_id and not identity.get(key):
            event = event.about(identity.replace(**{key: PROFILE_TO_COME}))
        return self.skip_reason(event)

    def name_refusal(self, name: str) -> str | None:
        """Why this vendor refuses every event called ``name`` (our name, before
        ``EVENT_NAMES``), or None. The system checks ask it about ``MODEL_EVENTS``."""
        return None

    def lateness_refusal(self, happened: datetime, now: datetime | None = None) -> str | None:
        """Why an event that happened at ``happened`` is too late to send now, or None.

        Only with a ``MAX_LATENESS`` (a vendor that records when an event arrives, or
        forbids historical data): routing asks it when the event is tracked, the sender
        again when its turn comes.
        """
        limit = self.config.max_lateness
        if limit is None:
            return None
        late = ((now or timezone.now()) - happened).total_seconds()
        if late <= limit:
            return None
        return (
            f"not sent: it happened {spelled_duration(late)} ago, later than "
            f"{self.display_name}'s MAX_LATENESS ({spelled_duration(limit)}); "
            f"{self.lateness_why}"
        )

    def known_drop(self, event: TrackedEvent, dropped: Mapping[str, str]) -> str | None:
        """Why ``event`` is not sent, when the vendor is known to drop events of its name
        (``dropped``: the vendor's event names it dropped before, with the reason)."""
        return dropped.get(self.vendor_event_name(event))

    def batch_key(self, event: TrackedEvent) -> Hashable:
        """Events with different keys never share a request (a vendor whose answer
        counts what it took per request groups them by what it may refuse)."""
        return None

    # -- building ---------------------------------------------------------
    @property
    def url(self) -> str:
        return self.config.api_url + self.path

    def headers(self) -> dict[str, str]:
        """Vendor headers on top of the shared ones (JSON content type, User-Agent)."""
        return {}

    def body(self, events: Sequence[TrackedEvent], notes: Notes) -> JSONObject:
        """The request body; whatever is changed to fit the vendor is noted in ``notes``.

        A vendor with :attr:`entries_key` gets each event's :meth:`entry`, with what
        the event's extra says for it, inside its :meth:`envelope`.
        """
        if self.entries_key is None:
            raise NotImplementedError
        entries = [
            deep_merge(self.entry(event, notes), self.entry_extra(event)) for event in events
        ]
        return self.envelope({self.entries_key: entries})

    def entry(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        """One event's entry in the list under :attr:`entries_key`."""
        raise NotImplementedError

    def envelope(self, body: JSONObject) -> JSONObject:
        """The body around the events' entries: ``body`` holds them (extras merged in)
        under :attr:`entries_key`; a vendor adds its request-wide fields."""
        return body

    def build_request(self, events: Sequence[TrackedEvent]) -> VendorRequest:
        """The full request for ``events`` (at most ``max_batch_size`` of them), or
        for one ``identify()`` event its identify call.

        Each event's ``vendor_extra`` for this vendor is laid over the body the event
        would have alone (nested objects merge, other values replace), and touches
        that event only: with :attr:`entries_key`, what it says under that key (a list
        of one object) merges into the event's own entry; anything else is laid over
        the whole request, so such an event is sent alone (:func:`request_batches`
        cuts the sender's batches so; here it is a ``ValueError``).
        """
        if len(events) == 1 and events[0].is_identify:
            return self.identify_request(events[0])
        if not 0 < len(events) <= self.max_batch_size:
            raise ValueError(
                f"{self.display_name} takes 1 to {self.max_batch_size} events per request, "
                f"got {len(events)}"
            )
        notes: Notes = {}
        body = self.body(events, notes)
        for event in events:
            extra = self.request_extra(event)
            if extra and len(events) > 1:
                raise ValueError(
                    f"event {event.id}: its vendor_extra for {self.display_name} sets "
                    f"{named(sorted(extra))} for the whole request: it goes in a request of "
                    "its own"
                )
            body = deep_merge(body, extra)
        return self.request("POST", self.url, body, events, notes)

    def entry_extra(self, event: TrackedEvent) -> Mapping[str, Any]:
        """What ``event``'s extra says for its own entry: the one object of the list under
        :attr:`entries_key` (empty without one)."""
        entries = self._extra(event).get(self.entries_key) if self.entries_key else None
        return entries[0] if _one_object(entries) else {}

    def request_extra(self, event: TrackedEvent) -> Mapping[str, Any]:
        """What ``event``'s extra lays over the whole request: all of it, but for a vendor
        with :attr:`entries_key` what it says for the event's own entry. An event sent
        in a batch must have none (:func:`request_batches`)."""
        extra = self._extra(event)
        if self.entries_key is None or not _one_object(extra.get(self.entries_key)):
            return extra
        return {key: value for key, value in extra.items() if key != self.entries_key}

    def _extra(self, event: TrackedEvent) -> Mapping[str, Any]:
        return event.vendor_extra.get(self.name, {})

    @classmethod
    def extra_problem(cls, extra: Mapping[str, Any]) -> str | None:
        """Why ``extra`` (an event's ``vendor_extra`` for this vendor) can never be right,
        or None: under :attr:`entries_key` one event has one entry, never a list of several
        (the others are other events)."""
        if cls.entries_key is None or cls.entries_key not in extra:
            return None
        entries = extra[cls.entries_key]
        if _one_object(entries):
            return None
        found = f"a list of {len(entries)}" if isinstance(entries, list) else type(entries).__name__
        return (
            f"vendor_extra[{cls.name!r}][{cls.entries_key!r}] must be a list of one object, "
            f"merged into this event's own entry (the request's other entries belong to "
            f"other events), got {found}"
        )

    def request(
        self,
        method: str,
        url: str,
        body: JSONObject,
        events: Sequence[TrackedEvent],
        notes: Notes | None = None,
    ) -> VendorRequest:
        """A request to this vendor with its auth headers, on behalf of ``events``."""
        return VendorRequest(
            vendor=self.name,
            method=method,
            url=url,
            headers={"Content-Type": "application/json", "Accept": "application/json"}
            | self.headers(),
            body=body,
            event_ids=tuple(str(event.id) for event in events),
            secrets=self.config.secrets,
            notes={event_id: tuple(lines) for event_id, lines in (notes or {}).items()},
        )

    # -- sending ----------------------------------------------------------
    def send_events(self, events: Sequence[TrackedEvent], send: Send) -> Outcome:
        """Deliver one request's worth of tracked events, in a sender's pool thread.

        One request, unless the vendor's answer calls for another at once (a
        Hellotext session that belongs to someone else). No database work here:
        what the answer taught comes back in :attr:`Outcome.learned`.
        """
        return self.sent(self.build_request(events), send)

    def sent(self, request: VendorRequest, send: Send) -> Outcome:
        """Send ``request``; its outcome, carrying what the request changed to fit."""
        return send(request).outcome.adjusted(request.notes)

    def create_profile(self, user_id: str, send: Send) -> str | None:
        """Create the vendor profile of ``user_id`` again after the vendor lost it;
        its new id, or None (vendors without profiles of their own)."""
        return None

    # -- identify ---------------------------------------------------------
    def identify_skip_reason(self, event: TrackedEvent) -> str | None:
        """Why this vendor cannot take an ``identify()`` call, or None."""
        return None

    def identify_body(self, event: TrackedEvent, notes: Notes) -> JSONObject:
        """The identify call's body: ``event.identity`` is the visitor (with
        ``user_id`` set) and ``event.properties`` the traits."""
        raise NotImplementedError

    def identify_request(self, event: TrackedEvent) -> VendorRequest:
        notes: Notes = {}
        body = deep_merge(self.identify_body(event, notes), event.vendor_extra.get(self.name, {}))
        url = self.config.api_url + self.identify_path
        return self.request("POST", url, body, [event], notes)

    def send_identify(self, event: TrackedEvent, send: Send, profiles: ProfileStore) -> Outcome:
        """Deliver one ``identify()`` event; one request unless the vendor needs more
        (Hellotext creates a profile, then attaches the session to it)."""
        return self.sent(self.identify_request(event), send)

    # -- reading the answer -----------------------------------------------
    def classify(self, response: VendorResponse) -> Outcome:
        """Delivered on any 2xx the vendor does not contradict; retry on 408, 425,
        429 and 5xx (honouring ``Retry-After``), and on refused credentials (see
        :attr:`Outcome.credentials_refused`); failed for good on anything else.
        """
        status = response.status
        payload = response.json()
        if 200 <= status < 300:
            failure = self.failure_in_success(payload)
            if failure is None:
                return Outcome(OutcomeKind.DELIVERED, status)
            return Outcome(OutcomeKind.FAILED, status, self._safe(failure))
        if 300 <= status < 400:
            return Outcome(OutcomeKind.FAILED, status, self._redirected(response))
        message = self._safe(self.error_message(payload) or _body_text(response))
        message = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        if self.refuses_credentials(response):
            return Outcome(
                OutcomeKind.RETRY,
                status,
                truncate(f"{self.credentials_advice()} ({message})"),
                credentials_refused=True,
            )
        if status in RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return Outcome(OutcomeKind.RETRY, status, message, retry_after)
        return Outcome(OutcomeKind.FAILED, status, message)

    def failure_in_success(self, payload: Any) -> str | None:
        """A refusal hidden in a 2xx body (Browsee's ``status: failure``), or None."""
        return None

    def refuses_credentials(self, response: VendorResponse) -> bool:
        """Whether the answer says the credentials are wrong (a 401 or 403 by default):
        then no event is at fault, and every request would get the same answer."""
        return response.status in CREDENTIALS_STATUSES

    def credentials_advice(self) -> str:
        """What to fix when the vendor refuses the credentials: the settings that hold
        them, and their environment variables (never their values)."""
        places = " and ".join(
            f"{setting_path('VENDORS', self.name, key)} (or {env_name(self.name, key)})"
            for key in self.credential_settings
        )
        return (
            f"{self.display_name} refused the credentials: check {places}; its deliveries "
            "wait until they are accepted"
        )

    def _redirected(self, response: VendorResponse) -> str:
        """A redirect is a configuration mistake (no vendor API redirects; an
        ``http://`` ``API_URL`` answered by a redirect to ``https://`` is the usual one):
        the message names the setting to fix and where the vendor pointed."""
        location = response.headers.get("location", "")
        where = f" to {self._safe(location)}" if location else ""
        return (
            f"HTTP {response.status}: {self.display_name} redirected the request{where}; "
            f"check {setting_path('VENDORS', self.name, 'API_URL')} (or "
            f"{env_name(self.name, 'API_URL')}), now {self._safe(self.config.api_url)}: "
            "requests are not followed to another address"
        )

    def error_message(self, payload: Any) -> str | None:
        """The vendor's own words from an error body, or None to use the raw text."""
        return None

    def _safe(self, text: str) -> str:
        return truncate(redact(text, self.config.secrets))


def _body_text(response: VendorResponse) -> str:
    return response.body.decode("utf-8", "replace").strip()


def _one_object(entries: Any) -> TypeGuard[list[JSONObject]]:
    return isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict)


def deep_merge(base: JSONObject, extra: Mapping[str, Any]) -> JSONObject:
    """``base`` with ``extra`` laid over it; nested objects merge, other values replace."""
    if not extra:
        return base
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``, the form Browsee's docs show
    and every vendor that takes a string accepts."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
