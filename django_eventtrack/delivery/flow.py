"""Per-vendor flow control: how many requests this process may have in flight to a
vendor (:class:`Window`), how many events go in one request to a vendor that takes
several (:class:`Batches`), and when it sends that vendor none (:class:`CircuitBreaker`).

They live as long as the process, so what a vendor's answers taught outlives one
drain; the sender asks them before each request and tells them each answer.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass

from django_eventtrack.conf import Config
from django_eventtrack.vendors import Outcome, OutcomeKind

logger = logging.getLogger("django_eventtrack.sender")

#: Answers whose ``Retry-After`` says when the whole vendor may be asked again: rate
#: limited (429) and unavailable (503), the two RFC 9110 gives the header to.
PAUSING_STATUSES = frozenset({429, 503})


#: How long a vendor that refused the credentials is paused before a request tries them
#: again (a probe). A process given other credentials (a fixed key) does not wait.
CREDENTIALS_PAUSE = 300.0


@dataclass(frozen=True)
class Pause:
    """A pause begun in this process, to be written to the database for the others."""

    seconds: float
    reason: str
    #: For refused credentials, their fingerprint: the pause holds for them only.
    credentials: str = ""


class CircuitBreaker:
    """Per process and vendor: after N retryable failures in a row, stop sending for a while.

    A vendor that is down would otherwise get every due delivery thrown at it each
    round; a pause lets it recover and keeps the sender free for the vendors that
    work. A delivered or permanently failed answer closes it, and so does an answer
    the vendor documents (:attr:`Outcome.expected`). Every request's answer is heard
    (:meth:`heard`), the extra ones an adapter sends included: a 429 or 503 with
    ``Retry-After`` pauses the vendor as long as it asks, refused credentials for
    :data:`CREDENTIALS_PAUSE` (for those credentials only). The drain writes each
    pause to the database (:meth:`take_unrecorded`), so every process stops too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        #: The fingerprint of the credentials a vendor's pause is for, if that is its cause.
        self._refused: dict[str, str] = {}
        #: Pauses not yet written to the database.
        self._unrecorded: dict[str, Pause] = {}

    def allows(self, vendor: str, credentials: str = "") -> bool:
        """Whether to send to ``vendor`` now, with the credentials whose fingerprint is
        ``credentials``: a pause for other (refused) credentials does not hold for them."""
        with self._lock:
            if time.monotonic() >= self._open_until.get(vendor, 0.0):
                return True
            refused = self._refused.get(vendor, "")
            return bool(refused and credentials and refused != credentials)

    def heard(self, vendor: str, outcome: Outcome, *, credentials: str = "") -> None:
        """One request's answer (made with ``credentials``, a fingerprint): pause the
        vendor when it asks to wait or refuses the credentials."""
        if outcome.credentials_refused:
            self.pause(vendor, CREDENTIALS_PAUSE, outcome.message, credentials=credentials)
        elif outcome.http_status in PAUSING_STATUSES and outcome.retry_after:
            self.pause(
                vendor,
                outcome.retry_after,
                f"HTTP {outcome.http_status}, Retry-After {outcome.retry_after:g}s",
            )

    def record(self, vendor: str, outcome: Outcome, *, threshold: int, pause: float) -> None:
        """One delivery attempt's verdict: count it towards opening the circuit. Refused
        credentials are not the vendor failing (:meth:`heard` paused it already)."""
        if outcome.credentials_refused:
            return
        with self._lock:
            if outcome.kind is not OutcomeKind.RETRY or outcome.expected:
                self._failures[vendor] = 0
                return
            failures = self._failures.get(vendor, 0) + 1
            self._failures[vendor] = failures
            if failures < threshold:
                return
            self._failures[vendor] = 0
        self.pause(vendor, pause, f"circuit breaker: {failures} retryable failures in a row")

    def pause(self, vendor: str, seconds: float, reason: str, *, credentials: str = "") -> None:
        """Send nothing to ``vendor`` for ``seconds`` (unless already paused for longer);
        with ``credentials``, nothing with those credentials."""
        with self._lock:
            until = time.monotonic() + seconds
            if until <= self._open_until.get(vendor, 0.0):
                return
            self._open_until[vendor] = until
            self._refused[vendor] = credentials
            self._unrecorded[vendor] = Pause(seconds, reason, credentials)
        logger.warning("vendor=%s: pausing it for %.0fs (%s)", vendor, seconds, reason)

    def take_unrecorded(self, vendor: str) -> Pause | None:
        """The pause begun since the last call, for the database; None when there is none."""
        with self._lock:
            return self._unrecorded.pop(vendor, None)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._open_until.clear()
            self._refused.clear()
            self._unrecorded.clear()


breaker = CircuitBreaker()


class Window:
    """How many requests this process may have in flight to one vendor at once.

    Additive increase, multiplicative decrease, as TCP does for packets: a fast
    answer to a request sent while the window was full widens it (doubling each
    round trip until the vendor first refuses, then one request per round trip); a
    retryable outcome halves it, once per round trip. So a vendor gets as many
    requests in flight as it takes without slowing down, with no setting to tune,
    between ``low`` and ``high`` (``MIN_CONCURRENCY``, ``MAX_CONCURRENCY``).
    """

    #: How much slower than twice the fastest answer an answer may be and still be fast.
    MARGIN = 0.005

    def __init__(self, start: int, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._limit = min(max(start, low), high)
        self._doubling = True
        #: Fast answers to a full window since the window last widened, once doubling ended.
        self._fast_answers = 0
        self._fastest: float | None = None
        self._cut_at = -math.inf
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Requests allowed in flight now."""
        return self._limit

    def answered(self, elapsed: float, *, full: bool) -> None:
        """The vendor answered (delivered or failed) after ``elapsed`` seconds a request
        sent when the window was ``full``."""
        with self._lock:
            if not self._fast(elapsed) or not full:
                return
            self._fast_answers += 1
            if self._doubling or self._fast_answers >= self._limit:  # a round trip's worth
                self._limit = min(self._limit + 1, self.high)
                self._fast_answers = 0

    def refused(self, sent_at: float) -> None:
        """A retryable outcome for a request sent at ``sent_at`` (``time.monotonic()``)."""
        with self._lock:
            self._doubling = False
            if sent_at < self._cut_at:
                return  # in flight when the window was last cut: that cut was for it too
            self._limit = max(self._limit // 2, self.low)
            self._fast_answers = 0
            self._cut_at = time.monotonic()

    def _fast(self, elapsed: float) -> bool:
        fastest = self._fastest
        if fastest is None or elapsed <= fastest:
            self._fastest = elapsed
            return True
        # The floor creeps towards what the vendor answers now, so one whose fastest
        # answers became slower for good is not held to its old best forever.
        self._fastest = fastest + (elapsed - fastest) / 256
        return elapsed <= 2 * fastest + self.MARGIN


class Batches:
    """How many events this process puts in one request to a vendor that takes several.

    A request that got no answer (a read timeout, a connection cut before the answer)
    may have been processed all the same, and is sent again: each of its events then
    reaches the vendor twice. So the size halves after such a request, once per round
    trip as the :class:`Window` is cut, and grows back by one event per delivered
    request, up to ``high`` (the vendor's ``EVENTS_PER_REQUEST``, at most what the
    vendor takes). A vendor that takes one event per request has nothing to adapt.
    """

    def __init__(self, high: int) -> None:
        self.high = max(high, 1)
        self._size = self.high
        self._cut_at = -math.inf
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Events in the next request."""
        return self._size

    def delivered(self) -> None:
        """A request was answered and delivered."""
        with self._lock:
            self._size = min(self._size + 1, self.high)

    def unanswered(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (``time.monotonic()``) got no answer."""
        with self._lock:
            if sent_at < self._cut_at:
                return  # in flight when the size was last cut: that cut was for it too
            self._size = max(self._size // 2, 1)
            self._cut_at = time.monotonic()


_windows: dict[str, Window] = {}
_batches: dict[str, Batches] = {}
#: The settings ``_windows`` and ``_batches`` were made for.
_learnt_for: Config | None = None
_learnt_lock = threading.Lock()


def _forget_if_changed(config: Config) -> None:
    """What was learnt under other settings is forgotten (caller holds the lock)."""
    global _learnt_for
    if _learnt_for is not config:
        _windows.clear()
        _batches.clear()
        _learnt_for = config


def window(vendor: str, config: Config) -> Window:
    """This process's :class:`Window` for ``vendor``: kept from one drain to the next,
    so what a vendor's answers taught outlives a round; made afresh when the
    settings change."""
    with _learnt_lock:
        _forget_if_changed(config)
        found = _windows.get(vendor)
        if found is None:
            low, high = config.options.concurrency_range
            found = _windows[vendor] = Window(config.options.concurrency, low, high)
        return found


def batches(vendor: str, config: Config, most: int) -> Batches:
    """This process's :class:`Batches` for ``vendor``, which takes at most ``most`` events
    per request: kept from one drain to the next, made afresh when the settings change."""
    with _learnt_lock:
        _forget_if_changed(config)
        found = _batches.get(vendor)
        if found is None:
            high = min(config.vendors[vendor].events_per_request, most)
            found = _batches[vendor] = Batches(high)
        return found


def _new_locks() -> None:
    """A forked child keeps what its parent's windows and batches learnt, but must not
    wait on a lock a parent's thread held at the fork."""
    global _learnt_lock
    _learnt_lock = threading.Lock()
    for found in _windows.values():
        found._lock = threading.Lock()
    for learnt in _batches.values():
        learnt._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks)
