"""Writing an event's deliveries, one per vendor, from the routes ``track()`` stored.

``track()`` writes one row on the caller's request path, the event with its
``routes`` (the vendors it goes to, and why not for one that skips it); a sender
writes the deliveries, for every event routed since it last looked, in the
transaction of its next claim: one write for many events, off the request path.

Writing them is idempotent (the unique (event, vendor) constraint) and clears
``routes`` in the same transaction, so an event is fanned out once however many
senders look. Until then it counts as pending for every vendor it names
(:func:`unrouted`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import router, transaction
from django.db.models import QuerySet

from django_eventtrack.models import Delivery, Event

logger = logging.getLogger("django_eventtrack.outbox")

#: The most events one claim fans out; the rest wait for the next round.
BATCH = 500


def routes_of(targets: Sequence[tuple[str, str | None]]) -> dict[str, str | None] | None:
    """What ``track()`` stores for ``(vendor, skip reason)`` targets: each vendor with
    ``None``, or why it skips the event; ``None`` when no vendor takes it."""
    return {vendor: reason for vendor, reason in targets} or None


def unrouted(event_ids: Sequence[uuid.UUID] | None = None) -> QuerySet[Event]:
    """Events whose deliveries are not written yet (served by a partial index)."""
    rows = Event.objects.filter(routes__isnull=False)
    if event_ids is not None:
        rows = rows.filter(pk__in=event_ids)
    return rows


@dataclass(frozen=True)
class Fanout:
    """Deliveries to write for a batch of events, read before the write transaction."""

    event_ids: list[uuid.UUID]
    deliveries: list[Delivery]

    def write(self) -> int:
        """Write the deliveries and mark their events routed, in the caller's
        transaction; how many events this call routed."""
        if not self.event_ids:
            return 0
        Delivery.objects.bulk_create(self.deliveries, ignore_conflicts=True)
        return unrouted(self.event_ids).update(routes=None)


def pending(event_ids: Sequence[uuid.UUID] | None = None, *, limit: int = BATCH) -> Fanout:
    """The oldest ``limit`` unrouted events (of ``event_ids``, if given) and their
    deliveries, each due when its event was stored. In one order for every sender,
    so two writing the same deliveries on PostgreSQL wait for each other in that
    order and never deadlock."""
    picked = list(
        unrouted(event_ids)
        .order_by("created_at", "pk")
        .values_list("pk", "routes", "created_at")[:limit]
    )
    return Fanout(
        [pk for pk, _, _ in picked],
        [
            delivery
            for pk, routes, created_at in picked
            for delivery in _deliveries(pk, routes, created_at)
        ],
    )


def write_now(event_ids: Sequence[uuid.UUID]) -> int:
    """Write the deliveries of those of ``event_ids`` still unrouted now, in a transaction
    of their own rather than a sender's next claim (the ``capture`` test backend, which
    sends nothing); how many events were routed."""
    batch = pending(event_ids, limit=len(event_ids))
    with transaction.atomic(using=router.db_for_write(Delivery)):
        return batch.write()


def _deliveries(event_id: uuid.UUID, routes: object, created_at: datetime) -> list[Delivery]:
    if not isinstance(routes, Mapping):  # not track()'s: written by hand, or damaged
        logger.error(
            "event=%s: its routes are %r, not a mapping of vendor to skip reason; no "
            "delivery written (send it again with `manage.py send_event`)",
            event_id,
            type(routes).__name__,
        )
        return []
    return [
        Delivery(
            event_id=event_id,
            vendor=vendor,
            status=Delivery.Status.SKIPPED if reason else Delivery.Status.PENDING,
            last_error=str(reason or ""),
            created_at=created_at,
            next_attempt_at=created_at,
        )
        for vendor, reason in routes.items()
    ]
