"""Writing events into the outbox, claiming due deliveries, and recording outcomes.

Everything here is database work and nothing here talks HTTP, so a caller's
transaction never waits on a vendor, and a sender never holds a transaction
open while it waits on one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Field, QuerySet
from django.utils import timezone

from django_eventtrack import event as normalised
from django_eventtrack import signals
from django_eventtrack.conf import Config, DeliveryOptions, VendorConfig, get_config
from django_eventtrack.models import Delivery, Event, VendorPause
from django_eventtrack.redaction import MASK
from django_eventtrack.sending import Target, plan
from django_eventtrack.vendors import Outcome, OutcomeKind

logger = logging.getLogger("django_eventtrack.outbox")

Status = Delivery.Status


def record(event: normalised.Event, vendors: Iterable[str] | None = None) -> list[Target]:
    """Store ``event`` and one delivery per targeted vendor, in the caller's transaction.

    One statement on PostgreSQL (one round trip, atomic by itself, so no
    transaction of its own in autocommit); elsewhere two INSERTs, with no
    savepoint inside an outer transaction and a transaction of their own
    outside one. A vendor that cannot take the event (no identity it needs,
    filtered out by ``EVENTS`` when named explicitly) gets a ``skipped`` row with
    the reason, so the admin shows why nothing was sent. Returns the targets,
    one per delivery row written.
    """
    targets = plan(event, vendors, require_vendor=False)
    if not targets:
        logger.warning("event=%s name=%s: no vendor takes it; stored only", event.id, event.name)
    stored = Event.from_normalised(event)
    if all(target.skip_reason for target in targets):
        _scrub(stored, get_config())  # nothing will be sent: final already
    alias = router.db_for_write(Event)
    connection = connections[alias]
    inserts = [_insert(Event, _event_values(stored), [{}], connection)]
    if targets:
        shared = {"event_id": event.id, **dict.fromkeys(DELIVERY_STAMPS, stored.created_at)}
        rows = [_delivery_values(target) for target in targets]
        inserts.append(_insert(Delivery, shared, rows, connection))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A data-modifying WITH runs to completion whatever the main statement reads;
            # the deliveries' foreign key is checked at commit (Django makes it deferred).
            sql = " ".join(f"WITH stored_{n} AS ({sql})" for n, (sql, _) in enumerate(inserts[:-1]))
            cursor.execute(f"{sql} {inserts[-1][0]}", [p for _, params in inserts for p in params])
            return targets
        with transaction.atomic(using=alias, savepoint=False):
            for sql, params in inserts:
                cursor.execute(sql, params)
    return targets


# track() is on the caller's request path, so its INSERTs are written by hand: the
# ORM's insert compiler (model instances, per-field preparation of identical values,
# SQL assembly) cost more than the database work itself, three times a plain ORM
# insert in all (``python -m tests.benchmarks``, request path). The columns and
# values still come from the model's fields, as the ORM's would: every concrete
# field is written, with its default when track() does not set it, adapted by the
# field for the database.

#: A new delivery's timestamps: the instant its event was stored.
DELIVERY_STAMPS = ("created_at", "updated_at", "next_attempt_at")


def _event_values(stored: Event) -> dict[str, Any]:
    return {field.attname: field.pre_save(stored, True) for field in Event._meta.concrete_fields}


def _delivery_values(target: Target) -> dict[str, Any]:
    """What differs between an event's deliveries, by attribute name."""
    return {
        "vendor": target.vendor,
        "status": Status.SKIPPED.value if target.skip_reason else Status.PENDING.value,
        "last_error": target.skip_reason or "",
    }


def _insert(
    model: type[Event | Delivery],
    shared: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    connection: Any,
) -> tuple[str, list[Any]]:
    """The INSERT of ``rows`` and its parameters: each row has the values ``shared`` by
    all, its own (both by attribute name; each row names the same fields), and the
    default of every other concrete field but an auto-incremented key, each adapted by
    its field, as ``Model.save()`` would write them.

    What rows share is adapted once (constant defaults once per process), and a value
    equal to the one above it in its column is not adapted again: adapting the values
    for the database cost more than the rest of the statement (pyinstrument, request
    path). NULL goes in the SQL rather than as a parameter: psycopg parses a
    statement once and reuses the parse only when it has at most 50 parameters; with
    four vendors the deliveries' NULL columns (never claimed, never answered) made 61,
    and parsing each call cost more than the rows' own INSERT.
    """
    insert = _Insert.of(model, frozenset(shared), frozenset(rows[0]), connection)
    common = insert.constants | {
        index: insert.columns[index].get_db_prep_save(shared[name], connection)
        for index, name in insert.shared
    }
    params: list[Any] = []
    placeholders = []
    above: dict[int, tuple[Any, Any]] = {}  # a value equal to the row above's: adapted already
    for row in rows:
        cells = dict(common)
        for index, value_of in insert.varying:
            value = value_of(row)
            last, adapted = above.get(index, (_NOTHING, None))
            if type(value) is not type(last) or value != last:
                adapted = insert.columns[index].get_db_prep_save(value, connection)
                above[index] = (value, adapted)
            cells[index] = adapted
        values = [cells[index] for index in range(len(insert.columns))]
        params += [value for value in values if value is not None]
        placeholders.append(f"({', '.join('NULL' if v is None else '%s' for v in values)})")
    return f"{insert.head} VALUES {', '.join(placeholders)}", params


@dataclass(frozen=True)
class _Insert:
    """How :func:`_insert` writes rows naming the same values, worked out once per
    model, value names and database: the columns (every concrete field but an
    auto-incremented key and those whose default is the database's own, ``db_default``
    and no ``default``, which the ORM leaves to the database too), by index those
    taking a ``shared`` value, those whose value varies by row (their own, or a
    default made for each, such as a callable's or ``auto_now``'s), and the constant
    defaults, adapted."""

    head: str
    columns: tuple[Field[Any, Any], ...]
    shared: tuple[tuple[int, str], ...]
    varying: tuple[tuple[int, Callable[[Mapping[str, Any]], Any]], ...]
    constants: dict[int, Any]

    @classmethod
    def of(
        cls,
        model: type[Event | Delivery],
        shared: frozenset[str],
        own: frozenset[str],
        connection: Any,
    ) -> _Insert:
        key = (model, shared, own, connection.alias)
        found = _inserts.get(key)
        if found is None:
            found = _inserts[key] = cls._work_out(model, shared, own, connection)
        return found

    @classmethod
    def _work_out(
        cls,
        model: type[Event | Delivery],
        shared: frozenset[str],
        own: frozenset[str],
        connection: Any,
    ) -> _Insert:
        columns = tuple(
            field
            for field in model._meta.concrete_fields
            if field is not model._meta.auto_field
            and (field.attname in shared | own or field.has_default() or not field.has_db_default())
        )
        quote = connection.ops.quote_name
        head = (
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(field.column) for field in columns)})"
        )
        varying = []
        constants = {}
        for index, field in enumerate(columns):
            if field.attname in shared:
                continue
            value = _row_value(field, own)
            if value is None:
                constants[index] = field.get_db_prep_save(field.get_default(), connection)
            else:
                varying.append((index, value))
        return cls(
            head,
            columns,
            tuple((i, field.attname) for i, field in enumerate(columns) if field.attname in shared),
            tuple(varying),
            constants,
        )


_inserts: dict[tuple[Any, ...], _Insert] = {}
_NOTHING = object()


def _row_value(
    field: Field[Any, Any], own: frozenset[str]
) -> Callable[[Mapping[str, Any]], Any] | None:
    """How a row gets ``field``'s value when it varies by row; None for a constant default."""
    if field.attname in own:
        return operator.itemgetter(field.attname)
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda row: timezone.now()
    if field.has_default() and callable(field.default):
        return lambda row: field.get_default()
    return None


@dataclass
class _Write:
    """One sender's write waiting for its turn in a shared SQLite transaction."""

    run: Callable[[], int]
    result: int = 0
    error: BaseException | None = None
    done: bool = False


class _GroupCommit:
    """This process's sender writes to SQLite, several to a transaction.

    SQLite has one write lock and every commit waits for the disk (1 to 15 ms
    on the benchmark machine), while four vendors each claim and record once
    per event: their write transactions queued behind each other, and in
    SQLite's busy handler, which sleeps 1, 2, 5 ... 100 ms before looking again
    however soon the lock is free (``python -m tests.benchmarks --only
    latency``). Here a thread queues its write, and whichever thread holds the
    turn commits everything queued in one transaction (one disk flush), each
    write in a savepoint of its own so that a failing write fails alone.
    ``track()`` never comes here: it writes in the caller's transaction.
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._queued_lock = threading.Lock()
        self._queued: list[_Write] = []

    def write(self, alias: str, run: Callable[[], int]) -> int:
        mine = _Write(run)
        with self._queued_lock:
            self._queued.append(mine)
        with self._turn:
            if not mine.done:
                with self._queued_lock:
                    batch, self._queued = self._queued, []
                _commit_together(alias, batch)
        if mine.error is not None:
            raise mine.error
        return mine.result


def _commit_together(alias: str, batch: list[_Write]) -> None:
    """Run ``batch`` in one transaction; each write gets its result or its error."""
    try:
        with transaction.atomic(using=alias):
            for write in batch:
                try:
                    with transaction.atomic(using=alias):
                        write.result = write.run()
                except Exception as exc:
                    write.error = exc
    except BaseException as exc:  # not committed: every write in it failed
        for write in batch:
            write.error = write.error or exc
    finally:
        for write in batch:
            write.done = True


_groups: dict[str, _GroupCommit] = {}
_groups_lock = threading.Lock()


def _forget_groups() -> None:
    """A forked child starts with no queue and no turn held by its parent's threads."""
    global _groups_lock
    _groups.clear()
    _groups_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_groups)


def _sender_write(alias: str, run: Callable[[], int]) -> int:
    """Run a sender's write (``run``) on ``alias``; grouped with others on SQLite,
    unless the caller is inside a transaction of its own (the admin's actions):
    then it runs there, seeing and joining that transaction."""
    connection = connections[alias]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return run()
    with _groups_lock:
        group = _groups.setdefault(alias, _GroupCommit())
    return group.write(alias, run)


def due(vendor: str, *, now: datetime | None = None) -> QuerySet[Delivery]:
    """Pending deliveries for ``vendor`` whose time has come (served by a partial index)."""
    return Delivery.objects.filter(
        vendor=vendor, status=Status.PENDING, next_attempt_at__lte=now or timezone.now()
    )


@dataclass(frozen=True)
class Claim:
    """Deliveries reserved for one sender until ``until``; ``token`` proves ownership."""

    token: uuid.UUID
    until: datetime
    deliveries: list[Delivery]


def claim_due_deliveries(
    vendor: str,
    limit: int,
    lease: timedelta,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
) -> Claim:
    """Reserve up to ``limit`` due deliveries of ``vendor`` for ``lease``
    (:func:`claim_due` for one vendor)."""
    return claim_due({vendor: limit}, lease, event_ids=event_ids)


def claim_due(
    limits: Mapping[str, int],
    lease: timedelta,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
) -> Claim:
    """Reserve, for ``lease``, up to ``limits[vendor]`` due deliveries of each vendor,
    in one transaction: a sender that needs work for several vendors claims it at
    once. The deliveries come with their events, each event read once however
    many of its vendors are claimed.

    PostgreSQL (and any database with ``SKIP LOCKED``) locks the rows it picks
    and skips rows another sender is picking; elsewhere (SQLite) an
    UPDATE ... WHERE id IN (SELECT ... LIMIT n) per vendor does it atomically, as
    SQLite runs one writer at a time. Either way the claim moves
    ``next_attempt_at`` to the end of the lease, so if this sender dies the rows
    come due again.
    """
    now = timezone.now()
    claim = Claim(uuid.uuid4(), now + lease, [])
    candidates = Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
    if event_ids is not None:
        candidates = candidates.filter(event_id__in=event_ids)
    if not candidates.filter(vendor__in=list(limits)).exists():
        # A read: the claim below is a write transaction, which on SQLite queues
        # for the one write lock even when there is nothing to claim.
        return claim
    reserve = {
        "claim_token": claim.token,
        "claimed_until": claim.until,
        "next_attempt_at": claim.until,
    }
    alias = router.db_for_write(Delivery)
    picks = [
        (candidates.filter(vendor=vendor).order_by("next_attempt_at"), limit)
        for vendor, limit in limits.items()
    ]
    if connections[alias].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=alias):
            ids = [
                pk
                for pick, limit in picks
                for pk in pick.select_for_update(skip_locked=True).values_list("pk", flat=True)[
                    :limit
                ]
            ]
            if ids:
                Delivery.objects.filter(pk__in=ids).update(**reserve)
        mine = Delivery.objects.filter(pk__in=ids)
    else:
        _sender_write(alias, partial(_reserve_each, picks, now, reserve))
        # claim_token has no index (a full scan with a million delivered rows); the
        # claimed rows are due exactly at claim.until, which the due index finds.
        mine = Delivery.objects.filter(
            vendor__in=list(limits), status=Status.PENDING, next_attempt_at=claim.until
        )
    # Oldest first, so a batch goes out in the order the events were tracked.
    claim.deliveries.extend(mine.filter(claim_token=claim.token).order_by("created_at", "pk"))
    _attach_events(claim.deliveries)
    return claim


def _reserve_each(
    picks: Sequence[tuple[QuerySet[Delivery], int]], now: datetime, reserve: Mapping[str, Any]
) -> int:
    return sum(
        Delivery.objects.filter(
            pk__in=pick.values("pk")[:limit], status=Status.PENDING, next_attempt_at__lte=now
        ).update(**reserve)
        for pick, limit in picks
    )


def _attach_events(deliveries: Sequence[Delivery]) -> None:
    """Give each delivery its event, reading each event once (a JOIN would read and
    decode an event's JSON once per vendor)."""
    events = Event.objects.in_bulk({delivery.event_id for delivery in deliveries})
    for delivery in deliveries:
        delivery.event = events[delivery.event_id]


@dataclass(frozen=True)
class Result:
    """What became of one request's deliveries (several requests' with the same
    outcome); ``outcome`` None: not sent, to be given back."""

    claim: Claim
    deliveries: Sequence[Delivery]
    outcome: Outcome | None
    vendor: VendorConfig


def record_results(results: Sequence[Result], options: DeliveryOptions) -> None:
    """Write ``results`` in one transaction, whatever their vendors and outcomes, then
    tell the signal listeners.

    One commit for every request that finished meanwhile, instead of one per vendor
    and outcome: the senders' writes are what competes with ``track()`` for the
    database (on SQLite for its one write lock), so they are as few as the answers
    allow. The listeners hear of outcomes only once they are committed, and never
    while the transaction holds the database.
    """
    with _announcing_after():
        _write_together(router.db_for_write(Delivery), partial(_write_results, results, options))


def _write_results(results: Sequence[Result], options: DeliveryOptions) -> int:
    for result in results:
        if result.outcome is None:
            release(result.claim, result.deliveries)
            continue
        record_adjustments(result.claim, result.deliveries, dict(result.outcome.adjustments))
        finish(result.claim, result.deliveries, result.outcome, result.vendor, options)
    return len(results)


def _write_together(alias: str, run: Callable[[], int]) -> int:
    """Run ``run``'s writes in one transaction (on SQLite, with those of this process's
    other senders queued meanwhile: :class:`_GroupCommit`)."""
    connection = connections[alias]
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        return _sender_write(alias, run)
    with transaction.atomic(using=alias):
        return run()


def finish(
    claim: Claim,
    deliveries: Sequence[Delivery],
    outcome: Outcome,
    config: VendorConfig,
    options: DeliveryOptions,
    *,
    attempted: bool = True,
) -> None:
    """Write ``outcome`` for ``deliveries`` (one request's worth) and tell listeners.

    Updates are conditional on the claim token: a sender whose lease ran out
    and whose rows another sender took over cannot overwrite that sender's result.
    ``attempted=False`` records a verdict reached without sending (no attempt counted).
    """
    now = timezone.now()
    if outcome.kind is OutcomeKind.RETRY:
        for delivery in deliveries:
            _reschedule(claim, delivery, outcome, config, options, now)
        scrub_finished(d.event_id for d in deliveries if d.status == Status.FAILED)
        return
    status = Status.DELIVERED if outcome.ok else Status.FAILED
    if outcome.kind is OutcomeKind.SKIPPED:
        status = Status.SKIPPED
    counted = int(attempted and outcome.kind is not OutcomeKind.SKIPPED)
    _update(
        claim,
        deliveries,
        status=status,
        attempts=F("attempts") + counted,
        last_status=outcome.http_status,
        last_error=outcome.message,
        delivered_at=now if outcome.ok else None,
    )
    for delivery in deliveries:
        _refresh(delivery, status, outcome, now, counted)
        _announce(delivery, outcome)
    scrub_finished(delivery.event_id for delivery in deliveries)


def scrub_finished(event_ids: Iterable[uuid.UUID]) -> int:
    """Apply ``SCRUB_DELIVERED`` / ``REDACT_KEYS`` to those of ``event_ids`` whose
    deliveries are all final (delivered, failed or skipped); returns how many changed.

    Personal data then lives in the outbox only while it is needed for sending.
    The identity snapshot is kept (pseudonymous ids the admin searches by);
    ``eventtrack_purge`` removes whole rows after ``RETENTION_DAYS``.
    """
    config = get_config()
    ids = set(event_ids)
    if not ids or not (config.scrub_delivered or config.redact_keys):
        return 0
    finished = Event.objects.filter(pk__in=ids).exclude(deliveries__status=Status.PENDING)
    changed = [
        event
        for event in finished.only("id", "properties", "vendor_extra", "scrubbed_at")
        if _scrub(event, config)
    ]
    if changed:
        _sender_write(
            router.db_for_write(Event),
            partial(
                Event.objects.bulk_update, changed, ["properties", "vendor_extra", "scrubbed_at"]
            ),
        )
    return len(changed)


def _scrub(event: Event, config: Config) -> bool:
    """Scrub or redact ``event`` in place, per the settings; True when it changed."""
    before = (event.properties, event.vendor_extra)
    if config.scrub_delivered:
        event.properties, event.vendor_extra = {}, {}
    elif config.redact_keys:
        event.properties = _redacted(event.properties, config.redact_keys)
        event.vendor_extra = _redacted(event.vendor_extra, config.redact_keys)
    changed = (event.properties, event.vendor_extra) != before
    if changed:
        event.scrubbed_at = timezone.now()
    return changed


def _redacted(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with the values of ``keys`` masked, in nested dicts and lists too."""
    if isinstance(value, Mapping):
        return {key: MASK if key in keys else _redacted(item, keys) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, keys) for item in value]
    return value


def _reschedule(
    claim: Claim,
    delivery: Delivery,
    outcome: Outcome,
    config: VendorConfig,
    options: DeliveryOptions,
    now: datetime,
) -> None:
    attempts = delivery.attempts + 1
    age = (now - delivery.created_at).total_seconds()
    give_up = None
    if attempts >= config.max_attempts:
        give_up = f"gave up after {attempts} attempts"
    elif age >= config.max_age:
        give_up = f"gave up: not delivered within MAX_AGE ({config.max_age:g}s)"
    if give_up:
        message = f"{give_up}; last: {outcome.message}" if outcome.message else give_up
        failed = Outcome(OutcomeKind.FAILED, outcome.http_status, message)
        _update(
            claim,
            [delivery],
            status=Status.FAILED,
            attempts=attempts,
            last_status=outcome.http_status,
            last_error=message,
        )
        _refresh(delivery, Status.FAILED, failed, now)
        _announce(delivery, failed)
        return
    wait = max(backoff(attempts, options), outcome.retry_after or 0.0)
    _update(
        claim,
        [delivery],
        attempts=attempts,
        next_attempt_at=now + timedelta(seconds=wait),
        last_status=outcome.http_status,
        last_error=outcome.message,
    )
    delivery.attempts = attempts
    delivery.last_error = outcome.message
    logger.info(
        "event=%s vendor=%s attempt=%d status=%s: retrying in %.1fs",
        delivery.event_id,
        delivery.vendor,
        attempts,
        outcome.http_status,
        wait,
    )


def backoff(attempts: int, options: DeliveryOptions) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(n-1))].

    Jitter spreads a burst of failed deliveries so they do not all come back at
    the same instant and knock the recovering vendor over again.
    """
    ceiling = min(options.retry_backoff_max, options.retry_backoff_base * math.pow(2, attempts - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def _update(claim: Claim, deliveries: Sequence[Delivery], **fields: Any) -> None:
    rows = Delivery.objects.filter(pk__in=[d.pk for d in deliveries], claim_token=claim.token)
    update = partial(
        rows.update, claim_token=None, claimed_until=None, updated_at=timezone.now(), **fields
    )
    _sender_write(router.db_for_write(Delivery), update)


def _refresh(
    delivery: Delivery, status: str, outcome: Outcome, now: datetime, counted: int = 1
) -> None:
    delivery.status = status
    delivery.attempts += counted
    delivery.last_status = outcome.http_status
    delivery.last_error = outcome.message
    if outcome.ok:
        delivery.delivered_at = now


#: Per thread, the signals held back by :func:`_announcing_after` (None: send at once).
_held_back = threading.local()


@contextlib.contextmanager
def _announcing_after() -> Iterator[None]:
    """Hold back the signals :func:`finish` sends inside the block; send them once the
    block succeeded, and none if it failed (its outcomes were not written)."""
    held: list[tuple[Delivery, Outcome]] = []
    _held_back.signals = held
    try:
        yield
    finally:
        _held_back.signals = None
    for delivery, outcome in held:
        _announce(delivery, outcome)


def _announce(delivery: Delivery, outcome: Outcome) -> None:
    held: list[tuple[Delivery, Outcome]] | None = getattr(_held_back, "signals", None)
    if held is not None:
        held.append((delivery, outcome))
        return
    signal = signals.delivery_succeeded if outcome.ok else signals.delivery_failed
    if outcome.kind is OutcomeKind.SKIPPED or not signal.has_listeners(Delivery):
        return
    for receiver, result in signal.send_robust(sender=Delivery, delivery=delivery, outcome=outcome):
        if isinstance(result, Exception):
            logger.error(
                "event=%s vendor=%s: signal receiver %r raised %r",
                delivery.event_id,
                delivery.vendor,
                receiver,
                result,
            )


def end_lease(claim: Claim, deliveries: Sequence[Delivery]) -> int:
    """Make ``deliveries`` of ``claim``, if still unrecorded, due now, keeping its token;
    how many.

    For requests still in flight when their process exits: the rows need not
    wait for the lease to end, and a request that finishes still records its
    answer, unless another sender claims the row first (its token then wins).
    """
    now = timezone.now()
    rows = Delivery.objects.filter(
        pk__in=[delivery.pk for delivery in deliveries],
        claim_token=claim.token,
        status=Status.PENDING,
    )
    return _sender_write(
        router.db_for_write(Delivery), partial(rows.update, next_attempt_at=now, claimed_until=now)
    )


def release(claim: Claim, deliveries: Sequence[Delivery]) -> None:
    """Give unsent deliveries back (shutdown, a paused vendor): due again now."""
    if deliveries:
        _update(claim, deliveries, next_attempt_at=timezone.now())


def record_adjustments(
    claim: Claim, deliveries: Sequence[Delivery], adjustments: Mapping[str, Sequence[str]]
) -> None:
    """Keep on each delivery what its request changed to fit the vendor
    (``adjustments``: event id -> lines), and log it at INFO: once per delivery,
    since a retry that changes the same things writes and logs nothing."""
    for delivery in deliveries:
        lines = list(adjustments.get(str(delivery.event_id), ()))
        if lines == delivery.adjustments:
            continue
        rows = Delivery.objects.filter(pk=delivery.pk, claim_token=claim.token)
        _sender_write(router.db_for_write(Delivery), partial(rows.update, adjustments=lines))
        delivery.adjustments = lines
        if lines:
            logger.info(
                "event=%s vendor=%s: changed to fit the vendor: %s",
                delivery.event_id,
                delivery.vendor,
                "; ".join(lines),
            )


def pause_vendor(vendor: str, seconds: float, reason: str) -> None:
    """Stop every process sending to ``vendor`` for ``seconds`` (a longer pause already
    recorded is kept). The sender checks it before each claim."""
    until = timezone.now() + timedelta(seconds=seconds)
    reason = reason[:255]  # VendorPause.reason's max_length
    _sender_write(router.db_for_write(VendorPause), partial(_extend_pause, vendor, until, reason))
    logger.warning("vendor=%s: paused for every process until %s (%s)", vendor, until, reason)


def _extend_pause(vendor: str, until: datetime, reason: str) -> int:
    extended = VendorPause.objects.filter(vendor=vendor, paused_until__lt=until).update(
        paused_until=until, reason=reason
    )
    if extended or VendorPause.objects.filter(vendor=vendor).exists():
        return extended
    try:
        with transaction.atomic(using=router.db_for_write(VendorPause)):
            VendorPause.objects.create(vendor=vendor, paused_until=until, reason=reason)
    except IntegrityError:  # another process paused it at the same instant
        return 0
    return 1


def paused_vendors() -> dict[str, VendorPause]:
    """The vendors paused right now (by a 429's ``Retry-After`` or a circuit breaker,
    in any process), with until when and why."""
    return {
        pause.vendor: pause for pause in VendorPause.objects.filter(paused_until__gt=timezone.now())
    }
