"""A local stand-in for the vendors' tracking APIs, for tests, demos and development.

The sandbox speaks each vendor's API as the project's vendor notes
(``docs/vendors/``) document it (auth, required fields, status codes and
bodies), keeps the state the vendors keep (profiles, sessions and their owners,
objects, custom actions, registered schemas), records every request and can
inject faults. It serves every vendor of the registry through the spec its
adapter names (``VendorAdapter.sandbox``); importing it never needs Django
settings. Run it with ``python -m django_eventtrack.sandbox``.
"""

from __future__ import annotations

from django_eventtrack.sandbox.server import Fault, RecordedRequest, Sandbox, registry_specs
from django_eventtrack.sandbox.vendors import VendorSpec

__all__ = ["Fault", "RecordedRequest", "Sandbox", "VendorSpec", "registry_specs"]
