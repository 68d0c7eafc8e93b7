"""Capturing events in ``unittest`` and Django ``TestCase`` classes."""

from __future__ import annotations

import unittest
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django_eventtrack.testing.capture import CapturedEvent, CapturedEvents, capture_events

# Typed as a TestCase for mypy, a plain mixin at run time (so test runners do not
# collect it and it combines with any TestCase class).
if TYPE_CHECKING:
    _Base = unittest.TestCase
else:
    _Base = object


class EventTrackTestMixin(_Base):
    """Capture tracked events during each test instead of sending them.

    ``class CheckoutTests(EventTrackTestMixin, TestCase)``: every test starts
    with an empty ``self.tracked_events``, HTTP to vendors is blocked, and
    ``assertTracked`` / ``assertNotTracked`` / ``assertIdentified`` check what
    was tracked. Works in a plain ``TestCase``: no ``captureOnCommitCallbacks``
    needed.
    """

    tracked_events: CapturedEvents

    def setUp(self) -> None:
        super().setUp()
        self.tracked_events = self.enterContext(capture_events())

    def assertTracked(  # unittest's naming
        self,
        name: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        count: int | None = None,
        **identity: Any,
    ) -> CapturedEvent:
        """See :meth:`CapturedEvents.assert_tracked`."""
        __tracebackhide__ = True
        return self.tracked_events.assert_tracked(
            name, properties=properties, vendor=vendor, count=count, **identity
        )

    def assertNotTracked(  # unittest's naming
        self,
        name: str | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        **identity: Any,
    ) -> None:
        """See :meth:`CapturedEvents.assert_not_tracked`."""
        __tracebackhide__ = True
        self.tracked_events.assert_not_tracked(
            name, properties=properties, vendor=vendor, **identity
        )

    def assertIdentified(  # unittest's naming
        self,
        *,
        traits: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        count: int | None = None,
        **identity: Any,
    ) -> CapturedEvent:
        """See :meth:`CapturedEvents.assert_identified`."""
        __tracebackhide__ = True
        return self.tracked_events.assert_identified(
            traits=traits, vendor=vendor, count=count, **identity
        )
