"""Capturing tracked events in memory, for tests, the way ``mail.outbox`` captures email.

Two ways in, one list out (:data:`captured`):

* the ``capture`` delivery backend: when a transaction that tracked events
  commits, it takes them instead of sending them and marks their deliveries
  ``skipped`` (:data:`CAPTURED`), exactly where a real backend would send;
* :func:`capture_events` (and the pytest fixture and ``TestCase`` mixin built
  on it) switches to that backend, blocks HTTP, and also reads what has been
  committed *as far as the test can tell*: Django's ``TestCase`` wraps every
  test in a transaction that never commits, so ``on_commit`` never fires there.
  Whenever the list is read, events stored since the capture started that are
  visible outside any transaction of the code under test are taken too; an
  event in a rolled-back block is gone from the database and never appears.

Each captured event carries, per vendor, the request its delivery would send,
built by the vendor adapters themselves
(:func:`~django_eventtrack.outbox.routing.render_requests`).

Nothing here imports the models at module level, so the pytest plugin can load
this package before Django is configured.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from django.conf import settings
from django.db import connections, router, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import override_settings
from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import (
    CORE_KEYS,
    IDENTIFY,
    OPTED_OUT,
    Identity,
    JSONValue,
    TrackedEvent,
    normalise_properties,
)
from django_eventtrack.outbox.routing import render_requests
from django_eventtrack.testing.blocking import block_http
from django_eventtrack.vendors.base import JSONObject, VendorRequest

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from django_eventtrack.models import Event

#: The reason stored on a delivery the ``capture`` backend took instead of sending.
CAPTURED = "captured by django_eventtrack.testing: not sent"
#: Why a vendor that was targeted when the event was tracked has no request now.
NOT_CONFIGURED = "no longer configured when the event was captured"
#: Longest properties text shown per event in a failure message.
MAX_SHOWN = 300


def identity_keys() -> tuple[str, ...]:
    """The identity keywords the assertion helpers accept: the core ids, the vendors'
    (from the registry) and ``opted_out``."""
    return (*CORE_KEYS, *get_config().vendor_id_names, OPTED_OUT)


@dataclass(frozen=True)
class CapturedEvent:
    """One tracked (or identify) event, and what each vendor would have received.

    ``requests`` maps each vendor the event goes to onto the exact request its
    delivery would send (method, URL, headers with the real credentials, JSON
    body), for this event alone: PrimeData may batch several events into one
    request when really sending. ``skipped`` maps each vendor that would not
    get it onto the reason (no identity it needs, the visitor opted out...).
    """

    event: TrackedEvent
    requests: Mapping[str, VendorRequest]
    skipped: Mapping[str, str]
    #: How it broke the tracking plan when tracked (``PLAN_MODE`` warn or quarantine).
    violations: tuple[str, ...] = ()
    #: Held back from every vendor for breaking the plan (``PLAN_MODE`` quarantine).
    quarantined: bool = False

    @property
    def id(self) -> uuid.UUID:
        return self.event.id

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def kind(self) -> str:
        """``"track"`` or ``"identify"`` (then ``properties`` are the user's traits)."""
        return self.event.kind

    @property
    def properties(self) -> Mapping[str, JSONValue]:
        """As stored: JSON values (a ``Decimal`` became a number, a ``datetime`` a string)."""
        return self.event.properties

    @property
    def identity(self) -> Identity:
        return self.event.identity

    @property
    def timestamp(self) -> datetime:
        return self.event.timestamp

    @property
    def vendors(self) -> tuple[str, ...]:
        """The vendors it would be sent to, in configuration order."""
        return tuple(self.requests)

    def request(self, vendor: str) -> VendorRequest:
        """The request ``vendor`` would receive; fails the test, saying why, if none."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        if vendor not in self.requests:
            raise AssertionError(f"{self.name!r} is {_not_sent_to(self, vendor)}")
        return self.requests[vendor]

    def payload(self, vendor: str) -> JSONObject:
        """The JSON body ``vendor`` would receive (see :meth:`request`)."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        return self.request(vendor).body

    def describe(self) -> str:
        """One line for failure messages: name, properties, identity, vendors."""
        text = json.dumps(dict(self.properties), ensure_ascii=False, default=str)
        if len(text) > MAX_SHOWN:
            text = text[: MAX_SHOWN - 3] + "..."
        ids = " ".join(f"{key}={value}" for key, value in self.identity.as_dict().items())
        line = f"{self.name} {text}" + (f" [{ids}]" if ids else "")
        line += f" -> {', '.join(self.vendors) or 'no vendor'}"
        if self.violations:
            held = "quarantined" if self.quarantined else "breaks the plan"
            line += f"; {held}: {'; '.join(self.violations)}"
        if self.skipped:
            reasons = ", ".join(f"{vendor} ({why})" for vendor, why in self.skipped.items())
            line += f"; skipped: {reasons}"
        return line


def _not_sent_to(event: CapturedEvent, vendor: str) -> str:
    if vendor in event.skipped:
        return f"not sent to {vendor}: skipped ({event.skipped[vendor]})"
    return f"not sent to {vendor}: it goes to {', '.join(event.vendors) or 'no vendor'}"


@dataclass(frozen=True)
class Criteria:
    """What an assertion looks for; every part given must hold."""

    name: str | None = None
    properties: Mapping[str, JSONValue] | None = None
    vendor: str | None = None
    kind: str | None = None
    identity: Mapping[str, str | bool] | None = None

    @classmethod
    def build(
        cls,
        name: str | None,
        properties: Mapping[str, Any] | None,
        vendor: str | None,
        kind: str | None,
        identity: Mapping[str, Any],
        *,
        caller: str,
    ) -> Criteria:
        """Normalise the expected values the way ``track()`` normalises real ones, so
        ``Decimal("9.90")`` matches ``9.9`` and a ``datetime`` its ISO string."""
        keys = identity_keys()
        unknown = sorted(set(identity) - set(keys))
        if unknown:
            raise TypeError(
                f"{caller}() got unexpected keyword {', '.join(map(repr, unknown))}; identity "
                f"keywords are {', '.join(keys)}"
            )
        return cls(
            name=name,
            properties=None if properties is None else normalise_properties(properties),
            vendor=vendor,
            kind=kind,
            identity={
                key: value if isinstance(value, bool) else str(value)
                for key, value in identity.items()
            }
            or None,
        )

    def mismatch(self, event: CapturedEvent) -> str | None:
        """Why ``event`` does not match, or None when it does."""
        if self.name is not None and event.name != self.name:
            return f"name is {event.name!r}"
        if self.kind is not None and event.kind != self.kind:
            return f"it is a {event.kind} call"
        for key, expected in (self.properties or {}).items():
            if key not in event.properties:
                return f"has no property {key!r}"
            if event.properties[key] != expected:
                return f"properties[{key!r}] is {event.properties[key]!r}, not {expected!r}"
        for key, expected in (self.identity or {}).items():
            actual = getattr(event.identity, key)
            if actual != expected:
                return f"{key} is {actual!r}, not {expected!r}"
        if self.vendor is not None and self.vendor not in event.requests:
            return _not_sent_to(event, self.vendor)
        return None

    def describe(self) -> str:
        what = repr(self.name) if self.name is not None else "event"
        if self.kind == IDENTIFY:
            what = "identify() call" if self.name is None else f"{what} (identify)"
        parts = [what]
        if self.properties:
            parts.append(f"with properties {json.dumps(self.properties, ensure_ascii=False)}")
        if self.identity:
            parts.append("for " + ", ".join(f"{k}={v!r}" for k, v in self.identity.items()))
        if self.vendor is not None:
            parts.append(f"sent to {self.vendor}")
        return " ".join(parts)


class CapturedEvents(Sequence[CapturedEvent]):
    """The captured events, oldest first, with assertion helpers.

    A read-only sequence: ``len(events)``, ``events[0]``, iteration. Reading it
    first takes in events committed (or, in a ``TestCase``, finished) since the
    capture started; see the module docstring.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._events: list[CapturedEvent] = []
        self._seen: set[uuid.UUID] = set()
        self._since: datetime | None = None
        self._active = 0
        #: The open blocks of the code under test, per capture_events() (they nest).
        self._blocks: list[_CodeUnderTestBlocks] = []

    # -- the sequence -------------------------------------------------------
    @overload
    def __getitem__(self, index: int) -> CapturedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[CapturedEvent]: ...

    def __getitem__(self, index: int | slice) -> CapturedEvent | list[CapturedEvent]:
        return self._snapshot()[index]

    def __len__(self) -> int:
        return len(self._snapshot())

    def __iter__(self) -> Iterator[CapturedEvent]:
        return iter(self._snapshot())

    def __repr__(self) -> str:
        return f"<CapturedEvents {[event.name for event in self._snapshot()]}>"

    def __eq__(self, other: object) -> bool:
        """Equal to a list (or other sequence) of the same events, so ``events == []``
        reads as it does for ``mail.outbox``."""
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._snapshot() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    @property
    def names(self) -> list[str]:
        """The captured events' names, oldest first."""
        return [event.name for event in self._snapshot()]

    def clear(self) -> None:
        """Forget everything captured so far (and anything stored before now)."""
        with self._lock:
            self._events.clear()
            if self._since is not None:
                self._since = timezone.now()

    # -- filtering and asserting ---------------------------------------------
    def tracked(
        self,
        name: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        kind: str | None = None,
        **identity: Any,
    ) -> list[CapturedEvent]:
        """The captured events that match: ``name``, ``properties`` (a subset: every
        key given must be there with that value), sent to ``vendor``, of ``kind``,
        and about the identity given as keywords (``user_id="42"``, ``session=...``)."""
        criteria = Criteria.build(name, properties, vendor, kind, identity, caller="tracked")
        return [event for event in self._snapshot() if criteria.mismatch(event) is None]

    def assert_tracked(
        self,
        name: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        count: int | None = None,
        kind: str | None = None,
        **identity: Any,
    ) -> CapturedEvent:
        """Fail unless a matching event was tracked (exactly ``count`` of them, if
        given); return the first match. The failure message lists every captured
        event, and why those with the expected name did not match."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        criteria = Criteria.build(name, properties, vendor, kind, identity, caller="assert_tracked")
        events = self._snapshot()
        matches = [event for event in events if criteria.mismatch(event) is None]
        if matches and (count is None or len(matches) == count):
            return matches[0]
        expected = "at least one" if count is None else f"exactly {count}"
        raise AssertionError(
            f"expected {expected} {criteria.describe()}, found {len(matches)}.\n"
            + _listing(events, criteria)
        )

    def assert_not_tracked(
        self,
        name: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        kind: str | None = None,
        **identity: Any,
    ) -> None:
        """Fail if a matching event was tracked; with no arguments, if anything was."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        criteria = Criteria.build(
            name, properties, vendor, kind, identity, caller="assert_not_tracked"
        )
        matches = [event for event in self._snapshot() if criteria.mismatch(event) is None]
        if matches:
            raise AssertionError(
                f"expected no {criteria.describe()}, found {len(matches)}:\n"
                + "\n".join(f"  {event.describe()}" for event in matches)
            )

    def assert_identified(
        self,
        *,
        traits: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        count: int | None = None,
        **identity: Any,
    ) -> CapturedEvent:
        """:meth:`assert_tracked` for ``identify()`` calls: ``traits`` is a subset match."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        return self.assert_tracked(
            properties=traits, vendor=vendor, count=count, kind=IDENTIFY, **identity
        )

    def assert_plan_followed(self) -> None:
        """Fail if a captured event breaks the tracking plan (``EVENTTRACK["PLAN"]``), as
        the plan is now: every such event and every violation is listed. Useful with
        ``PLAN_MODE`` warn or quarantine, where ``track()`` itself does not raise."""
        __tracebackhide__ = True  # pytest: show the caller, not this helper
        compiled = get_config().plan
        if compiled is None:
            raise AssertionError("no tracking plan is configured (EVENTTRACK['PLAN'])")
        broken = [
            (event, found)
            for event in self._snapshot()
            if (
                found := compiled.violations(
                    event.name, event.properties, identify=event.kind == IDENTIFY
                )
            )
        ]
        if broken:
            raise AssertionError(
                f"{len(broken)} captured event(s) break the tracking plan "
                f"{compiled.plan.source}:\n"
                + "\n".join(
                    f"  {event.name}: {'; '.join(map(str, found))}" for event, found in broken
                )
            )

    # -- capturing -------------------------------------------------------------
    def _snapshot(self) -> list[CapturedEvent]:
        self._take_finished()
        with self._lock:
            return list(self._events)

    def _start(self, blocks: _CodeUnderTestBlocks) -> None:
        with self._lock:
            self._events.clear()
            self._since = timezone.now()
            self._active += 1
            self._blocks.append(blocks)

    def _stop(self) -> None:
        self._take_finished()
        with self._lock:
            self._active -= 1
            self._blocks.pop()
            if not self._active:
                self._since = None

    def _take_committed(self, event_ids: Sequence[uuid.UUID]) -> None:
        """The ``capture`` backend's part: take these committed events, mark them not sent."""
        # Models are imported when used (no cycle: they import nothing of this package's
        # testing helpers), so django_eventtrack.testing imports before the app registry.
        from django_eventtrack.models import Delivery, Event
        from django_eventtrack.outbox import fanout

        fanout.write_now(event_ids)
        self._add(Event.objects.filter(pk__in=event_ids))
        Delivery.objects.filter(event_id__in=event_ids, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SKIPPED,
            last_error=CAPTURED,
            claim_token=None,
            claimed_until=None,
            updated_at=timezone.now(),
        )

    def _take_finished(self) -> None:
        """While capturing, take the events stored since the capture started that the
        code under test has finished with (see the module docstring)."""
        from django_eventtrack.models import Event  # see _take_committed

        with self._lock:
            since, seen = self._since, set(self._seen)
            blocks = self._blocks[-1] if self._blocks else None
        if since is None or blocks is None or blocks.unfinished():
            return
        rows = Event.objects.using(blocks.using)
        rows = rows.filter(created_at__gte=since).exclude(pk__in=seen)
        self._add(rows.order_by("created_at"))

    def _add(self, rows: QuerySet[Event]) -> None:
        for row in rows.prefetch_related("deliveries"):
            with self._lock:
                if row.pk in self._seen:
                    continue
                self._seen.add(row.pk)
            record = _captured_event(row)
            with self._lock:
                self._events.append(record)


class _CodeUnderTestBlocks:
    """Whether the code under test is inside an atomic block it opened after the capture
    started (its events are not committed yet), seen through Django's documented APIs only.

    Installed as a database execute wrapper (Django's database instrumentation), it
    counts the inner blocks, each a ``SAVEPOINT`` ended by ``RELEASE SAVEPOINT`` (after a
    rollback too); a transaction begun from autocommit (``TransactionTestCase``) shows as
    :func:`~django.db.transaction.get_autocommit` turning false. The test case's own
    blocks were open before the capture started, so they are not counted.
    """

    def __init__(self, using: str) -> None:
        self.using = using
        self.open = 0
        self.from_autocommit = transaction.get_autocommit(using)

    def __call__(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        statement = sql.lstrip()[:20].upper() if isinstance(sql, str) else ""
        if statement.startswith("SAVEPOINT"):
            self.open += 1
        elif statement.startswith("RELEASE SAVEPOINT"):
            self.open -= 1
        return result

    def unfinished(self) -> bool:
        """True inside a block the code under test has not finished, or in a transaction
        that can only roll back."""
        if transaction.get_autocommit(self.using):
            return False
        if self.from_autocommit or self.open > 0:
            return True
        try:
            return transaction.get_rollback(self.using)
        except TransactionManagementError:  # a transaction managed by hand: no atomic block
            return False


def _captured_event(row: Event) -> CapturedEvent:
    """Render ``row`` for the vendors it has deliveries for, as a delivery would."""
    event = row.to_normalised()
    targeted = list(row.delivery_statuses())
    active = get_config().active_vendors
    requests: dict[str, VendorRequest] = {}
    skipped = {vendor: NOT_CONFIGURED for vendor in targeted if vendor not in active}
    renderable = [vendor for vendor in targeted if vendor in active]
    for target, request in render_requests(event, renderable) if renderable else []:
        if request is None:
            skipped[target.vendor] = target.skip_reason or ""
        else:
            requests[target.vendor] = request
    violations = tuple(
        f"{item.get('field')} {item.get('message')}"
        for item in row.violations or ()
        if isinstance(item, Mapping)
    )
    return CapturedEvent(event, requests, skipped, violations, row.quarantine is not None)


def _listing(events: Sequence[CapturedEvent], criteria: Criteria) -> str:
    if not events:
        return (
            "Nothing was tracked since the capture started (an event is captured once the "
            "transaction that tracked it commits, or its atomic block ends in a TestCase; a "
            "rolled-back event never is)."
        )
    lines = [f"Tracked ({len(events)}):"]
    for number, event in enumerate(events, 1):
        line = f"  {number}. {event.describe()}"
        if criteria.name is None or event.name == criteria.name:
            reason = criteria.mismatch(event)
            if reason:
                line += f"\n     does not match: {reason}"
        lines.append(line)
    return "\n".join(lines)


#: Everything captured, like ``django.core.mail.outbox``. :func:`capture_events`
#: (and the fixture and mixin) empty it when they start.
captured = CapturedEvents()


class CaptureBackend:
    """The ``capture`` delivery backend: on commit, put the events in :data:`captured`
    and mark their pending deliveries ``skipped`` (:data:`CAPTURED`), so nothing is
    sent and the outbox shows why.

    ``EVENTTRACK["DELIVERY"] = "capture"`` in test settings captures whatever
    commits (``TransactionTestCase``, ``captureOnCommitCallbacks(execute=True)``);
    :func:`capture_events` also covers a plain ``TestCase``.
    """

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        captured._take_committed(event_ids)

    def close(self, timeout: float | None = None) -> None:
        return None


@contextmanager
def capture_events(*, block: bool = True) -> Iterator[CapturedEvents]:
    """Capture everything tracked in the block instead of sending it; yield :data:`captured`.

    Switches ``DELIVERY`` to ``capture`` and (unless ``block=False``) blocks HTTP
    for the whole process (:func:`~django_eventtrack.testing.block_http`), so not
    even ``send_event --sync`` or a worker drain reaches a vendor. Starts with an
    empty list. Works in a plain ``TestCase`` too (see the module docstring).
    """
    from django_eventtrack.models import Event  # see _take_committed

    current = getattr(settings, "EVENTTRACK", None) or {}
    blocks = _CodeUnderTestBlocks(router.db_for_write(Event))
    with (
        override_settings(EVENTTRACK={**current, "DELIVERY": "capture"}),
        block_http() if block else nullcontext(),
        connections[blocks.using].execute_wrapper(blocks),
    ):
        captured._start(blocks)
        try:
            yield captured
        finally:
            captured._stop()


def assert_tracked(
    name: str | None = None,
    *,
    properties: Mapping[str, Any] | None = None,
    vendor: str | None = None,
    count: int | None = None,
    kind: str | None = None,
    **identity: Any,
) -> CapturedEvent:
    """:meth:`CapturedEvents.assert_tracked` on :data:`captured`."""
    __tracebackhide__ = True  # pytest: show the caller, not this helper
    return captured.assert_tracked(
        name, properties=properties, vendor=vendor, count=count, kind=kind, **identity
    )


def assert_not_tracked(
    name: str | None = None,
    *,
    properties: Mapping[str, Any] | None = None,
    vendor: str | None = None,
    kind: str | None = None,
    **identity: Any,
) -> None:
    """:meth:`CapturedEvents.assert_not_tracked` on :data:`captured`."""
    __tracebackhide__ = True  # pytest: show the caller, not this helper
    captured.assert_not_tracked(name, properties=properties, vendor=vendor, kind=kind, **identity)


def assert_identified(
    *,
    traits: Mapping[str, Any] | None = None,
    vendor: str | None = None,
    count: int | None = None,
    **identity: Any,
) -> CapturedEvent:
    """:meth:`CapturedEvents.assert_identified` on :data:`captured`."""
    __tracebackhide__ = True  # pytest: show the caller, not this helper
    return captured.assert_identified(traits=traits, vendor=vendor, count=count, **identity)
