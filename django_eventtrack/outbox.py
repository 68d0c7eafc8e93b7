"""Writing events into the outbox, claiming due deliveries, and recording outcomes.

Everything here is database work and nothing here talks HTTP, so a caller's
transaction never waits on a vendor, and a sender never holds a transaction
open while it waits on one.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, QuerySet
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

    Two INSERTs; no savepoint inside an outer transaction, a transaction of its
    own outside one. A vendor that cannot take the event (no identity it needs,
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
    with transaction.atomic(using=alias, savepoint=False):
        _insert_event(stored, alias)
        _insert_deliveries(event.id, targets, stored.created_at, alias)
    return targets


# track() is on the caller's request path, so its two INSERTs are written by hand:
# the ORM's insert compiler (model instances, per-field preparation of identical
# values, SQL assembly) cost more than the database work itself, three times a plain
# ORM insert in all (``python -m tests.benchmarks``, request path). The values are
# still adapted by each field, so every database backend sees what the ORM sends.


def _insert_event(stored: Event, alias: str) -> None:
    connection = connections[alias]
    fields = Event._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(stored, True), connection) for field in fields]
    _insert(Event, [str(field.column) for field in fields], [values], alias)


def _insert_deliveries(
    event_id: uuid.UUID, targets: Sequence[Target], now: datetime, alias: str
) -> None:
    """One row per target; the columns left out are NULL (claim, last status, delivered
    at) or their database default (adjustments: none)."""
    if not targets:
        return
    connection = connections[alias]
    fields = {field.name: field for field in Delivery._meta.concrete_fields}
    event = fields["event"].get_db_prep_save(event_id, connection)
    at = fields["created_at"].get_db_prep_save(now, connection)
    columns = ["event_id", "vendor", "status", "attempts", "last_error"]
    columns += ["created_at", "updated_at", "next_attempt_at"]
    rows = [
        (
            event,
            target.vendor,
            Status.SKIPPED.value if target.skip_reason else Status.PENDING.value,
            0,
            target.skip_reason or "",
            at,
            at,
            at,
        )
        for target in targets
    ]
    _insert(Delivery, columns, rows, alias)


def _insert(
    model: type[Event | Delivery],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    alias: str,
) -> None:
    """INSERT ``rows`` (values already adapted for the database) in one statement."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(columns))})"
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) "  # noqa: S608 - names from the model
        f"VALUES {', '.join([row] * len(rows))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for values in rows for value in values])


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
    """Reserve up to ``limit`` due deliveries of ``vendor`` for ``lease``.

    PostgreSQL (and any database with ``SKIP LOCKED``) locks the rows it picks
    and skips rows another sender is picking; elsewhere (SQLite) a single
    UPDATE ... WHERE id IN (SELECT ... LIMIT n) does it atomically, as SQLite
    runs one writer at a time. Either way the claim moves ``next_attempt_at``
    to the end of the lease, so if this sender dies the rows come due again.
    """
    now = timezone.now()
    claim = Claim(uuid.uuid4(), now + lease, [])
    candidates = due(vendor, now=now)
    if event_ids is not None:
        candidates = candidates.filter(event_id__in=event_ids)
    candidates = candidates.order_by("next_attempt_at")
    reserve = {
        "claim_token": claim.token,
        "claimed_until": claim.until,
        "next_attempt_at": claim.until,
    }
    if not candidates.exists():
        # A read: the claim below is a write transaction, which on SQLite queues
        # for the one write lock even when there is nothing to claim.
        return claim
    alias = router.db_for_write(Delivery)
    if connections[alias].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=alias):
            ids = list(
                candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit]
            )
            claimed = Delivery.objects.filter(pk__in=ids).update(**reserve) if ids else 0
        mine = Delivery.objects.filter(pk__in=ids)
    else:
        claimed = _sender_write(
            alias,
            partial(
                Delivery.objects.filter(
                    pk__in=candidates.values("pk")[:limit],
                    status=Status.PENDING,
                    next_attempt_at__lte=now,
                ).update,
                **reserve,
            ),
        )
        # claim_token has no index (a full scan with a million delivered rows); the
        # claimed rows are due exactly at claim.until, which the due index finds.
        mine = Delivery.objects.filter(
            vendor=vendor, status=Status.PENDING, next_attempt_at=claim.until
        )
    if claimed:
        claim.deliveries.extend(
            # Oldest first, so a batch goes out in the order the events were tracked.
            mine.filter(claim_token=claim.token)
            .select_related("event")
            .order_by("created_at", "pk")
        )
    return claim


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


def _announce(delivery: Delivery, outcome: Outcome) -> None:
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
