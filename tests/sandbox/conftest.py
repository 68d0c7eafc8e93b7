"""The sandbox's tests talk to it over HTTP with a requests session (``client``), through
``send`` (see :mod:`tests.sandbox.helpers`); ``sandbox`` is the shared one, emptied for
each test."""

from tests.sandbox.helpers import client, send  # noqa: F401  (fixtures)
