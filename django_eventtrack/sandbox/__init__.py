"""A local stand-in for the vendors' tracking APIs, for tests, demos and development.

The sandbox speaks each vendor's API as the project's vendor notes
(``docs/vendors/``) document it (auth, required fields, status codes and
bodies), keeps the state the vendors keep (profiles, sessions and their owners,
objects, custom actions, registered schemas), records every request and can
inject faults. It serves every vendor of the registry through the spec its
adapter names (``VendorAdapter.sandbox``): ``server`` is the HTTP side and names
no vendor, ``spec`` the types a vendor's module builds its spec from, and each
built-in vendor has a module of its own beside its adapter's name
(``sandbox/hellotext.py`` for ``vendors/hellotext.py``). Importing it never needs
Django settings. Run it with ``python -m django_eventtrack.sandbox``.
"""

from __future__ import annotations

from django_eventtrack.sandbox.server import Fault, RecordedRequest, Sandbox, registry_specs
from django_eventtrack.sandbox.spec import VendorSpec

__all__ = ["Fault", "RecordedRequest", "Sandbox", "VendorSpec", "registry_specs"]
