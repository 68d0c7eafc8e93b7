"""A test-only fifth vendor, Acme: one adapter module and one sandbox module, registered
in the test settings (``EVENTTRACK["ADAPTERS"]``). It touches no other file: everything
else (settings, identity, ``track()``'s keywords, ``send_event``, the snippet, the admin,
the sandbox, the "all vendors" tests) learns about it from the registry."""
