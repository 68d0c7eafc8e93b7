"""Claiming due deliveries for a sender, renewing its claims while it works, and giving
back what it did not send.

A claim is a short lease that its sender renews while the work goes on
(:func:`renew`): rows a sender holds stay its own however long their requests take,
and the rows of a sender that died come due again once the lease it no longer renews
ends, within ``LEASE_SECONDS``.

Every write of a claim's rows takes their row locks in one order, by primary key
(:func:`write_in_key_order`, :func:`lock_in_key_order`), so two writers of the same rows
(a sender recording outcomes, and whatever gives them back or renews them) wait for
each other on PostgreSQL instead of deadlocking. SQLite has one writer at a time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, Func, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import fanout
from django_eventtrack.outbox.group_commit import sender_write


def due(vendor: str, *, now: datetime | None = None) -> QuerySet[Delivery]:
    """Pending deliveries for ``vendor`` whose time has come (served by a partial index)."""
    return Delivery.objects.filter(
        vendor=vendor, status=Delivery.Status.PENDING, next_attempt_at__lte=now or timezone.now()
    )


@dataclass(frozen=True)
class Claim:
    """Deliveries reserved for one sender until ``until`` (unless renewed); ``token``
    proves ownership."""

    token: uuid.UUID
    until: datetime
    deliveries: list[Delivery]
    #: Due deliveries were left out to keep within the claim's ``max_bytes``.
    cut_short: bool = False


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


class _StoredBytes(Func):
    """The bytes a JSON column holds, as text: what reading it costs a sender's memory
    (jsonb's own size on PostgreSQL is compressed, far below what it decodes to)."""

    output_field = IntegerField()
    template = "LENGTH(%(expressions)s)"

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        return self._as(compiler, connection, "OCTET_LENGTH((%(expressions)s)::text)")

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        return self._as(compiler, connection, "LENGTH(CAST(%(expressions)s AS BLOB))")

    def _as(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, template: str
    ) -> tuple[str, tuple[str | int, ...]]:
        sql, params = self.as_sql(compiler, connection, template=template)
        return sql, tuple(params)


#: What reading a delivery's event costs: its properties and vendor_extra, as stored.
EVENT_BYTES = _StoredBytes(F("event__properties")) + _StoredBytes(F("event__vendor_extra"))


def claim_due(
    limits: Mapping[str, int],
    lease: timedelta,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
    max_bytes: int | None = None,
) -> Claim:
    """Reserve, for ``lease``, up to ``limits[vendor]`` due deliveries of each vendor,
    in one transaction: a sender that needs work for several vendors claims it at
    once. The deliveries come with their events, each event read once however
    many of its vendors are claimed; with ``max_bytes``, no more of them than their
    stored size allows (at least one), so a backlog of large events cannot fill a
    sender's memory.

    PostgreSQL (and any database with ``SKIP LOCKED``) locks the rows it picks
    and skips rows another sender is picking; elsewhere (SQLite) the picking and
    the UPDATE share one write transaction, as SQLite runs one writer at a time.
    Either way the claim moves ``next_attempt_at`` to the end of the lease, so if
    this sender dies the rows come due again. The same transaction first writes
    the deliveries of events tracked since the last claim
    (:mod:`~django_eventtrack.outbox.fanout`).

    A delivery about a user whose earlier ``identify()`` call to the same vendor is
    still pending is not claimed (:func:`claimable`): a visitor's identify goes before
    their later events.
    """
    now = timezone.now()
    claim = Claim(uuid.uuid4(), now + lease, [])
    routed = fanout.pending(event_ids)
    candidates = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
    if event_ids is not None:
        candidates = candidates.filter(event_id__in=event_ids)
    vendors = list(limits)
    if (
        not routed.event_ids
        and not claimable(candidates.filter(vendor__in=vendors), vendors).exists()
    ):
        # Reads: the claim below is a write transaction, which on SQLite queues
        # for the one write lock even when there is nothing to claim.
        return claim
    reserve = {
        "claim_token": claim.token,
        "claimed_until": claim.until,
        "next_attempt_at": claim.until,
    }
    alias = router.db_for_write(Delivery)
    picked = _Picked()
    if connections[alias].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=alias):
            routed.write()
            locking = [
                # Only the deliveries' rows: never lock the events a claim reads.
                (pick.select_for_update(skip_locked=True, of=("self",)), limit)
                for pick, limit in _picks(candidates, limits)
            ]
            picked = _within(locking, max_bytes)
            if picked.ids:
                Delivery.objects.filter(pk__in=picked.ids).update(**reserve)
    else:
        write = partial(_reserve, routed, (candidates, limits), now, reserve, max_bytes, picked)
        sender_write(alias, write)
    # Oldest first, so a batch goes out in the order the events were tracked.
    mine = Delivery.objects.filter(pk__in=picked.ids, claim_token=claim.token)
    claim.deliveries.extend(mine.order_by("created_at", "pk"))
    _attach_events(claim.deliveries)
    return replace(claim, cut_short=picked.cut_short)


def sendable(claimed: Sequence[tuple[Claim, Sequence[Delivery]]]) -> set[int]:
    """The primary keys of the ``claimed`` deliveries still pending under their claim:
    what may be sent now (one indexed query for them all).

    A sender's last look before its requests: a delivery skipped since the claim (an
    erasure, a consent withdrawn, the admin's "mark skipped") or taken over by another
    sender after the lease ended is not sent. A request that has passed it is under
    way, and records its real outcome.
    """
    tokens = {delivery.pk: claim.token for claim, deliveries in claimed for delivery in deliveries}
    rows = Delivery.objects.filter(pk__in=list(tokens), status=Delivery.Status.PENDING)
    return {pk for pk, token in rows.values_list("pk", "claim_token") if tokens[pk] == token}


@dataclass
class _Picked:
    """The deliveries a claim picked, and whether ``max_bytes`` left due ones out."""

    ids: list[int] = field(default_factory=list)
    cut_short: bool = False


def _reserve(
    routed: fanout.Fanout,
    wanted: tuple[QuerySet[Delivery], Mapping[str, int]],
    now: datetime,
    reserve: Mapping[str, Any],
    max_bytes: int | None,
    picked: _Picked,
) -> int:
    """SQLite's claim, in one write transaction: fan out, pick, reserve; ``picked`` gets
    the deliveries reserved."""
    routed.write()
    found = _within(_picks(*wanted), max_bytes)
    picked.ids, picked.cut_short = found.ids, found.cut_short
    return Delivery.objects.filter(
        pk__in=found.ids, status=Delivery.Status.PENDING, next_attempt_at__lte=now
    ).update(**reserve)


def _picks(
    candidates: QuerySet[Delivery], limits: Mapping[str, int]
) -> list[tuple[QuerySet[Delivery], int]]:
    """Per vendor, the claimable candidates in order, and how many to take. Built inside
    the claim's transaction, after the routed events' deliveries are written: an
    identify written there holds its user's later events back at once."""
    claimable_now = claimable(candidates, list(limits))
    return [
        (claimable_now.filter(vendor=vendor).order_by("next_attempt_at"), limit)
        for vendor, limit in limits.items()
    ]


def claimable(candidates: QuerySet[Delivery], vendors: Sequence[str]) -> QuerySet[Delivery]:
    """``candidates`` but the deliveries waiting for an identify: those about a user whose
    ``identify()`` call to the same vendor, tracked before them, is still pending. Left as
    they are (one indexed query) when no identify of ``vendors`` is pending."""
    identifying = Delivery.objects.filter(
        vendor__in=vendors, status=Delivery.Status.PENDING
    ).exclude(identifies="")
    if not identifying.exists():
        return candidates
    earlier = identifying.filter(
        vendor=OuterRef("vendor"),
        identifies=OuterRef("about"),
        created_at__lt=OuterRef("created_at"),
    )
    return candidates.alias(about=KeyTextTransform("user_id", "event__identity")).filter(
        ~Q(identifies="") | ~Exists(earlier)
    )


def _within(picks: Sequence[tuple[QuerySet[Delivery], int]], max_bytes: int | None) -> _Picked:
    """The first ``limit`` deliveries of each pick (a vendor's, oldest first), taken from
    each vendor in turn while the events they read add up to at most ``max_bytes`` (at
    least one; an event several of them share counts once)."""
    if max_bytes is None:
        pks = [pk for pick, limit in picks for pk in pick.values_list("pk", flat=True)[:limit]]
        return _Picked(pks)
    columns = ("pk", "event_id", "event_bytes")
    found = [
        list(pick.annotate(event_bytes=EVENT_BYTES).values_list(*columns)[:limit])
        for pick, limit in picks
    ]
    picked = _Picked()
    events: set[uuid.UUID] = set()
    total = 0
    for row in itertools.chain.from_iterable(itertools.zip_longest(*found)):
        if row is None:
            continue
        pk, event_id, size = row
        if event_id not in events:
            total += size or 0
            if picked.ids and total > max_bytes:
                picked.cut_short = True
                break
            events.add(event_id)
        picked.ids.append(pk)
    return picked


def _attach_events(deliveries: Sequence[Delivery]) -> None:
    """Give each delivery its event, reading each event once (a JOIN would read and
    decode an event's JSON once per vendor)."""
    events = Event.objects.in_bulk({delivery.event_id for delivery in deliveries})
    for delivery in deliveries:
        delivery.event = events[delivery.event_id]


def renew(tokens: Collection[uuid.UUID], deliveries: Sequence[Delivery], lease: timedelta) -> int:
    """Extend, to ``lease`` from now, the claims of ``tokens`` on ``deliveries`` still
    unrecorded: a sender's heartbeat, one UPDATE for all it holds; how many rows."""
    if not deliveries:
        return 0
    until = timezone.now() + lease
    rows = Delivery.objects.filter(
        pk__in=[delivery.pk for delivery in deliveries],
        claim_token__in=list(tokens),
        status=Delivery.Status.PENDING,
    )
    return write_in_key_order(rows, claimed_until=until, next_attempt_at=until)


def expire(claim: Claim, deliveries: Sequence[Delivery]) -> int:
    """End the lease of ``deliveries`` of ``claim`` now, if still unrecorded: due again
    for any sender, their claim's token kept; how many.

    For requests sent and unrecorded when their process exits: the rows need not
    wait for the lease to end, and a request that finishes still records its
    answer, unless another sender claims the row first (its token then wins).
    """
    if not deliveries:
        return 0
    now = timezone.now()
    rows = Delivery.objects.filter(
        pk__in=[delivery.pk for delivery in deliveries],
        claim_token=claim.token,
        status=Delivery.Status.PENDING,
    )
    return write_in_key_order(rows, next_attempt_at=now, claimed_until=now)


def release(claim: Claim, deliveries: Sequence[Delivery]) -> None:
    """Give unsent deliveries back (shutdown, a paused vendor): due again now."""
    if deliveries:
        update(claim, deliveries, next_attempt_at=timezone.now())


def update(claim: Claim, deliveries: Sequence[Delivery], **fields: Any) -> int:
    """Write ``fields`` to those of ``deliveries`` ``claim`` still holds, ending its
    claim on them."""
    rows = Delivery.objects.filter(pk__in=[d.pk for d in deliveries], claim_token=claim.token)
    return write_in_key_order(
        rows, claim_token=None, claimed_until=None, updated_at=timezone.now(), **fields
    )


def write_in_key_order(rows: QuerySet[Delivery], **fields: Any) -> int:
    """``rows.update(**fields)``, its row locks taken by primary key (one statement; on
    SQLite grouped with this process's other sender writes); how many rows."""
    alias = router.db_for_write(Delivery)
    if not connections[alias].features.has_select_for_update:
        return sender_write(alias, partial(rows.update, **fields))
    locked = rows.order_by("pk").select_for_update().values("pk")
    with transaction.atomic(using=alias, savepoint=False):
        return Delivery.objects.filter(pk__in=Subquery(locked)).update(**fields)


def lock_in_key_order(deliveries: Sequence[Delivery]) -> None:
    """In the caller's transaction, lock ``deliveries``' rows by primary key before it
    writes them in several statements (PostgreSQL; SQLite has no row locks)."""
    alias = router.db_for_write(Delivery)
    if deliveries and connections[alias].features.has_select_for_update:
        rows = Delivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries])
        list(rows.order_by("pk").select_for_update().values_list("pk", flat=True))
