"""Claiming due deliveries for a sender, and giving back what it did not send."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import connections, router, transaction
from django.db.models import QuerySet
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
    come due again. The same transaction first writes the deliveries of events
    tracked since the last claim (:mod:`~django_eventtrack.outbox.fanout`).
    """
    now = timezone.now()
    claim = Claim(uuid.uuid4(), now + lease, [])
    routed = fanout.pending(event_ids)
    candidates = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
    if event_ids is not None:
        candidates = candidates.filter(event_id__in=event_ids)
    if not routed.event_ids and not candidates.filter(vendor__in=list(limits)).exists():
        # Reads: the claim below is a write transaction, which on SQLite queues
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
            routed.write()
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
        sender_write(alias, partial(_reserve_each, routed, picks, now, reserve))
        # claim_token has no index (a full scan with a million delivered rows); the
        # claimed rows are due exactly at claim.until, which the due index finds.
        mine = Delivery.objects.filter(
            vendor__in=list(limits), status=Delivery.Status.PENDING, next_attempt_at=claim.until
        )
    # Oldest first, so a batch goes out in the order the events were tracked.
    claim.deliveries.extend(mine.filter(claim_token=claim.token).order_by("created_at", "pk"))
    _attach_events(claim.deliveries)
    return claim


def _reserve_each(
    routed: fanout.Fanout,
    picks: Sequence[tuple[QuerySet[Delivery], int]],
    now: datetime,
    reserve: Mapping[str, Any],
) -> int:
    routed.write()
    return sum(
        Delivery.objects.filter(
            pk__in=pick.values("pk")[:limit],
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=now,
        ).update(**reserve)
        for pick, limit in picks
    )


def _attach_events(deliveries: Sequence[Delivery]) -> None:
    """Give each delivery its event, reading each event once (a JOIN would read and
    decode an event's JSON once per vendor)."""
    events = Event.objects.in_bulk({delivery.event_id for delivery in deliveries})
    for delivery in deliveries:
        delivery.event = events[delivery.event_id]


def expire(claim: Claim, deliveries: Sequence[Delivery]) -> int:
    """End the lease of ``deliveries`` of ``claim`` now, if still unrecorded: due again
    for any sender, their claim's token kept; how many.

    For requests still in flight when their process exits: the rows need not
    wait for the lease to end, and a request that finishes still records its
    answer, unless another sender claims the row first (its token then wins).
    """
    now = timezone.now()
    rows = Delivery.objects.filter(
        pk__in=[delivery.pk for delivery in deliveries],
        claim_token=claim.token,
        status=Delivery.Status.PENDING,
    )
    return sender_write(
        router.db_for_write(Delivery), partial(rows.update, next_attempt_at=now, claimed_until=now)
    )


def release(claim: Claim, deliveries: Sequence[Delivery]) -> None:
    """Give unsent deliveries back (shutdown, a paused vendor): due again now."""
    if deliveries:
        update(claim, deliveries, next_attempt_at=timezone.now())


def update(claim: Claim, deliveries: Sequence[Delivery], **fields: Any) -> None:
    rows = Delivery.objects.filter(pk__in=[d.pk for d in deliveries], claim_token=claim.token)
    update = partial(
        rows.update, claim_token=None, claimed_until=None, updated_at=timezone.now(), **fields
    )
    sender_write(router.db_for_write(Delivery), update)
