"""The vendor registry: one module per vendor, listed here and nowhere else."""

from __future__ import annotations

from django_eventtrack.vendors.base import (
    Outcome,
    OutcomeKind,
    VendorAdapter,
    VendorRequest,
    VendorResponse,
)
from django_eventtrack.vendors.browsee import BrowseeAdapter
from django_eventtrack.vendors.hackle import HackleAdapter
from django_eventtrack.vendors.hellotext import HellotextAdapter
from django_eventtrack.vendors.primedata import PrimeDataAdapter

ADAPTERS: dict[str, type[VendorAdapter]] = {
    adapter.name: adapter
    for adapter in (HellotextAdapter, HackleAdapter, BrowseeAdapter, PrimeDataAdapter)
}

__all__ = [
    "ADAPTERS",
    "Outcome",
    "OutcomeKind",
    "VendorAdapter",
    "VendorRequest",
    "VendorResponse",
]
