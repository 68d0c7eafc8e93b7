"""A person withdrawing consent (``withdraw_consent()``), or granting it again.

In the caller's transaction: the purposes are kept as withdrawn under each of the
person's ids (hashed), so every later event carrying one of them is not sent to
the vendors serving those purposes; and whatever was still to be sent to those
vendors about the person is skipped ("consent withdrawn for ...").
"""

from __future__ import annotations

from collections.abc import Collection

from django_eventtrack.conf import get_config
from django_eventtrack.outbox import subjects
from django_eventtrack.outbox.subjects import Ids


def withdraw(ids: Ids, purposes: Collection[str]) -> int:
    """Withdraw consent for ``purposes`` for the person with ``ids``; how many waiting
    deliveries were skipped."""
    subjects.mark(ids, withdraw=purposes)
    vendors = subjects.vendors_serving(purposes, get_config())
    if not vendors:
        return 0
    return subjects.settle_pending(ids, vendors, subjects.withdrawn_reason(sorted(purposes)))


def grant(ids: Ids, purposes: Collection[str]) -> None:
    """Lift a withdrawal of ``purposes`` for the person with ``ids``: their later events
    follow the consent they carry again. What was skipped stays skipped."""
    subjects.mark(ids, grant=purposes)
