"""The pytest plugin (registered as ``eventtrack`` through the ``pytest11`` entry point).

It only defines fixtures, and imports nothing that needs Django until one is
used, so installing the package never disturbs a test suite without Django or
without pytest-django. Disable it with ``-p no:eventtrack``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_eventtrack.testing.capture import CapturedEvents


@pytest.fixture
def tracked_events() -> Iterator[CapturedEvents]:
    """Events tracked during the test, captured instead of sent (HTTP is blocked).

    Needs database access like ``track()`` does (``@pytest.mark.django_db`` or
    the ``db`` fixture); works with and without ``transaction=True``.
    """
    from django_eventtrack.testing.capture import capture_events

    with capture_events() as events:
        yield events
