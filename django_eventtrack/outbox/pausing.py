"""Vendors paused for every process (a 429's ``Retry-After``, a circuit opened)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from django_eventtrack.models import VendorPause
from django_eventtrack.outbox.group_commit import sender_write

logger = logging.getLogger("django_eventtrack.outbox")


def pause_vendor(vendor: str, seconds: float, reason: str) -> None:
    """Stop every process sending to ``vendor`` for ``seconds`` (a longer pause already
    recorded is kept). The sender checks it before each claim."""
    until = timezone.now() + timedelta(seconds=seconds)
    reason = reason[:255]  # VendorPause.reason's max_length
    sender_write(router.db_for_write(VendorPause), partial(_extend_pause, vendor, until, reason))
    logger.warning("vendor=%s: paused for every process until %s (%s)", vendor, until, reason)


def _extend_pause(vendor: str, until: datetime, reason: str) -> int:
    extended = VendorPause.objects.filter(vendor=vendor, paused_until__lt=until).update(
        paused_until=until, reason=reason
    )
    if extended or VendorPause.objects.filter(vendor=vendor).exists():
        return extended
    try:
        with transaction.atomic(using=router.db_for_write(VendorPause)):
            VendorPause.objects.create(vendor=vendor, paused_until=until, reason=reason)
    except IntegrityError:  # another process paused it at the same instant
        return 0
    return 1


def paused_vendors() -> dict[str, VendorPause]:
    """The vendors paused right now (by a 429's ``Retry-After`` or a circuit breaker,
    in any process), with until when and why."""
    return {
        pause.vendor: pause for pause in VendorPause.objects.filter(paused_until__gt=timezone.now())
    }
