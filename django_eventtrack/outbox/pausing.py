"""Vendors paused for every process: a 429's ``Retry-After``, a circuit opened, or refused
credentials.

A pause for refused credentials is kept with the fingerprint of the credentials the
vendor refused (never the credentials themselves): it holds only for the processes that
still send with them, so one restarted with a fixed key sends at once, and it lasts
until a request with credentials is accepted again (:func:`credentials_accepted`), not
only until its time is up: the sender then tries again (a probe), and the operator's
view keeps showing it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial

from django.db import IntegrityError, router, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from django_eventtrack.conf import VendorConfig
from django_eventtrack.models import VendorPause
from django_eventtrack.outbox.group_commit import sender_write

logger = logging.getLogger("django_eventtrack.outbox")

#: The most characters of a pause's reason kept (``VendorPause.reason``'s length).
MAX_REASON = 500


def fingerprint(config: VendorConfig) -> str:
    """A short keyed hash of ``config``'s credentials: equal for equal credentials, and
    nothing to learn them from (keyed with ``SECRET_KEY``)."""
    material = "\0".join(f"{key}={value}" for key, value in sorted(config.credentials.items()))
    keyed = salted_hmac("django_eventtrack.credentials", material, algorithm="sha256")
    return keyed.hexdigest()[:16]


def pause_vendor(vendor: str, seconds: float, reason: str, *, credentials: str = "") -> None:
    """Stop every process sending to ``vendor`` for ``seconds`` (a longer pause already
    recorded is kept). The sender checks it before each claim.

    With ``credentials`` (a :func:`fingerprint`) the vendor refused those credentials:
    that pause replaces any other, and the first process to record it logs an ERROR
    (the reason names the settings to fix), later ones a WARNING. A pause for other
    reasons waits while one for refused credentials is unresolved.
    """
    until = timezone.now() + timedelta(seconds=seconds)
    reason = reason[:MAX_REASON]
    write = partial(_extend_pause, vendor, until, reason, credentials)
    recorded = sender_write(router.db_for_write(VendorPause), write)
    if recorded == _FIRST:
        logger.error("vendor=%s: paused for every process until %s: %s", vendor, until, reason)
    elif recorded:
        logger.warning("vendor=%s: paused for every process until %s (%s)", vendor, until, reason)


#: What :func:`_extend_pause` returns when it began an incident of refused credentials.
_FIRST = 2


def _extend_pause(vendor: str, until: datetime, reason: str, credentials: str) -> int:
    """Record the pause: 0 when another was kept, 1 when written, :data:`_FIRST` when
    written for credentials no pause was for yet."""
    rows = VendorPause.objects.filter(vendor=vendor)
    values = {"paused_until": until, "reason": reason, "credentials": credentials}
    if credentials:
        first = not rows.filter(credentials=credentials).exists()
        stale = rows.filter(Q(paused_until__lt=until) | ~Q(credentials=credentials))
    else:
        first = False
        stale = rows.filter(credentials="", paused_until__lt=until)
    written = _FIRST if first else 1
    if stale.update(**values):
        return written
    if rows.exists():
        return 0
    try:
        with transaction.atomic(using=router.db_for_write(VendorPause)):
            VendorPause.objects.create(vendor=vendor, **values)
    except IntegrityError:  # another process paused it at the same instant
        return 0
    return written


def credentials_accepted(vendor: str) -> None:
    """A request to ``vendor`` was accepted: end its pause for refused credentials,
    whichever they were (a process still sending old ones gets refused and records it
    again), so every process sends to it and the operator's view clears."""
    rows = VendorPause.objects.filter(vendor=vendor).exclude(credentials="")
    if sender_write(router.db_for_write(VendorPause), lambda: rows.delete()[0]):
        logger.warning("vendor=%s: its credentials were accepted; sending resumed", vendor)


def paused_vendors() -> dict[str, VendorPause]:
    """The vendors paused right now, with until when and why (a 429's ``Retry-After``, a
    circuit breaker, in any process), and those whose credentials were refused and not
    accepted since (also between two tries)."""
    now = timezone.now()
    return {
        pause.vendor: pause
        for pause in VendorPause.objects.all()
        if pause.paused_until > now or pause.credentials
    }


def holding(vendors: Mapping[str, VendorConfig]) -> tuple[set[str], set[str]]:
    """For a sender with ``vendors`` (by name, with the credentials it sends): those
    nobody may send to now (paused, unless for other credentials than these), and those
    with refused credentials unresolved (whose next accepted request ends it). One query."""
    now = timezone.now()
    held, refused = set(), set()
    for pause in VendorPause.objects.filter(vendor__in=list(vendors)):
        if pause.credentials:
            refused.add(pause.vendor)
        ours = pause.credentials in ("", fingerprint(vendors[pause.vendor]))
        if pause.paused_until > now and ours:
            held.add(pause.vendor)
    return held, refused
