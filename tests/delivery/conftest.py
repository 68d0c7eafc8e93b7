"""Every delivery test starts and ends with the circuit breaker closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_eventtrack.delivery import flow


@pytest.fixture(autouse=True)
def _closed_breaker() -> Iterator[None]:
    flow.breaker.reset()
    yield
    flow.breaker.reset()
