"""Helpers shared by the tests of the drain and its parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_django import Settings

from django_eventtrack.sandbox import Sandbox


def use_vendors(
    settings: Settings,
    sandbox: Sandbox,
    only: Sequence[str] = ("hackle",),
    vendor_options: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> None:
    """Send to the ``only`` vendors, at the sandbox, when a test drains (``worker``: nothing
    is sent on commit), retrying after hundredths of a second; ``vendor_options`` adds
    vendors' settings."""
    vendor_settings = sandbox.vendor_settings()
    for name, extra in (vendor_options or {}).items():
        vendor_settings[name].update(extra)
    settings.EVENTTRACK = {
        "VENDORS": {name: vendor_settings[name] for name in only},
        "DELIVERY": "worker",
        "RETRY_BACKOFF_BASE": 0.01,
        **options,
    }


def peak_in_flight(sandbox: Sandbox, vendor: str, delay: float) -> int:
    """The most requests the vendor had in flight at once, when each took ``delay`` seconds:
    the most that arrived within any ``delay``-long stretch."""
    arrivals = sorted(request.received_at for request in sandbox.requests(vendor))
    return max(sum(1 for other in arrivals if at - delay < other <= at) for at in arrivals)
