"""The plan against the outbox: which declared events are tracked, which tracked events
are not declared, and how often each breaks the plan.

One aggregate query over the events stored in the window (served by the index on
``created_at``); ``manage.py eventtrack_plan --coverage`` and the admin's plan page
read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from django_eventtrack.core.event import TRACK
from django_eventtrack.models import Event
from django_eventtrack.plan import TrackingPlan


@dataclass(frozen=True)
class EventCoverage:
    """One event name over the window: declared or not, how many were tracked, how many
    broke the plan and how many of those are quarantined, and the last one's time."""

    name: str
    declared: bool
    seen: int = 0
    violations: int = 0
    quarantined: int = 0
    last_seen: datetime | None = None


@dataclass(frozen=True)
class Coverage:
    """Every declared event (seen or not) and every undeclared one seen, in the window."""

    since: datetime
    events: tuple[EventCoverage, ...]

    @property
    def never_seen(self) -> list[str]:
        return [event.name for event in self.events if event.declared and not event.seen]

    @property
    def undeclared(self) -> list[str]:
        return [event.name for event in self.events if not event.declared]

    @property
    def violations(self) -> int:
        return sum(event.violations for event in self.events)


def coverage(plan: TrackingPlan, days: float = 7.0, *, now: datetime | None = None) -> Coverage:
    """The plan's events against the ``track()`` events stored in the last ``days``."""
    since = (now or timezone.now()) - timedelta(days=days)
    seen = {
        row["name"]: row
        for row in Event.objects.filter(kind=TRACK, created_at__gte=since)
        .order_by()
        .values("name")
        .annotate(
            seen=Count("pk"),
            violations=Count("pk", filter=Q(violations__isnull=False)),
            quarantined=Count("pk", filter=Q(quarantine__isnull=False)),
            last_seen=Max("created_at"),
        )
    }
    names = [*plan.events, *sorted(set(seen) - set(plan.events))]
    return Coverage(
        since=since,
        events=tuple(
            EventCoverage(
                name=name,
                declared=name in plan.events,
                seen=seen[name]["seen"] if name in seen else 0,
                violations=seen[name]["violations"] if name in seen else 0,
                quarantined=seen[name]["quarantined"] if name in seen else 0,
                last_seen=seen[name]["last_seen"] if name in seen else None,
            )
            for name in names
        ),
    )


def report(result: Coverage, days: float) -> str:
    """The coverage as text, for ``eventtrack_plan --coverage``."""
    lines = [f"Tracking plan coverage over the last {days:g} day(s):"]
    width = max((len(event.name) for event in result.events), default=10)
    lines.append(f"  {'event':<{width}}  {'tracked':>8}  {'broke plan':>10}  {'quarantined':>11}")
    for event in result.events:
        flag = "" if event.declared else "  (not declared)"
        lines.append(
            f"  {event.name:<{width}}  {event.seen:>8}  {event.violations:>10}  "
            f"{event.quarantined:>11}{flag}"
        )
    never = result.never_seen
    lines.append(
        f"Declared but never tracked: {', '.join(never)}"
        if never
        else "Every declared event was tracked."
    )
    undeclared = result.undeclared
    lines.append(
        f"Tracked but not declared: {', '.join(undeclared)}"
        if undeclared
        else "Nothing undeclared was tracked."
    )
    return "\n".join(lines) + "\n"
