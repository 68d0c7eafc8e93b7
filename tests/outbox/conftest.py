"""What the outbox tests share: vendors configured but nothing sent on commit, and a claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pytest_django import Settings

from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox


@pytest.fixture
def worker_mode(settings: Settings, vendors: Sandbox) -> Sandbox:
    """Vendors configured, but nothing sent on commit: tests drive the outbox by hand."""
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    return vendors


def _claim(vendor: str = "hackle", lease: float = 60) -> leases.Claim:
    return leases.claim_due_deliveries(vendor, 10, timedelta(seconds=lease))
