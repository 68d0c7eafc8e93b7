"""Writing events into the outbox, claiming due deliveries, and recording outcomes.

Everything here is database work and nothing here talks HTTP, so a caller's
transaction never waits on a vendor, and a sender never holds a transaction
open while it waits on one.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from django_eventtrack import event as normalised
from django_eventtrack import signals
from django_eventtrack.conf import DeliveryOptions, VendorConfig
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sending import Target, plan
from django_eventtrack.vendors import Outcome, OutcomeKind

logger = logging.getLogger("django_eventtrack.outbox")

Status = Delivery.Status


def record(event: normalised.Event, vendors: Iterable[str] | None = None) -> list[Delivery]:
    """Store ``event`` and one delivery per targeted vendor, in the caller's transaction.

    Two INSERTs; no savepoint inside an outer transaction, a transaction of its
    own outside one. A vendor that cannot take the event (no identity it needs,
    filtered out by ``EVENTS`` when named explicitly) gets a ``skipped`` row with
    the reason, so the admin shows why nothing was sent.
    """
    targets = plan(event, vendors, require_vendor=False)
    if not targets:
        logger.warning("event=%s name=%s: no vendor takes it; stored only", event.id, event.name)
    now = timezone.now()
    deliveries = [_new_delivery(event, target, now) for target in targets]
    with transaction.atomic(using=router.db_for_write(Event), savepoint=False):
        Event.from_normalised(event).save(force_insert=True)
        Delivery.objects.bulk_create(deliveries)
    return deliveries


def _new_delivery(event: normalised.Event, target: Target, now: datetime) -> Delivery:
    if target.skip_reason:
        return Delivery(
            event_id=event.id,
            vendor=target.vendor,
            status=Status.SKIPPED,
            last_error=target.skip_reason,
            created_at=now,
            next_attempt_at=now,
        )
    return Delivery(event_id=event.id, vendor=target.vendor, created_at=now, next_attempt_at=now)


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
    alias = router.db_for_write(Delivery)
    with transaction.atomic(using=alias):
        if connections[alias].features.has_select_for_update_skip_locked:
            ids = list(
                candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit]
            )
            claimed = Delivery.objects.filter(pk__in=ids).update(**reserve) if ids else 0
        else:
            claimed = Delivery.objects.filter(
                pk__in=candidates.values("pk")[:limit],
                status=Status.PENDING,
                next_attempt_at__lte=now,
            ).update(**reserve)
    if claimed:
        claim.deliveries.extend(
            # Oldest first, so a batch goes out in the order the events were tracked.
            Delivery.objects.filter(claim_token=claim.token)
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
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries], claim_token=claim.token).update(
        claim_token=None, claimed_until=None, updated_at=timezone.now(), **fields
    )


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


def release(claim: Claim, deliveries: Sequence[Delivery]) -> None:
    """Give unsent deliveries back (shutdown, a paused vendor): due again now."""
    if deliveries:
        _update(claim, deliveries, next_attempt_at=timezone.now())
