"""Events held back for breaking the tracking plan, and releasing them once it is fixed.

``PLAN_MODE = "quarantine"`` stores such an event with its violations and no routes
(:func:`~django_eventtrack.outbox.inserts.record`): no sender ever sees it, and
``eventtrack_purge`` keeps it. :func:`release` validates each one again against the
plan as it is now; one that passes gets its routes, in a conditional update that
only a still-quarantined row matches, so two replays racing route it once and it is
delivered once. One that still fails keeps its quarantine, with today's violations.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import router, transaction
from django.db.models import QuerySet

from django_eventtrack.conf import get_config
from django_eventtrack.core import subject_keys
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Event
from django_eventtrack.outbox import inserts, subjects
from django_eventtrack.outbox.routing import plan
from django_eventtrack.plan import CompiledPlan

logger = logging.getLogger("django_eventtrack.outbox")

#: Events validated per transaction.
BATCH = 200


def quarantined(event_ids: Sequence[uuid.UUID | str] | None = None) -> QuerySet[Event]:
    """The quarantined events (of ``event_ids``, if given), oldest first."""
    rows = Event.objects.filter(quarantine__isnull=False)
    if event_ids is not None:
        rows = rows.filter(pk__in=event_ids)
    return rows.order_by("created_at", "pk")


@dataclass
class Released:
    """What :func:`release` did: the ids it routed, how many still break the plan, and
    how many another replay released first (or that were not quarantined any more)."""

    routed: list[uuid.UUID] = field(default_factory=list)
    still_invalid: int = 0
    taken: int = 0


def release(event_ids: Sequence[uuid.UUID | str] | None = None) -> Released:
    """Validate the quarantined events again (all, or ``event_ids``) and route those that
    now follow the plan, each once. Raises :class:`ConfigurationError` without a plan."""
    compiled = get_config().plan
    if compiled is None:
        raise ConfigurationError(
            "no tracking plan is configured (EVENTTRACK['PLAN']): nothing to validate the "
            "quarantined events against"
        )
    result = Released()
    pks = list(quarantined(event_ids).values_list("pk", flat=True))
    for start in range(0, len(pks), BATCH):
        with transaction.atomic(using=router.db_for_write(Event)):
            for row in quarantined(pks[start : start + BATCH]):
                _release_one(row, compiled, result)
    return result


def _release_one(row: Event, compiled: CompiledPlan, result: Released) -> None:
    """Route ``row`` if it now follows the plan, as ``track()`` would now: without the
    purposes its person has withdrawn since (an erased person's events are no longer
    quarantined: :func:`~django_eventtrack.outbox.retention.erase`)."""
    event = row.to_normalised()
    asked = subjects.state(subject_keys.digests(event.identity.ids.items()))
    event = inserts.without(event, asked.withdrawn)
    found = compiled.violations(event.name, event.properties, identify=event.is_identify)
    still = Event.objects.filter(pk=row.pk, quarantine__isnull=False)
    if not found:
        try:
            targets = plan(event, (row.quarantine or {}).get("vendors"), require_vendor=False)
        except ConfigurationError as exc:  # a vendor asked for is gone from the settings
            logger.warning("event=%s stays quarantined: %s", row.pk, exc)
            result.still_invalid += 1
            return
        if still.update(quarantine=None, violations=None, routes=inserts.routes(targets)):
            result.routed.append(row.pk)
            logger.info("event=%s name=%s released from quarantine", row.pk, row.name)
        else:
            result.taken += 1
        return
    if still.update(violations=[violation.as_dict() for violation in found]):
        result.still_invalid += 1
    else:
        result.taken += 1
