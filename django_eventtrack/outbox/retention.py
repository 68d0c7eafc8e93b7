"""Scrubbing personal data from events once every delivery is final."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from django.db import router
from django.utils import timezone

from django_eventtrack.conf import Config, get_config
from django_eventtrack.core.redaction import MASK
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox.group_commit import sender_write


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
