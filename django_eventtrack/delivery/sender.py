"""Draining the outbox: claim due deliveries, send them, record what happened.

Every delivery backend ends up here (``sync`` for one event, ``thread``, the
worker command, Celery and Tasks for everything due), so retries, batching,
concurrency and the circuit breaker behave the same whichever one runs.

One drain serves all its vendors from the thread that calls it, and does the
database work for all of them at once: one claim transaction for every vendor
that needs more deliveries, one transaction for the outcomes of every request
that finished meanwhile, each event's row read once for all its vendors. The
requests themselves go out from each vendor's own request threads, as many at
a time as the vendor's :class:`Window` allows, which adapts to its answers; so
a slow vendor never holds up the others, and a fast one is not held to a fixed
number of requests per round trip. PrimeData deliveries go out up to 500 to a
request; the other vendors take one event per request.

The request threads are the sender's own (:class:`RequestThreads`), not a
``concurrent.futures.ThreadPoolExecutor``: the executor refuses new work as soon
as the main thread has finished, before ``atexit`` handlers run, and that is
exactly when the ``thread`` backend sends what a script or command committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import queue
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from django.db import close_old_connections, connections
from django.utils import timezone

from django_eventtrack.conf import Config, DeliveryOptions, get_config
from django_eventtrack.core.event import IDENTIFY, TrackedEvent
from django_eventtrack.delivery import http
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import dropped_names, leases, outcomes, pausing, vendor_profiles
from django_eventtrack.vendors import Outcome, OutcomeKind, VendorAdapter
from django_eventtrack.vendors.base import request_batches

logger = logging.getLogger("django_eventtrack.sender")

T = TypeVar("T")


@dataclass
class DrainStats:
    """What one drain did, per outcome kind (counted in deliveries, not requests)."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    #: Not sent at all, with a reason (HTTP blocked in tests).
    skipped: int = 0
    requests: int = 0
    paused_vendors: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, outcome: Outcome, deliveries: int, *, sent: bool = True, requests: int = 1
    ) -> None:
        """Count ``deliveries`` under ``outcome``, sent in ``requests`` requests
        (none when ``sent=False``, nor for a skip: nothing went out)."""
        with self._lock:
            if outcome.kind is OutcomeKind.SKIPPED:
                self.skipped += deliveries
                return
            if sent:
                self.requests += requests
            if outcome.ok:
                self.delivered += deliveries
            elif outcome.kind is OutcomeKind.RETRY:
                self.retried += deliveries
            else:
                self.failed += deliveries

    def merge(self, other: DrainStats) -> None:
        """Add ``other``'s counts to these (a worker's running totals)."""
        with self._lock:
            self.delivered += other.delivered
            self.retried += other.retried
            self.failed += other.failed
            self.skipped += other.skipped
            self.requests += other.requests
            self.paused_vendors |= other.paused_vendors

    @property
    def sent(self) -> int:
        return self.delivered + self.retried + self.failed


class CircuitBreaker:
    """Per process and vendor: after N retryable failures in a row, stop sending for a while.

    A vendor that is down would otherwise get every due delivery thrown at it
    each round; pausing lets it recover and keeps our workers free for the
    vendors that work. Any delivered or permanently failed answer closes it.
    A 429 with ``Retry-After`` pauses the vendor as long as it asks.

    The pause takes effect here at once (the request threads ask before each
    request); the drain then writes it to the database
    (:func:`pausing.pause_vendor`), so every other process stops too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        #: Pauses not yet written to the database: vendor -> (seconds, reason).
        self._unrecorded: dict[str, tuple[float, str]] = {}

    def allows(self, vendor: str) -> bool:
        with self._lock:
            return time.monotonic() >= self._open_until.get(vendor, 0.0)

    def record(self, vendor: str, outcome: Outcome, *, threshold: int, pause: float) -> None:
        if outcome.http_status == 429 and outcome.retry_after:
            self.pause(
                vendor, outcome.retry_after, f"HTTP 429, Retry-After {outcome.retry_after:g}s"
            )
        with self._lock:
            if outcome.kind is not OutcomeKind.RETRY:
                self._failures[vendor] = 0
                return
            failures = self._failures.get(vendor, 0) + 1
            self._failures[vendor] = failures
            if failures < threshold:
                return
            self._failures[vendor] = 0
        self.pause(vendor, pause, f"circuit breaker: {failures} retryable failures in a row")

    def pause(self, vendor: str, seconds: float, reason: str) -> None:
        """Send nothing to ``vendor`` for ``seconds`` (unless already paused for longer)."""
        with self._lock:
            until = time.monotonic() + seconds
            if until <= self._open_until.get(vendor, 0.0):
                return
            self._open_until[vendor] = until
            self._unrecorded[vendor] = (seconds, reason)
        logger.warning("vendor=%s: pausing it for %.0fs (%s)", vendor, seconds, reason)

    def take_unrecorded(self, vendor: str) -> tuple[float, str] | None:
        """The pause begun since the last call, for the database; None when there is none."""
        with self._lock:
            return self._unrecorded.pop(vendor, None)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._open_until.clear()
            self._unrecorded.clear()


breaker = CircuitBreaker()


class Window:
    """How many requests this process may have in flight to one vendor at once.

    Additive increase, multiplicative decrease, as TCP does for packets. An
    answer that comes back fast (within twice the fastest answer seen, plus
    :attr:`MARGIN`) to a request sent while the window was full widens the
    window: by one request at first, which doubles it every round trip until
    the vendor first refuses, then by one request per round trip. A refusal (a
    retryable outcome: 429, 5xx, a timeout, a connection error) halves it, once
    per round trip however many requests in flight come back refused. It stays
    between ``low`` and ``high`` (``MIN_CONCURRENCY``, ``MAX_CONCURRENCY``); a
    ``Retry-After`` pauses the vendor on top of that (:class:`CircuitBreaker`).

    So a vendor answering in 100 ms gets as many requests in flight as it takes
    without slowing down, with no setting to tune, while one that queues our
    requests (its answers slow down as we send more) is not pushed further.
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


_windows: dict[str, Window] = {}
#: The settings ``_windows`` were made for.
_windows_config: Config | None = None
_windows_lock = threading.Lock()


def window(vendor: str, config: Config) -> Window:
    """This process's :class:`Window` for ``vendor``: kept from one drain to the next,
    so what a vendor's answers taught outlives a round; made afresh when the
    settings change."""
    global _windows_config
    with _windows_lock:
        if _windows_config is not config:
            _windows.clear()
            _windows_config = config
        found = _windows.get(vendor)
        if found is None:
            low, high = config.options.concurrency_range
            found = _windows[vendor] = Window(config.options.concurrency, low, high)
        return found


class Bell:
    """What a waiting drain wakes up for: a request finished, or (``fresh``) new
    events were committed, which the ``thread`` backend rings on every commit.

    A commit wakes the drain only when it waits for nothing sooner: one busy with
    requests in flight, or waiting for its next turn at the database or for its share
    of the process's time, sees the commit when it wakes anyway. Waking a thread for
    every commit of a busy server cost its pages more than the sending itself.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._rung = False
        self._fresh = False
        self._commits_wake = True

    def ring(self, *, fresh: bool = False) -> None:
        with self._changed:
            self._fresh = self._fresh or fresh
            if fresh and not self._commits_wake:
                return
            self._rung = True
            self._changed.notify_all()

    def wait(
        self, timeout: float | None, *, fresh_only: bool = False, commits_wake: bool = True
    ) -> bool:
        """Wait until rung (with ``fresh_only``, by a commit; a commit wakes only with
        ``commits_wake``), at most ``timeout`` seconds; whether events were committed
        since the last wait. Resets the bell."""
        with self._changed:
            self._commits_wake = commits_wake
            if commits_wake and self._fresh:
                self._rung = True
            self._changed.wait_for(lambda: self._fresh if fresh_only else self._rung, timeout)
            fresh = self._fresh
            self._rung = self._fresh = False
            self._commits_wake = True
            return fresh


class Share:
    """How much of a process's time its sender may take while the process is busy
    serving requests.

    The ``thread`` backend sends from the web process itself, where every request
    thread and the sender's threads take turns on one interpreter lock: what the
    sender spends (a request costs a few hundred microseconds of CPU in ``requests``
    and its claims and outcomes a share of the database work) the pages lose. So
    while the process is busy (a request is being served, :meth:`request_started`
    and :meth:`request_finished`, and the process's other threads keep the CPU at
    least :attr:`BUSY` busy: a server holding idle long requests open is not), the
    sender may use ``fraction`` of the time and waits when it has used more
    (:meth:`delay`); deliveries then lag, and catch up at full speed as soon as the
    requests leave time. The plain :class:`Share` (a worker, ``send_event``, the
    sync backend) never makes anyone wait.
    """

    #: Seconds the sender may spend ahead of its share before it waits.
    BURST = 0.005
    #: The CPU the process's other threads must use (1: one CPU's worth) to count as busy...
    BUSY = 0.25
    #: ...averaged over about this many seconds.
    SMOOTHING = 0.5
    #: Seconds after a request ends that the process still counts as serving: a sync
    #: server's worker spends the gap between two requests (the answer written, the next
    #: one accepted and read) outside Django's request signals.
    LINGER = 0.02

    def __init__(self, fraction: float | Callable[[], float] = 1.0) -> None:
        #: The share, or a callable read each time (the ``thread`` backend's follows
        #: ``SENDER_SHARE`` as the settings change).
        self._fraction = fraction
        self._lock = threading.Lock()
        self._serving = 0
        self._served_at = -math.inf
        self._owed = 0.0
        self._settled_at = time.monotonic()
        self._cpu_at = time.process_time()
        #: The sender's own CPU since the last settling (not the others' load).
        self._own_cpu = 0.0
        #: The CPU the process's other threads use, averaged.
        self._load = 0.0

    @property
    def fraction(self) -> float:
        return self._fraction() if callable(self._fraction) else self._fraction

    def request_started(self, **kwargs: Any) -> None:
        with self._lock:
            self._settle()
            self._serving += 1

    def request_finished(self, **kwargs: Any) -> None:
        with self._lock:
            self._settle()
            self._serving = max(self._serving - 1, 0)
            self._served_at = time.monotonic()

    def charge(self, seconds: float, *, cpu: bool = True) -> None:
        """The sender spent ``seconds``: of its own CPU, or (``cpu=False``) by the clock,
        waiting for a database that works for it."""
        if self.fraction >= 1:
            return
        with self._lock:
            self._settle()
            self._owed += seconds
            self._own_cpu += seconds if cpu else 0.0

    def delay(self) -> float:
        """How long the sender should wait before it spends more (0: go on)."""
        if self.fraction >= 1:
            return 0.0
        with self._lock:
            self._settle()
            return self._owed / self.fraction if self._busy() and self._owed > 0 else 0.0

    def _busy(self) -> bool:
        serving = self._serving or time.monotonic() - self._served_at < self.LINGER
        return bool(serving) and self._load >= self.BUSY

    def _settle(self) -> None:
        """Time passing pays back what the sender spent: all of it while the process is
        not busy, ``fraction`` of it while it is."""
        now, cpu = time.monotonic(), time.process_time()
        elapsed = now - self._settled_at
        if elapsed > 0:
            others = max(cpu - self._cpu_at - self._own_cpu, 0.0) / elapsed
            self._load += (others - self._load) * min(elapsed / self.SMOOTHING, 1.0)
        earned = elapsed * (self.fraction if self._busy() else 1.0)
        self._owed = max(self._owed - earned, -self.BURST)
        self._settled_at, self._cpu_at, self._own_cpu = now, cpu, 0.0


def drain(
    vendors: Iterable[str] | None = None,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
    stop: threading.Event | None = None,
    stats: DrainStats | None = None,
    bell: Bell | None = None,
    share: Share | None = None,
) -> DrainStats:
    """Send everything due (for ``event_ids`` only, if given) until nothing is left.

    Returns when no vendor has anything due or in flight, or soon after ``stop``
    is set (in-flight requests finish; claimed but unsent rows are released).
    Rung ``fresh``, ``bell`` makes it look again for vendors it found nothing due
    for, so events committed meanwhile go out in this drain; ``share`` bounds the
    time it takes from a process serving requests. Counts go into
    ``stats`` (a new one by default) as each outcome is recorded, so a caller
    that passes its own keeps what was done before an error interrupted the drain.
    """
    config = get_config()
    wanted = config.active_vendors if vendors is None else vendors
    names = [name for name in wanted if name in config.active_vendors]
    stats = DrainStats() if stats is None else stats
    if names:
        pace = _Pace(bell or Bell(), share or Share())
        with _Drain(names, config, stats, event_ids, stop, pace) as run:
            run.until_idle()
    return stats


#: The longest a sender loop waits between rounds: idle (the ``thread`` backend until the
#: next retry is due), or after failed rounds.
MAX_IDLE_WAIT = 60.0


def serve(
    stop: threading.Event,
    bell: Bell,
    *,
    vendors: Sequence[str] | None = None,
    share: Share | None = None,
    idle_wait: Callable[[], float],
    after_round: Callable[[DrainStats], None] | None = None,
) -> None:
    """The one long-running sender loop, for the ``thread`` backend and the worker alike:
    drain every vendor (one :func:`drain`), then wait for ``bell`` (a commit in this
    process, or ``stop``) at most ``idle_wait()`` seconds, until ``stop`` is set.

    A failed round (the database went away) is logged and retried after
    ``POLL_INTERVAL``, doubling with each failure in a row up to
    :data:`MAX_IDLE_WAIT`. Between rounds the thread's connections are closed as
    ``CONN_MAX_AGE`` says, like a request's, and all of them when the loop ends.
    ``after_round`` hears each round's counts, partial ones included.
    """
    failures = 0
    try:
        while not stop.is_set():
            stats = DrainStats()
            try:
                drain(vendors, stop=stop, stats=stats, bell=bell, share=share)
                failures = 0
                wait = idle_wait()
            except Exception:
                failures += 1
                poll = get_config().options.poll_interval
                wait = min(poll * 2 ** (failures - 1), MAX_IDLE_WAIT)
                logger.exception(
                    "sender round failed (%d in a row); retrying in %.1fs", failures, wait
                )
            finally:
                close_old_connections()
                if after_round is not None:
                    after_round(stats)
            bell.wait(wait, fresh_only=True)
    finally:
        connections.close_all()


@dataclass
class _Pace:
    """When a drain works: woken by its ``bell``, within its ``share`` of the process's
    time, and at most every :data:`DATABASE_INTERVAL` at the database."""

    bell: Bell
    share: Share
    last_turn: float = -math.inf

    def turn_in(self) -> float:
        """Seconds until the drain may claim and record again (0: now)."""
        return max(self.last_turn + DATABASE_INTERVAL - time.monotonic(), 0.0)

    def ready(self) -> bool:
        """Whether the drain may claim and record now."""
        return not (self.turn_in() or self.share.delay())

    def take_turn(self) -> bool:
        if not self.ready():
            return False
        self.last_turn = time.monotonic()
        return True


#: The shortest time between two rounds of a drain's database work (a claim, the
#: outcomes come in meanwhile): under load, a round covers the commits and answers of
#: that time instead of one each, and the writes leave the database to the requests.
DATABASE_INTERVAL = 0.02


@dataclass(eq=False)
class _Batch:
    """One request's worth of claimed deliveries, and how its request went."""

    claim: leases.Claim
    deliveries: list[Delivery]
    #: The events as the vendor gets them (remembered profiles added); empty for an identify.
    events: list[TrackedEvent]
    #: Whether the vendor's window was full when it was sent (so a fast answer widens it).
    full: bool = False
    sent_at: float = 0.0
    elapsed: float = 0.0
    #: Requests it counts for: 0 for a part split off a sent batch (:func:`_singled_out`).
    requests: int = 1

    @property
    def identify(self) -> bool:
        return not self.events


class _Lane:
    """One vendor's part of a drain: claimed deliveries waiting to go out, and the
    requests in flight, at most as many as its window allows."""

    def __init__(self, adapter: VendorAdapter, window: Window, pool: RequestThreads) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self.window = window
        self.pool = pool
        self.queue: deque[_Batch] = deque()
        self.flying: dict[Future[Outcome | None], _Batch] = {}
        #: The last claim found fewer due deliveries than it asked for.
        self.exhausted = False
        self.paused = False

    def wanted(self, batch_size: int) -> int:
        """How many deliveries to claim now: enough for two windows' worth of requests
        (at least ``BATCH_SIZE``), once less than one window's worth is waiting."""
        if self.exhausted or self.paused or len(self.queue) >= self.window.size:
            return 0
        per_request = self.adapter.max_batch_size
        if per_request > 1:
            return max(batch_size, per_request)
        return max(batch_size, 2 * self.window.size)

    @property
    def idle(self) -> bool:
        return not (self.flying or self.queue)

    @property
    def sendable(self) -> bool:
        """Whether a waiting batch may go out now: a request answered frees its place in
        the window at once, recorded or not (outcomes are written a round at a time)."""
        return bool(self.queue) and self.in_flight() < self.window.size

    def in_flight(self) -> int:
        return sum(1 for future in self.flying if not future.done())

    def lease(self, deliveries: int, config: Config) -> float:
        """Seconds that sending ``deliveries`` more may take at worst: behind those waiting,
        at half the window (it may be cut), each request taking its full timeouts."""
        vendor = config.vendors[self.name]
        requests = len(self.queue) + math.ceil(deliveries / self.adapter.max_batch_size)
        rounds = math.ceil(requests / max(self.window.size // 2, 1))
        return rounds * (vendor.connect_timeout + vendor.read_timeout) + 5


class _Drain:
    """One drain: its lanes, the claims it holds, and the loop that keeps them busy."""

    def __init__(
        self,
        names: Sequence[str],
        config: Config,
        stats: DrainStats,
        event_ids: Sequence[uuid.UUID] | None,
        stop: threading.Event | None,
        pace: _Pace,
    ) -> None:
        self.config = config
        self.options = config.options
        self.stats = stats
        self.event_ids = event_ids
        self.stop = stop
        self.pace = pace
        #: Held while this drain claims (see :func:`end_leases`).
        self.claiming = _claim_lock(stop)
        self.lanes = [
            _Lane(
                config.adapters[name](config.vendors[name]),
                window(name, config),
                RequestThreads(config.options.concurrency_range[1], f"eventtrack-{name}"),
            )
            for name in names
        ]
        #: The claims this drain holds, each with how many of its deliveries are unrecorded.
        self.claims: dict[uuid.UUID, tuple[leases.Claim, int]] = {}
        self.claimed_at = time.monotonic()

    def __enter__(self) -> _Drain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait for the requests in flight; give back what is left unrecorded (after an
        error: its rows are due again now, not when the lease ends)."""
        for lane in self.lanes:
            lane.pool.close()
        with _held_lock:
            for token in self.claims:
                _held.pop(token, None)
        for claim, _ in self.claims.values():
            _give_back(claim)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _wanting(self) -> bool:
        return any(lane.wanted(self.options.batch_size) for lane in self.lanes)

    def until_idle(self) -> None:
        """Claim, send and record until no lane has anything due, waiting, or in flight."""
        while True:
            self._work()
            if all(lane.idle for lane in self.lanes) and (self.stopping() or not self._wanting()):
                return
            fresh = self.pace.bell.wait(self._rest(), commits_wake=self.pace.ready())
            if fresh or time.monotonic() - self.claimed_at >= self.options.poll_interval:
                for lane in self.lanes:  # committed meanwhile, due since, or pause over
                    lane.exhausted = lane.paused = False

    def _work(self) -> None:
        if self.stopping():
            self._record_finished()
            self._release_waiting()
            return
        if self.pace.take_turn():
            # Charged by the clock, not the thread's CPU: a database server on the same
            # machine works for us meanwhile, and SQLite's lock keeps others waiting.
            started = time.monotonic()
            self._record_finished()
            self._claim()
            self.pace.share.charge(time.monotonic() - started, cpu=False)  # before sending
        self._send()

    def _rest(self) -> float:
        """How long to wait for a bell: until the next turn at the database if there is
        work for it, or the share allows more sending; else ``POLL_INTERVAL``."""
        waits = [self.options.poll_interval]
        if self._wanting() or any(f.done() for lane in self.lanes for f in lane.flying):
            waits.append(max(self.pace.turn_in(), self.pace.share.delay()))
        if any(lane.sendable for lane in self.lanes):
            waits.append(self.pace.share.delay())  # held back by the share alone
        return min(waits)

    # -- claiming ---------------------------------------------------------------------------

    def _claim(self) -> None:
        """One claim for every lane that wants more work (one transaction)."""
        wanted = {
            lane: count for lane in self.lanes if (count := lane.wanted(self.options.batch_size))
        }
        if not wanted:
            return
        self.claimed_at = time.monotonic()
        paused = pausing.paused_vendors()
        for lane in list(wanted):
            if lane.name in paused or not breaker.allows(lane.name):
                self._pause(lane)
                del wanted[lane]
        if not wanted:
            return
        lease = max(lane.lease(count, self.config) for lane, count in wanted.items())
        with self.claiming:
            if self.stopping():  # its leases are being ended: claim nothing more
                return
            claim = leases.claim_due(
                {lane.name: count for lane, count in wanted.items()},
                timedelta(seconds=max(self.options.lease_seconds, lease)),
                event_ids=self.event_ids,
            )
            if claim.deliveries:
                self._hold(claim)
        normalised: dict[uuid.UUID, TrackedEvent] = {}
        dropped = dropped_names.known([lane.name for lane in wanted]) if claim.deliveries else {}
        for lane, count in wanted.items():
            mine = [d for d in claim.deliveries if d.vendor == lane.name]
            lane.exhausted = len(mine) < count
            self._enqueue(lane, claim, mine, normalised, dropped.get(lane.name, {}))

    def _hold(self, claim: leases.Claim) -> None:
        self.claims[claim.token] = (claim, len(claim.deliveries))
        with _held_lock:
            _held[claim.token] = (claim, self.stop)

    def _enqueue(
        self,
        lane: _Lane,
        claim: leases.Claim,
        deliveries: list[Delivery],
        normalised: dict[uuid.UUID, TrackedEvent],
        dropped: Mapping[str, str],
    ) -> None:
        """Queue ``deliveries`` on ``lane``, a request's worth per batch (events of
        different :meth:`~VendorAdapter.batch_key` never in one request)."""
        sendable = self._expire_old(lane, claim, deliveries)
        tracked = [d for d in sendable if d.event.kind != IDENTIFY]
        events = _events(lane.adapter, tracked, normalised)
        tracked, events = self._unwanted(lane, claim, tracked, events, dropped)
        for indexes in request_batches(lane.adapter, events):
            batch = [tracked[index] for index in indexes]
            lane.queue.append(_Batch(claim, batch, [events[index] for index in indexes]))
        for delivery in sendable:
            if delivery.event.kind == IDENTIFY:
                lane.queue.append(_Batch(claim, [delivery], []))

    def _expire_old(
        self, lane: _Lane, claim: leases.Claim, deliveries: list[Delivery]
    ) -> list[Delivery]:
        """Fail, unsent, the deliveries older than the vendor's ``MAX_AGE``.

        An outage longer than ``MAX_AGE`` must not end in a replay of stale events.
        """
        max_age = lane.adapter.config.max_age
        cutoff = timezone.now() - timedelta(seconds=max_age)
        expired = [d for d in deliveries if d.created_at < cutoff]
        if expired:
            outcome = Outcome(
                OutcomeKind.FAILED,
                None,
                f"not sent: older than MAX_AGE ({max_age:g}s) when its turn came",
            )
            self._settle_unsent(lane, claim, expired, outcome)
        return [d for d in deliveries if d.created_at >= cutoff]

    def _unwanted(
        self,
        lane: _Lane,
        claim: leases.Claim,
        deliveries: list[Delivery],
        events: list[TrackedEvent],
        dropped: Mapping[str, str],
    ) -> tuple[list[Delivery], list[TrackedEvent]]:
        """Skip, unsent, what the vendor does not want now: an event that happened too
        long ago (its ``MAX_LATENESS``), or of a name it was seen to drop."""
        now = timezone.now()
        kept: tuple[list[Delivery], list[TrackedEvent]] = ([], [])
        skipped: dict[str, list[Delivery]] = {}
        for delivery, event in zip(deliveries, events, strict=True):
            reason = lane.adapter.lateness_refusal(event.timestamp, now) or lane.adapter.known_drop(
                event, dropped
            )
            if reason is None:
                kept[0].append(delivery)
                kept[1].append(event)
            else:
                skipped.setdefault(reason, []).append(delivery)
        for reason, rows in skipped.items():
            self._settle_unsent(lane, claim, rows, Outcome(OutcomeKind.SKIPPED, None, reason))
        return kept

    def _settle_unsent(
        self, lane: _Lane, claim: leases.Claim, deliveries: list[Delivery], outcome: Outcome
    ) -> None:
        outcomes.record_outcome(
            claim, deliveries, outcome, lane.adapter.config, self.options, attempted=False
        )
        self.stats.add(outcome, len(deliveries), sent=False)
        self._recorded(claim, len(deliveries))

    # -- sending ----------------------------------------------------------------------------

    def _send(self) -> None:
        """Send what each lane has waiting, up to its window."""
        for lane in self.lanes:
            if lane.queue and not breaker.allows(lane.name):
                self._pause(lane)
            while lane.sendable:
                if self.pace.share.delay():
                    return
                batch = lane.queue.popleft()
                batch.full = lane.in_flight() + 1 >= lane.window.size
                future = lane.pool.submit(functools.partial(self._request, lane, batch))
                lane.flying[future] = batch
                future.add_done_callback(lambda _: self.pace.bell.ring())

    def _request(self, lane: _Lane, batch: _Batch) -> Outcome | None:
        """Send one batch (in one of the lane's request threads)."""
        batch.sent_at = time.monotonic()
        spent = time.thread_time()
        try:
            if batch.identify:
                return _send_identify(lane.adapter, batch.deliveries[0], self.stop, self.options)
            return _send_batch(
                lane.adapter, batch.deliveries, batch.events, self.stop, self.options
            )
        finally:
            batch.elapsed = time.monotonic() - batch.sent_at
            self.pace.share.charge(time.thread_time() - spent)

    def _pause(self, lane: _Lane) -> None:
        """Send nothing more to ``lane``'s vendor in this drain; give its waiting rows back."""
        lane.paused = True
        self.stats.paused_vendors.add(lane.name)
        self._release(lane)

    def _release_waiting(self) -> None:
        for lane in self.lanes:
            self._release(lane)

    def _release(self, lane: _Lane) -> None:
        waiting = list(lane.queue)
        lane.queue.clear()
        if waiting:
            self._write([(lane, batch, None) for batch in waiting])

    # -- recording --------------------------------------------------------------------------

    def _record_finished(self) -> None:
        """Record every request finished since the last look, in one transaction."""
        finished = []
        for lane in self.lanes:
            for future in [future for future in lane.flying if future.done()]:
                batch = lane.flying.pop(future)
                outcome = future.result()
                _teach(lane.window, batch, outcome)
                finished.append((lane, batch, outcome))
        if finished:
            self._write(finished)

    def _write(self, finished: list[tuple[_Lane, _Batch, Outcome | None]]) -> None:
        """Write what became of ``finished`` requests (``None``: not sent, given back),
        those of one claim with the same outcome together, all in one transaction."""
        groups: dict[tuple[_Lane, uuid.UUID, Outcome | None], list[_Batch]] = {}
        for lane, batch, outcome in finished:
            for part, verdict in _singled_out(batch, outcome):
                groups.setdefault((lane, batch.claim.token, verdict), []).append(part)
        results = [
            outcomes.Result(
                batches[0].claim,
                [delivery for batch in batches for delivery in batch.deliveries],
                outcome,
                lane.adapter.config,
            )
            for (lane, _, outcome), batches in groups.items()
        ]
        outcomes.record_results(results, self.options)
        for (lane, _, outcome), batches in groups.items():
            deliveries = sum(len(batch.deliveries) for batch in batches)
            if outcome is not None:
                self.stats.add(outcome, deliveries, requests=sum(b.requests for b in batches))
            self._recorded(batches[0].claim, deliveries)
            _record_pause(lane.name)

    def _recorded(self, claim: leases.Claim, deliveries: int) -> None:
        """``deliveries`` of ``claim`` have their outcome; a claim all recorded is done."""
        held, unrecorded = self.claims[claim.token]
        if unrecorded > deliveries:
            self.claims[claim.token] = (held, unrecorded - deliveries)
            return
        del self.claims[claim.token]
        with _held_lock:
            _held.pop(claim.token, None)


def _singled_out(batch: _Batch, outcome: Outcome | None) -> list[tuple[_Batch, Outcome | None]]:
    """``batch`` with its outcome, or split by verdict when the vendor judged some of its
    events apart (:attr:`Outcome.singled_out`: refused one event of a batch, took the rest)."""
    if outcome is None or not outcome.singled_out:
        return [(batch, outcome)]
    parts: dict[Outcome, list[Delivery]] = {}
    for delivery in batch.deliveries:
        parts.setdefault(outcome.for_event(str(delivery.event_id)), []).append(delivery)
    return [
        (dataclasses.replace(batch, deliveries=deliveries, requests=int(index == 0)), verdict)
        for index, (verdict, deliveries) in enumerate(parts.items())
    ]


def _teach(window: Window, batch: _Batch, outcome: Outcome | None) -> None:
    """Tell the vendor's window how its request went."""
    if outcome is None or outcome.kind is OutcomeKind.SKIPPED:
        return
    if outcome.kind is OutcomeKind.RETRY:
        window.refused(batch.sent_at)
    else:
        window.answered(batch.elapsed, full=batch.full)


#: The claims drains in this process hold, with the ``stop`` event they were given.
_held: dict[uuid.UUID, tuple[leases.Claim, threading.Event | None]] = {}
_held_lock = threading.Lock()
#: Per ``stop`` event, held while a drain given it claims.
_claiming: weakref.WeakKeyDictionary[threading.Event, threading.Lock] = weakref.WeakKeyDictionary()


def _claim_lock(stop: threading.Event | None) -> threading.Lock:
    """The lock drains stopped by ``stop`` claim under (one of their own without one)."""
    if stop is None:
        return threading.Lock()
    with _held_lock:
        return _claiming.setdefault(stop, threading.Lock())


def _give_back(claim: leases.Claim) -> None:
    try:
        leases.release(claim, claim.deliveries)  # recorded ones no longer carry its token
    except Exception as exc:
        logger.error(
            "could not give back %d claimed deliveries (%s); they come due again when "
            "their lease ends at %s",
            len(claim.deliveries),
            type(exc).__name__,
            claim.until.isoformat(),
        )


def end_leases(stop: threading.Event) -> int:
    """Make the deliveries still claimed by drains stopped with ``stop`` due again
    now; how many were in flight. For a process about to exit with requests in
    flight: another process need not wait for the lease to end. A request that
    still finishes records its answer, unless another sender has claimed the row
    meanwhile; a delivery whose request never started is given back outright."""
    # A claim under way is held before its leases are looked at; later drains with this
    # ``stop`` claim nothing (it is set). Else it could commit once the process has
    # ended the others' leases, and keep its rows until its own lease ends.
    with _claim_lock(stop), _held_lock:
        claims = [claim for claim, held_stop in _held.values() if held_stop is stop]
    ended = 0
    for claim in claims:
        with _in_flight_lock:
            flying = [d for d in claim.deliveries if d.pk in _in_flight]
        leases.release(claim, [d for d in claim.deliveries if d.pk not in _in_flight])
        ended += leases.end_lease(claim, flying)
    return ended


#: The deliveries whose request has started (by primary key), for :func:`end_leases`.
_in_flight: set[int] = set()
_in_flight_lock = threading.Lock()


@contextlib.contextmanager
def _flying(batch: Sequence[Delivery]) -> Iterator[None]:
    keys = [delivery.pk for delivery in batch]
    with _in_flight_lock:
        _in_flight.update(keys)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.difference_update(keys)


def _forget_held() -> None:
    """A forked child holds none of its parent's claims, nor their requests, and
    must not wait on a lock a parent's thread held at the fork."""
    global _held_lock, _in_flight_lock, _windows_lock, _learning
    _learning = threading.Lock()
    _held.clear()
    _held_lock = threading.Lock()
    _claiming.clear()
    _in_flight.clear()
    _in_flight_lock = threading.Lock()
    _windows_lock = threading.Lock()
    for found in _windows.values():
        found._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held)


#: A submitted call and the future that gets its result.
_Call = tuple[Future[Any], Callable[[], Any]]


class RequestThreads:
    """Up to ``size`` daemon threads running the calls submitted, each answered by a Future.

    What the sender needs of a ``ThreadPoolExecutor``, without its refusal to run
    anything once the main thread has finished (see the module docstring).
    A thread starts when a call finds every thread busy. When the interpreter
    refuses to start one (Python 3.12 does in ``atexit`` handlers) and none is
    running, the caller's thread runs the call itself: sending at exit slows
    down but still happens. :meth:`close` (or leaving the ``with`` block) cancels
    the calls not started and waits for those running, so no request is still
    in flight when a claim's rows are given back. A thread that used the
    database (an ``identify()`` call reads and writes vendor profiles) closes
    its connections when it ends.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._busy_lock:
            self._busy += 1
            wanted = self._busy > len(self._threads)
        if wanted and len(self._threads) < self._size:
            self._start_thread()
        if self._threads:
            self._calls.put((future, call))
        else:
            self._run((future, call))
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            self._size = len(self._threads)
            return
        self._threads.append(thread)

    def _serve(self) -> None:
        try:
            while (call := self._calls.get()) is not None:
                self._run(call)
        finally:
            connections.close_all()

    def _run(self, call: _Call) -> None:
        future, function = call
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = function()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def close(self) -> None:
        """Cancel the calls not started, wait for those running, end the threads."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
                with self._busy_lock:
                    self._busy -= 1
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def __enter__(self) -> RequestThreads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _events(
    adapter: VendorAdapter, deliveries: list[Delivery], normalised: dict[uuid.UUID, TrackedEvent]
) -> list[TrackedEvent]:
    """The deliveries' events as the adapter reads them, with remembered vendor profiles.
    ``normalised`` keeps each event read once for all the vendors of a claim."""
    events = []
    for delivery in deliveries:
        event = normalised.get(delivery.event_id)
        if event is None:
            event = normalised[delivery.event_id] = delivery.event.to_normalised()
        events.append(event)
    return (
        vendor_profiles.with_known_profiles(adapter.name, events)
        if adapter.remembers_profiles
        else events
    )


def _send_batch(
    adapter: VendorAdapter,
    batch: list[Delivery],
    events: list[TrackedEvent],
    stop: threading.Event | None,
    options: DeliveryOptions,
) -> Outcome | None:
    """Send one request's worth of deliveries (in a request thread).

    ``None`` means "not sent" (stopping, or the vendor was paused meanwhile).
    The circuit breaker hears each answer here, before this thread sends the
    next request, so a vendor that fails fast is paused mid-claim. What the
    answer taught (whose a session is, a profile the vendor lost) is kept here
    too, so a profile created again never holds up the other vendors' records.
    """
    outcome = _attempt(
        adapter,
        batch,
        stop,
        options,
        lambda: adapter.send_events(events, lambda request: http.send(adapter, request)),
    )
    if outcome is not None and outcome.learned:
        _learn(adapter, outcome)
    return outcome


#: One request thread at a time keeps what answers taught: two answers that found the
#: same profile lost must create it again once, not twice.
_learning = threading.Lock()


def _learn(adapter: VendorAdapter, outcome: Outcome) -> None:
    try:
        with _learning:
            vendor_profiles.learn(
                adapter, outcome.learned, lambda request: http.send(adapter, request)
            )
            dropped_names.learn(adapter.name, outcome.learned)
    except Exception:
        logger.exception(
            "vendor=%s: could not keep what its answer taught; the next answer teaches it again",
            adapter.name,
        )


def _send_identify(
    adapter: VendorAdapter,
    delivery: Delivery,
    stop: threading.Event | None,
    options: DeliveryOptions,
) -> Outcome | None:
    """Send one ``identify()`` call (in a request thread, which may read and write the
    vendor profiles it learns; one login per user, so these are rare)."""
    event = delivery.event.to_normalised()
    return _attempt(
        adapter,
        [delivery],
        stop,
        options,
        lambda: adapter.send_identify(
            event, lambda request: http.send(adapter, request), vendor_profiles.profiles
        ),
    )


def _attempt(
    adapter: VendorAdapter,
    batch: list[Delivery],
    stop: threading.Event | None,
    options: DeliveryOptions,
    send: Callable[[], http.Attempt | Outcome],
) -> Outcome | None:
    """Run ``send`` unless stopping or paused; its outcome, with the breaker told."""
    with _flying(batch):  # before the stop check: end_leases() must not miss a started send
        if (stop and stop.is_set()) or not breaker.allows(adapter.name):
            return None
        outcome = _outcome_of(adapter, batch, send)
    breaker.record(
        adapter.name,
        outcome,
        threshold=options.circuit_breaker_threshold,
        pause=options.circuit_breaker_pause,
    )
    return outcome


def _outcome_of(
    adapter: VendorAdapter, batch: list[Delivery], send: Callable[[], http.Attempt | Outcome]
) -> Outcome:
    """``send()``'s outcome; an unexpected error is logged and retried."""
    try:
        result = send()
        return result if isinstance(result, Outcome) else result.outcome
    except Exception as exc:
        logger.exception(
            "vendor=%s events=%s: unexpected error building or sending; will retry",
            adapter.name,
            ",".join(str(delivery.event_id) for delivery in batch),
        )
        return Outcome(OutcomeKind.RETRY, None, f"internal error: {type(exc).__name__}")


def _record_pause(vendor: str) -> None:
    """Write a pause this process began to the database, for the other processes."""
    pause = breaker.take_unrecorded(vendor)
    if pause is not None:
        pausing.pause_vendor(vendor, *pause)
