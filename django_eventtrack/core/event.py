"""The normalised event: one vocabulary for every caller, checked once.

Views, signal hooks and ``send_event`` all build an :class:`Event`; vendor
adapters only ever read one. Validation happens here, at construction, so a
programming error (a bad name, a property that is not JSON) surfaces in the
caller's code with the offending field named, never later in a worker.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from django_eventtrack.errors import InvalidEvent

MAX_NAME_LENGTH = 128
MAX_KEY_LENGTH = 128
MAX_STRING_LENGTH = 65_536
MAX_DEPTH = 8
MAX_ITEMS = 1_000
MAX_IDENTIFIER_LENGTH = 256
#: How far ahead of our clock an event may be stamped (clock skew between hosts).
MAX_FUTURE = timedelta(days=1)
#: Integers outside a signed 64-bit range lose precision or are refused by JSON
#: readers (JavaScript, Java, databases); send such numbers as strings.
MAX_INTEGER = 2**63 - 1
#: Digits of :data:`MAX_INTEGER`: a ``Decimal`` with more before its point is beyond it.
INTEGER_DIGITS = len(str(MAX_INTEGER))
#: NUL (PostgreSQL's jsonb refuses it) and lone surrogates (not encodable as UTF-8).
UNSENDABLE_CHARACTERS = re.compile(r"[\x00\ud800-\udfff]")
#: The types of most property values: neither a mapping nor a list.
PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})

#: What a stored event asks of the vendors: record an action (``track()``), or
#: tie the visitor to a known user with traits (``identify()``).
TRACK = "track"
IDENTIFY = "identify"
KINDS = (TRACK, IDENTIFY)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
IDENTIFIER_PATTERN = re.compile(r"[\x21-\x7e]+")

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
#: Compact JSON as vendors receive it, built once (``json.dumps`` builds one per call).
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: At most this many bytes of JSON per character of a string or key (``\u001f`` is six)...
JSON_BYTES_PER_CHARACTER = 6
#: ...and per value besides its characters: the longest number (24), quotes, a colon, a comma.
JSON_BYTES_PER_VALUE = 32


#: The keys every identity has, whatever the vendors: the logged-in user and our
#: first-party visitor id. The vendors' own ids are keyed by the names their
#: adapters declare (``BrowserId.name``).
CORE_KEYS = ("user_id", "anonymous_id")
OPTED_OUT = "opted_out"
#: The key of an identity's consent (the purposes granted) in its JSON form.
CONSENT = "consent"
ID_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: A purpose's name: what a vendor's events serve and a visitor grants (``analytics``).
PURPOSE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")


class Identity:
    """Who an event is about, in every vendor's words.

    ``user_id`` is the logged-in user, ``anonymous_id`` our first-party visitor
    id; every other keyword is a vendor's own id for the visitor, by the name its
    adapter declares (``Identity(device_id=...)``), captured by the middleware or
    passed explicitly. Which names exist is the vendor registry's business:
    this class checks only each value. ``opted_out`` marks a visitor who refused
    tracking: the event is still stored, but every vendor delivery is skipped.
    ``consent`` is the purposes the visitor granted (None: no restriction), so a
    vendor serving another purpose is skipped; it travels with the identity (a
    snapshot kept on an order carries the consent given when it was placed).
    Immutable and hashable; :meth:`replace` makes a changed copy.
    """

    __slots__ = ("_ids", "consent", "opted_out")
    _ids: dict[str, str]
    opted_out: bool
    consent: frozenset[str] | None

    def __init__(
        self,
        user_id: str | int | None = None,
        anonymous_id: str | None = None,
        *,
        opted_out: bool = False,
        consent: Iterable[str] | None = None,
        **vendor_ids: str | int | None,
    ) -> None:
        given = {"user_id": user_id, "anonymous_id": anonymous_id, **vendor_ids}
        checked = {name: _identifier(name, value) for name, value in given.items()}
        object.__setattr__(self, "_ids", {k: v for k, v in checked.items() if v is not None})
        object.__setattr__(self, "opted_out", opted_out)
        object.__setattr__(self, "consent", purposes(consent, CONSENT))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Identity is immutable; use replace()")

    @property
    def user_id(self) -> str | None:
        return self._ids.get("user_id")

    @property
    def anonymous_id(self) -> str | None:
        return self._ids.get("anonymous_id")

    def __getattr__(self, name: str) -> str | None:
        """A vendor's id by attribute (``identity.device_id``); None when unset."""
        if name.startswith("_"):
            raise AttributeError(name)
        return self._ids.get(name)

    def get(self, key: str) -> str | None:
        """The id under ``key`` (a core key or a vendor's id name), None when unset."""
        return self._ids.get(key)

    @property
    def ids(self) -> dict[str, str]:
        """Every id that is set, by key (core keys and vendors' id names alike)."""
        return dict(self._ids)

    @property
    def vendor_ids(self) -> dict[str, str]:
        """The vendors' ids that are set, by name."""
        return {name: value for name, value in self._ids.items() if name not in CORE_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], known: Iterable[str]) -> Identity:
        """The inverse of :meth:`as_dict`, for an identity kept as JSON (a model
        field, a task argument). Values are validated as usual; a key that is not
        a core key, ``opted_out``, ``consent`` or one of the ``known`` vendor id names is
        refused, so a typo does not silently drop an id."""
        if not isinstance(data, Mapping):
            raise InvalidEvent(
                f"identity must be a mapping, got {type(data).__name__}", field="identity"
            )
        allowed = [*CORE_KEYS, *known, OPTED_OUT, CONSENT]
        unknown = set(data) - set(allowed)
        if unknown:
            raise InvalidEvent(
                f"identity has unknown keys {sorted(map(str, unknown))}; expected some of "
                f"{allowed}",
                field="identity",
            )
        opted_out = data.get(OPTED_OUT, False)
        if not isinstance(opted_out, bool):
            raise InvalidEvent(
                "identity.opted_out must be true or false", field="identity.opted_out"
            )
        ids = {name: value for name, value in data.items() if name not in (OPTED_OUT, CONSENT)}
        identity = cls.from_ids(ids, opted_out=opted_out)
        return identity.with_consent(purposes(data.get(CONSENT), f"identity.{CONSENT}"))

    @classmethod
    def from_ids(cls, ids: Mapping[str, str | int | None], *, opted_out: bool = False) -> Identity:
        """An identity from ``{key: id}`` (core keys and vendors' id names alike)."""
        checked = {name: _identifier(name, value) for name, value in ids.items()}
        return cls._of({k: v for k, v in checked.items() if v is not None}, opted_out)

    @classmethod
    def _of(
        cls, ids: dict[str, str], opted_out: bool, consent: frozenset[str] | None = None
    ) -> Identity:
        """An identity of ids checked already (``track()`` builds two per call)."""
        identity = object.__new__(cls)
        object.__setattr__(identity, "_ids", ids)
        object.__setattr__(identity, "opted_out", opted_out)
        object.__setattr__(identity, "consent", consent)
        return identity

    def merged(self, other: Identity) -> Identity:
        """This identity with the blanks filled from ``other``; set values win.
        Opted out if either is, and granted only what both grant: consent belongs to
        the visitor, not to one id."""
        if not other._ids and other.opted_out <= self.opted_out and other.consent is None:
            return self
        return Identity._of(
            {**other._ids, **self._ids},
            self.opted_out or other.opted_out,
            both_grant(self.consent, other.consent),
        )

    def replace(self, **changes: str | int | None) -> Identity:
        """A copy with ``changes`` applied (None removes an id); only the changes are
        checked, this identity's ids were when it was made."""
        ids = dict(self._ids)
        for name, value in changes.items():
            checked = _identifier(name, value)
            if checked is None:
                ids.pop(name, None)
            else:
                ids[name] = checked
        return Identity._of(ids, self.opted_out, self.consent)

    def with_consent(self, consent: frozenset[str] | None) -> Identity:
        """A copy granting ``consent`` (purposes checked already; None: no restriction)."""
        if consent == self.consent:
            return self
        return Identity._of(self._ids, self.opted_out, consent)

    def deciding(self, consent: frozenset[str] | None) -> Identity:
        """A copy whose consent is ``consent`` alone (an explicit ``consent=``), whatever
        the visitor's was: granting nothing is opting out, granting something is not."""
        return Identity._of(self._ids, consent == frozenset(), consent)

    def refused(self, wanted: Iterable[str]) -> list[str]:
        """Those of the purposes ``wanted`` this visitor has not granted, in order."""
        if self.opted_out:
            return list(wanted)
        if self.consent is None:
            return []
        return [purpose for purpose in wanted if purpose not in self.consent]

    def as_dict(self) -> dict[str, Any]:
        """The set ids (``opted_out`` when true, the ``consent`` when restricted), as
        stored with every event."""
        values: dict[str, Any] = dict(self._ids)
        if self.opted_out:
            values[OPTED_OUT] = True
        if self.consent is not None:
            values[CONSENT] = sorted(self.consent)
        return values

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied through :meth:`from_ids` (the instance itself is immutable)."""
        return (_rebuilt, (dict(self._ids), self.opted_out, self.consent))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return (
            self._ids == other._ids
            and self.opted_out == other.opted_out
            and self.consent == other.consent
        )

    def __hash__(self) -> int:
        return hash((frozenset(self._ids.items()), self.opted_out, self.consent))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"Identity({shown})"


#: The identity of nobody known: no id, consent not restricted (immutable, so shared).
NOBODY = Identity._of({}, opted_out=False)


def _rebuilt(
    ids: dict[str, str], opted_out: bool, consent: frozenset[str] | None = None
) -> Identity:
    return Identity.from_ids(ids, opted_out=opted_out).with_consent(consent)


def both_grant(one: frozenset[str] | None, other: frozenset[str] | None) -> frozenset[str] | None:
    """The purposes two consents both grant (None: no restriction)."""
    if one is None:
        return other
    return one if other is None else one & other


def purposes(value: object, field: str = CONSENT) -> frozenset[str] | None:
    """Consent as given (``consent=`` of ``track()``, a ``CONSENT`` callable's answer, a
    stored identity's): ``True`` or None grant every purpose (None), ``False`` none, an
    iterable of purpose names those. Anything else raises :class:`InvalidEvent` naming
    ``field``."""
    if value is None or value is True:
        return None
    if value is False:
        return frozenset()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidEvent(
            f'{field} must be True, False or a list of purposes like ["analytics"], got {value!r}',
            field=field,
        )
    granted = frozenset(value)
    for item in granted:
        if not isinstance(item, str) or not PURPOSE_PATTERN.fullmatch(item):
            raise InvalidEvent(
                f"{field}: {item!r} is not a purpose name (lowercase letters, digits and _, "
                "up to 32 characters, like 'analytics')",
                field=field,
            )
    return granted


def _identifier(name: str, value: object) -> str | None:
    """``value`` as an id: a string (an int is spelled out), None when empty; else refused."""
    if not _is_id_name(name):
        raise InvalidEvent(
            f"identity key {name!r} must be lowercase letters, digits and _", field="identity"
        )
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEvent(
            f"identity.{name} must be a string, got {type(value).__name__}",
            field=f"identity.{name}",
        )
    if len(value) > MAX_IDENTIFIER_LENGTH or not IDENTIFIER_PATTERN.fullmatch(value):
        raise InvalidEvent(
            f"identity.{name} must be 1 to {MAX_IDENTIFIER_LENGTH} printable ASCII "
            "characters without spaces",
            field=f"identity.{name}",
        )
    return value


@functools.lru_cache(maxsize=256)
def _is_id_name(name: str) -> bool:
    """Whether ``name`` may name an id (kept: the same few names come with every event)."""
    return ID_NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class TrackedEvent:
    """A validated, normalised event; build it with :meth:`create`."""

    name: str
    properties: Mapping[str, JSONValue]
    timestamp: datetime
    identity: Identity = field(default_factory=Identity)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    #: Per-vendor additions merged into that vendor's request body as-is
    #: (``{"hackle": {"event": {"value": 42}}}``), for what the core does not model.
    vendor_extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: :data:`TRACK` or :data:`IDENTIFY` (then ``properties`` are the user's traits).
    kind: str = TRACK
    #: At least :attr:`size`, counted while validating (None: unknown), so that checking a
    #: small event against a limit costs no JSON encoding (:meth:`larger_than`).
    size_bound: int | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        name: str,
        properties: Mapping[str, Any] | None = None,
        *,
        identity: Identity | None = None,
        timestamp: datetime | None = None,
        event_id: uuid.UUID | str | None = None,
        vendor_extra: Mapping[str, Mapping[str, Any]] | None = None,
        kind: str = TRACK,
    ) -> TrackedEvent:
        """Validate and normalise; raises :class:`InvalidEvent` naming the bad field."""
        if kind not in KINDS:
            raise InvalidEvent(
                f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind"
            )
        counter = [0, 0]
        normalised = normalise_properties(properties, counter)
        extra, extra_bound = _vendor_extra(vendor_extra)
        return cls(
            name=validate_name(name),
            properties=normalised,
            timestamp=validate_timestamp(timestamp),
            identity=identity or NOBODY,
            id=_event_id(event_id),
            vendor_extra=extra,
            kind=kind,
            size_bound=_bytes_at_most(counter) + extra_bound,
        )

    @functools.cached_property
    def size(self) -> int:
        """Bytes of its properties and ``vendor_extra`` as compact UTF-8 JSON: what
        ``MAX_EVENT_BYTES`` limits and batched requests are cut by (its name and ids
        have limits of their own)."""
        text = _COMPACT_JSON.encode((self.properties, self.vendor_extra))
        return len(text) if text.isascii() else len(text.encode())

    def about(self, identity: Identity) -> TrackedEvent:
        """This event about ``identity`` instead: ``dataclasses.replace`` without building
        and checking the other fields again (routing asks it of every event)."""
        changed = object.__new__(type(self))
        changed.__dict__.update(self.__dict__, identity=identity)
        return changed

    def larger_than(self, limit: int) -> bool:
        """Whether :attr:`size` exceeds ``limit``; measured only when :attr:`size_bound`
        says it may."""
        return (self.size_bound is None or self.size_bound > limit) and self.size > limit

    @property
    def is_identify(self) -> bool:
        return self.kind == IDENTIFY

    @property
    def noun(self) -> str:
        """The part before the first dot: ``product`` for ``product.purchased``."""
        return self.name.split(".", 1)[0]


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidEvent(f"event name must be a string, got {type(name).__name__}", field="name")
    if not name:
        raise InvalidEvent("event name must not be empty", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidEvent(
            f"event name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}",
            field="name",
        )
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidEvent(
            f"event name {name!r} may only contain letters, digits and _ . : - "
            "and must start with a letter or digit (e.g. 'product.purchased')",
            field="name",
        )
    return name


def validate_timestamp(timestamp: object) -> datetime:
    """An aware datetime converted to UTC; ``None`` means now."""
    if timestamp is None:
        return timezone.now()
    if not isinstance(timestamp, datetime):
        raise InvalidEvent(
            f"timestamp must be a datetime, got {type(timestamp).__name__}", field="timestamp"
        )
    if timezone.is_naive(timestamp):
        raise InvalidEvent(
            "timestamp must be timezone-aware (e.g. datetime.now(UTC) or "
            "django.utils.timezone.now()); a naive time is ambiguous",
            field="timestamp",
        )
    moment = _utc(timestamp, "timestamp")
    if moment > timezone.now() + MAX_FUTURE:
        raise InvalidEvent(
            f"timestamp {moment.isoformat()} is more than a day in the future",
            field="timestamp",
        )
    return moment


def normalise_properties(
    properties: Mapping[str, Any] | None, counter: list[int] | None = None
) -> dict[str, JSONValue]:
    """Properties as plain JSON: ``Decimal`` becomes a number, aware ``datetime``
    an ISO string, ``date`` and ``UUID`` strings, tuples lists. Anything else is
    refused with the path of the offending key. ``counter`` (``[0, 0]``) ends with how
    many values and how many characters of strings and keys they hold."""
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise InvalidEvent(
            f"properties must be a mapping, got {type(properties).__name__}", field="properties"
        )
    return _normalise_mapping(properties, "properties", 1, counter or [0, 0])


def _bytes_at_most(counter: list[int]) -> int:
    """An upper bound of the JSON bytes of what ``counter`` counted (and its braces)."""
    return JSON_BYTES_PER_CHARACTER * counter[1] + JSON_BYTES_PER_VALUE * (counter[0] + 1)


def _normalise_mapping(
    value: Mapping[Any, Any], path: str, depth: int, counter: list[int]
) -> dict[str, JSONValue]:
    if depth > MAX_DEPTH:
        raise InvalidEvent(f"{path} is nested deeper than {MAX_DEPTH} levels", field=path)
    result: dict[str, JSONValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidEvent(
                f"{path} has a key of type {type(key).__name__}; keys must be strings",
                field=path,
            )
        child = f"{path}.{key}"
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidEvent(f"{child} key must be 1 to {MAX_KEY_LENGTH} characters", field=child)
        _check_text(key, f"{child} key", child)
        counter[1] += len(key)
        result[key] = _normalise_value(item, child, depth, counter)
    return result


def _normalise_value(value: Any, path: str, depth: int, counter: list[int]) -> JSONValue:
    counter[0] += 1
    if counter[0] > MAX_ITEMS:
        raise InvalidEvent(f"properties hold more than {MAX_ITEMS} values; send less", field=path)
    if type(value) not in PLAIN_SCALARS:  # most values are: spared the ABC checks
        if isinstance(value, Mapping):
            return _normalise_mapping(value, path, depth + 1, counter)
        if isinstance(value, list | tuple):
            if depth + 1 > MAX_DEPTH:
                raise InvalidEvent(f"{path} is nested deeper than {MAX_DEPTH} levels", field=path)
            return [
                _normalise_value(item, f"{path}[{index}]", depth + 1, counter)
                for index, item in enumerate(value)
            ]
    scalar = _normalise_scalar(value, path)
    if isinstance(scalar, str):
        counter[1] += len(scalar)
    return scalar


def _normalise_scalar(value: Any, path: str) -> JSONValue:
    """A value that is not a container, as JSON (or refused, naming ``path``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _integer(value, path)
    if isinstance(value, float | Decimal):
        return _number(value, path)
    if isinstance(value, str):
        return _string(value, path)
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            raise InvalidEvent(f"{path} is a naive datetime; make it timezone-aware", field=path)
        return _utc(value, path).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | uuid.UUID):
        return value.isoformat() if isinstance(value, date) else str(value)
    raise InvalidEvent(
        f"{path} is a {type(value).__name__}, which is not JSON; use a string, number, "
        "boolean, None, list or dict (Decimal, datetime, date and UUID are converted)",
        field=path,
    )


def _string(value: str, path: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidEvent(
            f"{path} is {len(value)} characters long; the limit is {MAX_STRING_LENGTH}",
            field=path,
        )
    _check_text(value, path, path)
    return value


def _number(value: float | Decimal, path: str) -> int | float:
    if isinstance(value, Decimal):
        return _decimal(value, path)
    if not math.isfinite(value):
        raise InvalidEvent(f"{path} is {value}, which JSON cannot carry", field=path)
    return value


def _decimal(value: Decimal, path: str) -> int | float:
    """A whole ``Decimal`` (no decimal places) as an integer, any other as a float; one
    whose integer part is beyond 64 bits is refused, as such an ``int`` is (a float would
    carry it inexactly)."""
    if not value.is_finite():
        raise InvalidEvent(f"{path} is {value}, which JSON cannot carry", field=path)
    # adjusted() first: int() of an exponent like 1e999999999 would build a huge integer.
    if value.adjusted() >= INTEGER_DIGITS:
        raise _beyond_64_bits(path)
    whole = _integer(int(value), path)
    return whole if int(value.as_tuple().exponent) >= 0 else float(value)


def _integer(value: int, path: str) -> int:
    if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        raise _beyond_64_bits(path)
    return value


def _beyond_64_bits(path: str) -> InvalidEvent:
    return InvalidEvent(
        f"{path} is a number whose integer part is beyond 64 bits, which JSON readers cannot "
        "carry exactly; send it as a string",
        field=path,
    )


def _check_text(text: str, what: str, path: str) -> None:
    """Refuse characters no vendor request can carry: NUL and lone surrogates (never in
    ASCII text, which is looked at for a NUL alone)."""
    if "\x00" in text if text.isascii() else UNSENDABLE_CHARACTERS.search(text):
        raise InvalidEvent(
            f"{what} contains a NUL character or a lone surrogate, which cannot be sent as "
            "UTF-8 JSON",
            field=path,
        )


def _utc(moment: datetime, path: str) -> datetime:
    """An aware datetime in UTC; a time too close to year 1 or 9999 to convert is refused."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(
            f"{path} {moment.isoformat()} cannot be converted to UTC (out of range)", field=path
        ) from None


def _event_id(event_id: uuid.UUID | str | None) -> uuid.UUID:
    if event_id is None:
        return uuid.uuid4()
    if isinstance(event_id, uuid.UUID):
        return event_id
    try:
        return uuid.UUID(str(event_id))
    except ValueError:
        raise InvalidEvent(f"event id {event_id!r} is not a UUID", field="id") from None


def _vendor_extra(
    vendor_extra: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[dict[str, dict[str, JSONValue]], int]:
    """The extras normalised (each vendor's within the properties' limits), and an upper
    bound of their JSON bytes."""
    if not vendor_extra:
        return {}, JSON_BYTES_PER_VALUE
    result: dict[str, dict[str, JSONValue]] = {}
    bound = JSON_BYTES_PER_VALUE
    for vendor, extra in vendor_extra.items():
        if not isinstance(extra, Mapping):
            raise InvalidEvent(
                f"vendor_extra[{vendor!r}] must be a mapping", field=f"vendor_extra.{vendor}"
            )
        counter = [0, len(str(vendor))]  # its name too
        result[vendor] = _normalise_mapping(extra, f"vendor_extra.{vendor}", 1, counter)
        bound += _bytes_at_most(counter)
    return result, bound
