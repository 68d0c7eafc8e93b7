"""A local stand-in for the four vendors' tracking APIs, for tests, demos and development.

The sandbox speaks each vendor's API as the project's vendor notes
(``docs/vendors/``) document it (auth, required fields, status codes and
bodies), keeps the state the vendors keep (Hellotext's profiles, sessions and
their owners, objects and custom actions; PrimeData's registered schemas),
records every request and can inject faults. It uses the standard library
only, so importing it never needs Django settings. Run it with
``python -m django_eventtrack.sandbox``.
"""

from __future__ import annotations

from django_eventtrack.sandbox.server import Fault, RecordedRequest, Sandbox
from django_eventtrack.sandbox.vendors import DEFAULT_CREDENTIALS, VENDORS

__all__ = ["DEFAULT_CREDENTIALS", "VENDORS", "Fault", "RecordedRequest", "Sandbox"]
