"""Event names vendors were seen to drop, kept for every process.

An adapter that learns from an answer that the vendor drops every event of a name
(:class:`~django_eventtrack.vendors.base.NameDropped`) has it kept here; the sender
reads the names back for each claim and skips later events of those names with the
reason, instead of sending them to be dropped. Kept for :data:`REMEMBERED_FOR`: then
the vendor is asked again, so a schema registered since is found without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import partial

from django.db import router
from django.utils import timezone

from django_eventtrack.models import VendorDroppedName
from django_eventtrack.outbox.group_commit import sender_write
from django_eventtrack.vendors.base import Learned, NameDropped

logger = logging.getLogger("django_eventtrack.outbox")

#: How long a dropped name is believed before the vendor is asked again.
REMEMBERED_FOR = timedelta(days=1)


def learn(vendor: str, learned: Iterable[Learned]) -> None:
    """Keep every :class:`NameDropped` among ``learned`` (other facts are not ours)."""
    for fact in learned:
        if isinstance(fact, NameDropped):
            remember(vendor, fact.name, fact.reason)


def remember(vendor: str, name: str, reason: str) -> None:
    """``vendor`` drops events named ``name``, for ``reason``: from now on, for every process."""
    sender_write(router.db_for_write(VendorDroppedName), partial(_keep, vendor, name, reason))
    logger.warning(
        "vendor=%s: drops events named %r; later ones are skipped for %s (%s)",
        vendor,
        name,
        REMEMBERED_FOR,
        reason,
    )


def _keep(vendor: str, name: str, reason: str) -> int:
    VendorDroppedName.objects.update_or_create(
        vendor=vendor, name=name, defaults={"reason": reason, "learned_at": timezone.now()}
    )
    return 1


def known(vendors: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per vendor of ``vendors``, the names it is believed to drop, with the reason."""
    found: dict[str, dict[str, str]] = {}
    rows = VendorDroppedName.objects.filter(
        vendor__in=vendors, learned_at__gt=timezone.now() - REMEMBERED_FOR
    ).values_list("vendor", "name", "reason")
    for vendor, name, reason in rows:
        found.setdefault(vendor, {})[name] = reason
    return found
