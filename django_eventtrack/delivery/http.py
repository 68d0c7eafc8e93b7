"""The one HTTP layer every vendor shares.

A pooled :class:`requests.Session` per vendor (kept per process: a forked
worker builds its own instead of sharing sockets with its parent), connect and
read timeouts from the vendor's settings, and a ``User-Agent`` naming this
package. Transport failures never escape as ``requests`` exceptions: they come
back as a retryable :class:`~django_eventtrack.vendors.base.Outcome`, with the
library's :class:`~django_eventtrack.errors.VendorAPIError` available for
callers that want an exception.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from django_eventtrack.conf import VendorConfig, get_config
from django_eventtrack.core.redaction import redact, truncate
from django_eventtrack.core.version import __version__
from django_eventtrack.errors import VendorAPIError
from django_eventtrack.vendors.base import (
    Outcome,
    OutcomeKind,
    VendorAdapter,
    VendorRequest,
    VendorResponse,
)

logger = logging.getLogger("django_eventtrack.http")

USER_AGENT = f"django-eventtrack/{__version__} (+https://pypi.org/project/django-eventtrack/)"
#: The fewest keep-alive connections kept per vendor (more when ``MAX_CONCURRENCY`` is higher).
POOL_SIZE = 16

_sessions: dict[str, requests.Session] = {}
#: How many connections each session in ``_sessions`` keeps alive.
_pool_sizes: dict[str, int] = {}
_sessions_pid = os.getpid()
_sessions_lock = threading.Lock()

#: While set, :func:`send` sends nothing and returns this callable's verdict on
#: each request instead (:func:`django_eventtrack.testing.block_http` sets it).
interceptor: Callable[[VendorRequest], Outcome] | None = None
#: The verdict on every request while ``EVENTTRACK["BLOCK_HTTP"]`` is on.
BLOCKED_BY_SETTING = 'not sent: HTTP requests are blocked by EVENTTRACK["BLOCK_HTTP"]'


@dataclass(frozen=True)
class Attempt:
    """One request sent (or not): the outcome, the answer if any, and how long it took."""

    outcome: Outcome
    response: VendorResponse | None
    elapsed: float

    def raise_for_outcome(self, vendor: str) -> None:
        """Raise :class:`VendorAPIError` unless the attempt delivered."""
        if not self.outcome.ok:
            raise VendorAPIError(
                f"{vendor}: {self.outcome.message or self.outcome.kind}",
                vendor=vendor,
                status=self.outcome.http_status,
                body=self.outcome.message,
            )


def session_for(vendor: str) -> requests.Session:
    """This process's pooled session for ``vendor``.

    Its pool keeps as many connections alive as the sender may have requests in
    flight to the vendor (``MAX_CONCURRENCY``): urllib3 opens a connection beyond
    the pool's size when asked, then closes it after one request, so a smaller
    pool would turn every request above it into a new TCP (and TLS) handshake.
    """
    global _sessions_pid
    size = max(POOL_SIZE, get_config().options.concurrency_range[1])
    with _sessions_lock:
        if _sessions_pid != os.getpid():
            # Forked: the parent's sockets are not ours to use.
            _sessions.clear()
            _pool_sizes.clear()
            _sessions_pid = os.getpid()
        session = _sessions.get(vendor)
        if session is None or _pool_sizes[vendor] < size:
            session = _sessions[vendor] = _new_session(size)
            _pool_sizes[vendor] = size
        return session


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    # Retries are the outbox's job; a silent urllib3 retry would double-send.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session


def close_sessions() -> None:
    """Close every pooled session (tests, shutdown)."""
    with _sessions_lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
        _pool_sizes.clear()


def send(adapter: VendorAdapter, request: VendorRequest) -> Attempt:
    """Send ``request`` and let ``adapter`` judge the answer; never raises for the network.

    While HTTP is blocked (tests) nothing leaves the process: the outcome is
    ``skipped`` with the reason, so the delivery says why it was not sent.
    """
    refusal = _refusal(request)
    if refusal is not None:
        return Attempt(refusal, None, 0.0)
    config: VendorConfig = adapter.config
    started = time.monotonic()
    try:
        session = session_for(request.vendor)
        raw = session.send(
            _prepared(session, request),
            timeout=(config.connect_timeout, config.read_timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        elapsed = time.monotonic() - started
        message = truncate(redact(f"{_transport_kind(exc)}: {exc}", config.secrets))
        logger.info(
            "vendor=%s events=%s transport error after %.3fs: %s",
            request.vendor,
            ",".join(request.event_ids),
            elapsed,
            message,
        )
        return Attempt(Outcome(OutcomeKind.RETRY, None, message), None, elapsed)
    elapsed = time.monotonic() - started
    response = VendorResponse(
        status=raw.status_code,
        headers={name.lower(): value for name, value in raw.headers.items()},
        body=raw.content,
    )
    outcome = adapter.classify(response)
    logger.debug(
        "vendor=%s events=%s status=%s outcome=%s in %.3fs",
        request.vendor,
        ",".join(request.event_ids),
        response.status,
        outcome.kind,
        elapsed,
    )
    return Attempt(outcome, response, elapsed)


#: Prepared method, URL and headers per vendor endpoint (a few per vendor).
_templates: dict[tuple[str, str, tuple[tuple[str, str], ...]], requests.PreparedRequest] = {}
MAX_TEMPLATES = 64


def _prepared(session: requests.Session, request: VendorRequest) -> requests.PreparedRequest:
    """``request`` ready for ``session.send``: what ``Session.request`` would build.

    ``Session.request`` parses the URL, merges the session's headers, settings
    and environment afresh for every request: a third of the CPU time one
    worker spent per request, although only the body changes between two
    requests to an endpoint (``python -m tests.benchmarks --only throughput
    --profile``). So the rest is prepared once per endpoint and copied; the
    session's cookies are still added per request, as ``Session.request`` does.
    """
    key = (request.method, request.url, tuple(request.headers.items()))
    template = _templates.get(key)
    if template is None:
        if len(_templates) >= MAX_TEMPLATES:
            _templates.clear()
        template = _templates[key] = requests.Request(
            request.method, request.url, headers={**session.headers, **request.headers}
        ).prepare()
    prepared = template.copy()
    prepared.prepare_body(request.body_bytes(), None)
    prepared.prepare_cookies(session.cookies)
    return prepared


def _refusal(request: VendorRequest) -> Outcome | None:
    hook = interceptor
    if hook is not None:
        return hook(request)
    if get_config().block_http:
        logger.warning(
            "vendor=%s events=%s: %s",
            request.vendor,
            ",".join(request.event_ids),
            BLOCKED_BY_SETTING,
        )
        return Outcome(OutcomeKind.SKIPPED, None, BLOCKED_BY_SETTING)
    return None


def _transport_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return "request error"
