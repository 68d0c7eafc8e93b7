"""How long the outbox keeps what it no longer needs: personal data scrubbed from events
once every delivery is final (:func:`scrub_finished`), and finished rows deleted after the
retention period (:func:`purge`, behind ``eventtrack_purge``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import router
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from django_eventtrack.conf import Config, get_config
from django_eventtrack.core.redaction import MASK
from django_eventtrack.models import FINAL_STATUSES, Delivery, Event
from django_eventtrack.outbox.group_commit import sender_write

#: Rows per DELETE statement of :func:`purge`.
PURGE_CHUNK_SIZE = 5000


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
    # Routed (its deliveries written: none is pending) and every delivery final.
    finished = Event.objects.filter(pk__in=ids, routes__isnull=True).exclude(
        deliveries__status=Delivery.Status.PENDING
    )
    changed = [
        event
        for event in finished.only("id", "properties", "vendor_extra", "scrubbed_at")
        if scrub(event, config)
    ]
    if changed:
        sender_write(
            router.db_for_write(Event),
            partial(
                Event.objects.bulk_update, changed, ["properties", "vendor_extra", "scrubbed_at"]
            ),
        )
    return len(changed)


def scrub(event: Event, config: Config) -> bool:
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


@dataclass(frozen=True)
class PurgeResult:
    """What :func:`purge` deleted (or, with ``dry_run``, would delete)."""

    cutoff: datetime
    dry_run: bool
    #: Deliveries per status (delivered, failed, skipped).
    deliveries: Mapping[str, int] = field(default_factory=dict)
    events: int = 0

    @property
    def deliveries_total(self) -> int:
        return sum(self.deliveries.values())


def purge(
    older_than: timedelta,
    dry_run: bool = False,
    *,
    now: datetime | None = None,
    chunk_size: int = PURGE_CHUNK_SIZE,
) -> PurgeResult:
    """Delete finished deliveries last touched before ``now - older_than``, then the
    events left without any delivery that are older than that too.

    A pending delivery is never deleted, and neither is its event. Deletes run
    ``chunk_size`` rows at a time, each chunk in its own short transaction, so
    purging a huge outbox never locks it for long and can be interrupted
    safely (running it again carries on).
    """
    cutoff = (now or timezone.now()) - older_than
    alias = router.db_for_write(Delivery)
    deliveries = {
        status.value: Delivery.objects.using(alias).filter(status=status, updated_at__lt=cutoff)
        for status in FINAL_STATUSES
    }
    # An event goes once nothing but purgeable deliveries refers to it.
    survivors = Delivery.objects.filter(event=OuterRef("pk")).exclude(
        status__in=FINAL_STATUSES, updated_at__lt=cutoff
    )
    events = (
        Event.objects.using(alias)
        # Routed (its deliveries exist), and not held back by the tracking plan.
        .filter(created_at__lt=cutoff, routes__isnull=True, quarantine__isnull=True)
        .filter(~Exists(survivors))
    )
    if dry_run:
        return PurgeResult(
            cutoff=cutoff,
            dry_run=True,
            deliveries={status: queryset.count() for status, queryset in deliveries.items()},
            events=events.count(),
        )
    return PurgeResult(
        cutoff=cutoff,
        dry_run=False,
        deliveries={
            status: _delete_in_chunks(queryset, chunk_size)
            for status, queryset in deliveries.items()
        },
        events=_delete_in_chunks(events, chunk_size),
    )


def _delete_in_chunks(queryset: QuerySet[Any], chunk_size: int) -> int:
    """Delete what ``queryset`` matches, ``chunk_size`` primary keys per statement.

    The conditions are applied again in each DELETE, so a row that changed in
    between (a delivery retried from the admin) is left alone.
    """
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:chunk_size])
        if not ids:
            return deleted
        # Django loads the events it deletes, to cascade; their primary key is all it needs.
        _, per_model = queryset.filter(pk__in=ids).only("pk").delete()
        deleted += per_model.get(queryset.model._meta.label, 0)


def erase(events: QuerySet[Event]) -> int:
    """Remove everything personal from ``events`` (an erasure): their properties,
    identity and ``vendor_extra``, and their quarantine (nothing left to replay); the
    rows stay, so counts by name and day still add up. How many."""
    return events.update(
        properties={},
        identity={},
        vendor_extra={},
        quarantine=None,
        scrubbed_at=timezone.now(),
    )
