"""Keeping tests off the network: no vendor request leaves the process while blocked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django_eventtrack.delivery import http
from django_eventtrack.vendors.base import Outcome, OutcomeKind, VendorRequest

logger = logging.getLogger("django_eventtrack.testing")

#: The outcome's message on every request refused by :func:`block_http`.
BLOCKED = "not sent: HTTP requests are blocked by django_eventtrack.testing.block_http()"

_lock = threading.Lock()


@contextmanager
def block_http() -> Iterator[list[VendorRequest]]:
    """Refuse every vendor request in this process (any thread) until the block ends.

    Yields the list of requests that were attempted and refused, so a test can
    assert that its code tried to send nothing (``assert blocked == []``).
    Whatever tries to send (``send_event --sync``, a worker drain, the
    ``thread`` or ``sync`` backend) gets a ``skipped`` outcome with
    :data:`BLOCKED` as the reason instead of a response: the delivery says why it
    was not sent, it does not count as an attempt, and the circuit breaker is not
    tripped for later tests. Blocks nest; the previous state comes back on exit.
    ``EVENTTRACK["BLOCK_HTTP"] = True`` does the same for a whole test suite.
    """
    refused: list[VendorRequest] = []

    def refuse(request: VendorRequest) -> Outcome:
        logger.warning(
            "vendor=%s events=%s: %s", request.vendor, ",".join(request.event_ids), BLOCKED
        )
        with _lock:
            refused.append(request)
        return Outcome(OutcomeKind.SKIPPED, None, BLOCKED)

    with _lock:
        previous, http.interceptor = http.interceptor, refuse
    try:
        yield refused
    finally:
        with _lock:
            http.interceptor = previous
