"""The vendors: one module per vendor, each an adapter that describes itself.

The registry is ``EVENTTRACK["ADAPTERS"]`` (resolved by :mod:`django_eventtrack.conf`,
``get_config().adapters``): the built-in vendors by the names below, any other by the
dotted path of its :class:`~django_eventtrack.vendors.base.VendorAdapter` subclass.
Nothing outside this package names a vendor; it asks the registry.
"""

from __future__ import annotations

from django_eventtrack.vendors.base import (
    Outcome,
    OutcomeKind,
    VendorAdapter,
    VendorRequest,
    VendorResponse,
)

#: The built-in vendors, by name (the default ``ADAPTERS``, in this order).
BUILT_IN: dict[str, str] = {
    "hellotext": "django_eventtrack.vendors.hellotext.HellotextAdapter",
    "hackle": "django_eventtrack.vendors.hackle.HackleAdapter",
    "browsee": "django_eventtrack.vendors.browsee.BrowseeAdapter",
    "primedata": "django_eventtrack.vendors.primedata.PrimeDataAdapter",
}

__all__ = [
    "BUILT_IN",
    "Outcome",
    "OutcomeKind",
    "VendorAdapter",
    "VendorRequest",
    "VendorResponse",
]
