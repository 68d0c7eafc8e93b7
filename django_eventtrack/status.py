"""What the outbox holds, and retention: the library behind ``eventtrack_status`` and
``eventtrack_purge`` (the commands only parse arguments and print).

Both work in a few set-based queries, so they stay quick on an outbox of
millions of rows: the status is one grouped query, and purging deletes in
chunks so no single DELETE holds locks for long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import router
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from django_eventtrack.models import Delivery, Event
from django_eventtrack.vendors import ADAPTERS

Status = Delivery.Status

#: Statuses that never change again by themselves: what retention removes.
FINAL_STATUSES = (Status.DELIVERED, Status.FAILED, Status.SKIPPED)
#: Rows per DELETE statement.
PURGE_CHUNK_SIZE = 5000


@dataclass(frozen=True)
class Counts:
    """One vendor's deliveries (or everyone's, for the totals)."""

    pending: int = 0
    #: Pending and due now: what a sender would pick up immediately.
    due: int = 0
    failed: int = 0
    skipped: int = 0
    delivered_last_hour: int = 0
    #: Seconds since the oldest pending delivery was created; ``None`` when none is pending.
    oldest_pending_seconds: float | None = None


@dataclass(frozen=True)
class Summary:
    """The outbox at ``at``: :class:`Counts` for every known vendor and in total."""

    at: datetime
    vendors: Mapping[str, Counts]

    @property
    def totals(self) -> Counts:
        ages = [c.oldest_pending_seconds for c in self.vendors.values()]
        known_ages = [age for age in ages if age is not None]
        return Counts(
            pending=sum(c.pending for c in self.vendors.values()),
            due=sum(c.due for c in self.vendors.values()),
            failed=sum(c.failed for c in self.vendors.values()),
            skipped=sum(c.skipped for c in self.vendors.values()),
            delivered_last_hour=sum(c.delivered_last_hour for c in self.vendors.values()),
            oldest_pending_seconds=max(known_ages) if known_ages else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"at": ISO-8601, "vendors": {name: counts}, "totals": counts}``."""
        return {
            "at": self.at.isoformat(),
            "vendors": {name: asdict(counts) for name, counts in self.vendors.items()},
            "totals": asdict(self.totals),
        }


def summary(now: datetime | None = None) -> Summary:
    """Counts per vendor, in one grouped query.

    Every vendor in the registry is listed (zeros when it has no rows), plus
    any other vendor name still found in the outbox. Delivered rows older than
    an hour are excluded before grouping, so the bulk of a large outbox is
    never aggregated.
    """
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    pending = Q(status=Status.PENDING)
    rows = (
        Delivery.objects.filter(~Q(status=Status.DELIVERED) | Q(delivered_at__gte=hour_ago))
        .order_by()
        .values("vendor")
        .annotate(
            pending=Count("pk", filter=pending),
            due=Count("pk", filter=pending & Q(next_attempt_at__lte=now)),
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            skipped=Count("pk", filter=Q(status=Status.SKIPPED)),
            delivered_last_hour=Count(
                "pk", filter=Q(status=Status.DELIVERED, delivered_at__gte=hour_ago)
            ),
            oldest_pending=Min("created_at", filter=pending),
        )
    )
    vendors = dict.fromkeys(ADAPTERS, Counts())
    for row in rows:
        oldest = row["oldest_pending"]
        vendors[row["vendor"]] = Counts(
            pending=row["pending"],
            due=row["due"],
            failed=row["failed"],
            skipped=row["skipped"],
            delivered_last_hour=row["delivered_last_hour"],
            oldest_pending_seconds=None if oldest is None else (now - oldest).total_seconds(),
        )
    return Summary(at=now, vendors=vendors)


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
    events = Event.objects.using(alias).filter(created_at__lt=cutoff).filter(~Exists(survivors))
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
