"""Each vendor's incidents: a run of failures for one reason, opened by the first,
counted and given the vendor's latest answer by the next ones, and resolved when the
vendor accepts a delivery again (:class:`~django_eventtrack.models.Incident`).

Written in the transaction that records the outcomes, so an incident counts exactly
the failures the outbox recorded. A delivered answer resolves a vendor's incidents
with one ``UPDATE``, which this process skips while it knows none is open: on the
path every delivery takes, the incidents cost nothing while nothing fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F

from django_eventtrack.models import REASON_MAX_LENGTH, Incident
from django_eventtrack.vendors import Outcome, OutcomeKind

#: Per vendor, whether an incident may be open (unknown at start: maybe). Set when this
#: process records a failure, cleared when it resolves the vendor's incidents.
_may_be_open: dict[str, bool] = {}


@dataclass(frozen=True)
class Answer:
    """One request's outcome for ``deliveries`` deliveries to ``vendor``."""

    vendor: str
    outcome: Outcome
    deliveries: int


def reason_of(outcome: Outcome) -> str:
    """What groups failures into one incident: ``HTTP 503``, or the transport's words
    before the colon (``read timeout``, ``connection error``)."""
    if outcome.http_status is not None:
        return f"HTTP {outcome.http_status}"
    words = (outcome.message or "").split(":", 1)[0].strip()
    return words[:REASON_MAX_LENGTH] or "error"


def record(answers: Iterable[Answer], now: datetime) -> None:
    """Count each failed answer in its vendor's open incident for its reason (opening
    one if none is), and resolve the incidents of the vendors that accepted a delivery.

    Two processes opening the same incident at once: the unique constraint keeps one,
    and the other's first count is lost, never the write around it.
    """
    delivered: set[str] = set()
    failed: dict[tuple[str, str], tuple[Outcome, int]] = {}
    for answer in answers:
        kind = answer.outcome.kind
        if kind is OutcomeKind.DELIVERED:
            delivered.add(answer.vendor)
        elif kind is not OutcomeKind.SKIPPED:  # retried, failed, or whatever else went wrong
            key = (answer.vendor, reason_of(answer.outcome))
            counted = failed.get(key, (answer.outcome, 0))[1]
            failed[key] = (answer.outcome, counted + answer.deliveries)
    for vendor in delivered - {vendor for vendor, _ in failed}:
        _resolve(vendor, now)
    for (vendor, reason), (outcome, count) in failed.items():
        _count(vendor, reason, outcome, count, now)


def _resolve(vendor: str, now: datetime) -> None:
    if not _may_be_open.get(vendor, True):
        return
    Incident.objects.filter(vendor=vendor, resolved_at__isnull=True).update(resolved_at=now)
    _may_be_open[vendor] = False


def _count(vendor: str, reason: str, outcome: Outcome, count: int, now: datetime) -> None:
    _may_be_open[vendor] = True
    latest = {
        "http_status": outcome.http_status,
        "message": outcome.message,
        "retrying": outcome.kind is OutcomeKind.RETRY,
        "last_seen": now,
    }
    open_one = Incident.objects.filter(vendor=vendor, reason=reason, resolved_at__isnull=True)
    if open_one.update(count=F("count") + count, **latest):
        return
    Incident.objects.bulk_create(
        [Incident(vendor=vendor, reason=reason, count=count, first_seen=now, **latest)],
        ignore_conflicts=True,
    )


def forget_known_state() -> None:
    """Ask the database again whether incidents are open (after tests change it)."""
    _may_be_open.clear()
