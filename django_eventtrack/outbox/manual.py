"""What an operator does by hand (the admin's actions and its "retry the failed deliveries
of this vendor since ..."): make deliveries due again, or stop trying them.

These writes go around the senders' claims, so each leaves alone what a sender holds at
that moment, and the sender records its real outcome. Waking the delivery backend for
what became due is the caller's (on commit), as it is for ``track()``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from django_eventtrack.models import Delivery
from django_eventtrack.outbox import retention, routing, subjects


@dataclass(frozen=True)
class Retried:
    """What :func:`retry_deliveries` did."""

    due: int
    #: Left alone: a sender holds them right now.
    busy: int
    #: Left alone: their event's properties were scrubbed after sending.
    scrubbed: int
    #: Left alone: skipped for the person's privacy (no consent, withdrawn, erased).
    private: int = 0
    #: The events of the deliveries made due: the delivery backend's to hear of.
    event_ids: tuple[uuid.UUID, ...] = ()


def retry_deliveries(deliveries: QuerySet[Delivery]) -> Retried:
    """Make ``deliveries`` pending and due now, whatever their status; attempts are kept.

    A delivery a sender holds at this moment is left to finish, so it is never
    sent twice at once, one whose event was scrubbed is not resent (it would
    send less), and one skipped for the person's privacy (no consent for the
    vendor's purpose, consent withdrawn, erased) stays skipped: a retry follows
    the decision taken when it was tracked. Everything is counted before the
    update: ``deliveries`` may be filtered on what the update changes (a list
    filtered to failed ones).
    """
    now = timezone.now()
    scrubbed = Q(event__scrubbed_at__isnull=False)
    private = _skipped_for_privacy() & ~scrubbed
    left_alone = deliveries.aggregate(
        busy=Count("pk", filter=Q(claimed_until__gt=now) & ~scrubbed & ~private),
        scrubbed=Count("pk", filter=scrubbed),
        private=Count("pk", filter=private),
    )
    idle = deliveries.exclude(claimed_until__gt=now).exclude(scrubbed).exclude(private)
    event_ids = tuple(set(idle.values_list("event_id", flat=True)))
    due = idle.update(
        status=Delivery.Status.PENDING,
        next_attempt_at=now,
        claim_token=None,
        claimed_until=None,
        updated_at=now,
    )
    return Retried(
        due=due,
        busy=left_alone["busy"],
        scrubbed=left_alone["scrubbed"],
        private=left_alone["private"],
        event_ids=event_ids,
    )


def _skipped_for_privacy() -> Q:
    """Deliveries skipped because the person did not consent, withdrew or was erased."""
    reasons = (
        Q(last_error=routing.OPTED_OUT)
        | Q(last_error__startswith=routing.no_consent([]))
        | Q(last_error__startswith=subjects.withdrawn_reason([]))
        | Q(last_error=subjects.ERASED)
    )
    return Q(status=Delivery.Status.SKIPPED) & reasons


def failed_since(vendor: str, since: datetime) -> QuerySet[Delivery]:
    """``vendor``'s deliveries that failed at or after ``since``: what the dashboard's
    confirmation counts and its retry then makes due, the same rows."""
    failed = Delivery.Status.FAILED
    return Delivery.objects.filter(vendor=vendor, status=failed, updated_at__gte=since)


@dataclass(frozen=True)
class Skipped:
    """What :func:`mark_skipped` did."""

    skipped: int
    #: Left alone: already delivered.
    delivered: int


def mark_skipped(deliveries: QuerySet[Delivery], reason: str) -> Skipped:
    """Stop trying ``deliveries``, recording ``reason``; then scrub their events if that
    made every delivery final (``SCRUB_DELIVERED`` / ``REDACT_KEYS``).

    Delivered rows keep their status, and a send in flight still records its real
    outcome (its claim is left as it is).
    """
    event_ids = set(deliveries.values_list("event_id", flat=True))
    delivered = deliveries.filter(status=Delivery.Status.DELIVERED).count()  # before the update
    skipped = deliveries.exclude(status=Delivery.Status.DELIVERED).update(
        status=Delivery.Status.SKIPPED, last_error=reason, updated_at=timezone.now()
    )
    retention.scrub_finished(event_ids)  # skipped by hand is final too
    return Skipped(skipped=skipped, delivered=delivered)
