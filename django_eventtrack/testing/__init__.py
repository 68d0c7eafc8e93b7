"""Test helpers for projects that use django-eventtrack.

Capture tracked events in memory instead of sending them and assert on them,
the way ``django.core.mail.outbox`` works for email::

    from django_eventtrack.testing import capture_events

    with capture_events() as events:
        client.post("/checkout/")
    events.assert_tracked("order.placed", properties={"amount": 89.9}, vendor="hackle")

Also: the ``tracked_events`` pytest fixture, :class:`EventTrackTestMixin` for
``TestCase`` classes, the ``capture`` delivery backend, and :func:`block_http`.
Importing this package needs no configured Django (the pytest plugin loads it early).
"""

from __future__ import annotations

from django_eventtrack.testing.blocking import BLOCKED, block_http
from django_eventtrack.testing.capture import (
    CAPTURED,
    CaptureBackend,
    CapturedEvent,
    CapturedEvents,
    assert_identified,
    assert_not_tracked,
    assert_tracked,
    capture_events,
    captured,
)
from django_eventtrack.testing.mixins import EventTrackTestMixin
from django_eventtrack.testing.plan_coverage import PlanCoverage, assert_follows_plan

__all__ = [
    "BLOCKED",
    "CAPTURED",
    "CaptureBackend",
    "CapturedEvent",
    "CapturedEvents",
    "EventTrackTestMixin",
    "PlanCoverage",
    "assert_follows_plan",
    "assert_identified",
    "assert_not_tracked",
    "assert_tracked",
    "block_http",
    "capture_events",
    "captured",
]
