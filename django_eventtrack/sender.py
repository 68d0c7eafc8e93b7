"""Draining the outbox: claim due deliveries, send them, record what happened.

Every delivery backend ends up here (``sync`` for one event, ``thread``, the
worker command, Celery and Tasks for everything due), so retries, batching,
concurrency and the circuit breaker behave the same whichever one runs.

Each vendor is drained by its own thread with ``CONCURRENCY`` requests in
flight over the vendor's keep-alive pool, so a slow vendor never holds up the
others. PrimeData deliveries go out up to 500 to a request; the other vendors
take one event per request.

The request threads are the sender's own (:class:`RequestThreads`), not a
``concurrent.futures.ThreadPoolExecutor``: the executor refuses new work as soon
as the main thread has finished, before ``atexit`` handlers run, and that is
exactly when the ``thread`` backend sends what a script or command committed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from django.db import connections
from django.utils import timezone

from django_eventtrack import http, outbox, vendor_profiles
from django_eventtrack.conf import Config, DeliveryOptions, get_config
from django_eventtrack.event import IDENTIFY, Event
from django_eventtrack.models import Delivery
from django_eventtrack.vendors import Outcome, OutcomeKind, VendorAdapter

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

    The pause takes effect here at once (the pool threads ask before each
    request); the drain thread then writes it to the database
    (:func:`outbox.pause_vendor`), so every other process stops too.
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


def drain(
    vendors: Iterable[str] | None = None,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
    stop: threading.Event | None = None,
    stats: DrainStats | None = None,
) -> DrainStats:
    """Send everything due (for ``event_ids`` only, if given) until nothing is left.

    Returns when no vendor has anything due, or soon after ``stop`` is set
    (in-flight requests finish; claimed but unsent rows are released). Counts go
    into ``stats`` (a new one by default) as each outcome is recorded, so a
    caller that passes its own keeps what was done before an error interrupted
    the drain.
    """
    config = get_config()
    wanted = config.active_vendors if vendors is None else vendors
    names = [name for name in wanted if name in config.active_vendors]
    stats = DrainStats() if stats is None else stats
    if len(names) == 1:
        _drain_vendor(names[0], config, stats, event_ids, stop)
        return stats
    threads = [
        threading.Thread(
            target=_drain_vendor_thread,
            args=(name, config, stats, event_ids, stop),
            name=f"eventtrack-drain-{name}",
            daemon=True,
        )
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


def _drain_vendor_thread(
    vendor: str,
    config: Config,
    stats: DrainStats,
    event_ids: Sequence[uuid.UUID] | None,
    stop: threading.Event | None,
) -> None:
    try:
        _drain_vendor(vendor, config, stats, event_ids, stop)
    except Exception:
        logger.exception("vendor=%s: drain failed; its deliveries stay pending", vendor)
    finally:
        connections.close_all()


def _drain_vendor(
    vendor: str,
    config: Config,
    stats: DrainStats,
    event_ids: Sequence[uuid.UUID] | None,
    stop: threading.Event | None,
) -> None:
    vendor_config = config.vendors[vendor]
    adapter = config.adapters[vendor](vendor_config)
    options = config.options
    per_request = adapter.max_batch_size
    limit = max(options.batch_size, per_request) if per_request > 1 else options.batch_size
    while not (stop and stop.is_set()):
        if not breaker.allows(vendor) or vendor in outbox.paused_vendors():
            stats.paused_vendors.add(vendor)
            return
        requests_needed = math.ceil(limit / per_request)
        rounds = math.ceil(requests_needed / options.concurrency)
        worst_case = rounds * (vendor_config.connect_timeout + vendor_config.read_timeout)
        lease = timedelta(seconds=max(options.lease_seconds, worst_case + 5))
        claim = outbox.claim_due_deliveries(vendor, limit, lease, event_ids=event_ids)
        if not claim.deliveries:
            return
        with (
            _holding(claim, stop),
            RequestThreads(options.concurrency, f"eventtrack-{vendor}") as pool,
        ):
            _send_claim(adapter, claim, pool, config, stats, stop)


def _send_claim(
    adapter: VendorAdapter,
    claim: outbox.Claim,
    pool: RequestThreads,
    config: Config,
    stats: DrainStats,
    stop: threading.Event | None,
) -> None:
    """Send one claim's deliveries, ``CONCURRENCY`` requests at a time, and record each outcome."""
    options = config.options
    per_request = adapter.max_batch_size
    sendable = _expire_old(adapter, claim, config, stats)
    tracked = [d for d in sendable if d.event.kind != IDENTIFY]
    events = _events(adapter, tracked)  # remembered profiles: one lookup per claim
    starts = range(0, len(tracked), per_request)
    batches = [tracked[start : start + per_request] for start in starts]
    futures = [
        pool.submit(
            functools.partial(
                _send_batch, adapter, batch, events[start : start + per_request], stop, options
            )
        )
        for start, batch in zip(starts, batches, strict=True)
    ]
    for delivery in sendable:
        if delivery.event.kind == IDENTIFY:
            outcome = _send_identify(adapter, delivery, stop, options)
            _record(adapter, claim, [delivery], outcome, config, stats)
    _record_as_completed(adapter, claim, dict(zip(futures, batches, strict=True)), config, stats)


#: The claims drains in this process hold, with the ``stop`` event they were given.
_held: dict[uuid.UUID, tuple[outbox.Claim, threading.Event | None]] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def _holding(claim: outbox.Claim, stop: threading.Event | None) -> Iterator[None]:
    """Hold ``claim`` while its deliveries are sent. An error mid-claim makes its
    unrecorded deliveries due again now, instead of at the end of the lease."""
    with _held_lock:
        _held[claim.token] = (claim, stop)
    try:
        yield
    except BaseException:
        _give_back(claim)
        raise
    finally:
        with _held_lock:
            _held.pop(claim.token, None)


def _give_back(claim: outbox.Claim) -> None:
    try:
        outbox.release(claim, claim.deliveries)  # recorded ones no longer carry its token
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
    with _held_lock:
        claims = [claim for claim, held_stop in _held.values() if held_stop is stop]
    ended = 0
    for claim in claims:
        with _in_flight_lock:
            flying = [d for d in claim.deliveries if d.pk in _in_flight]
        outbox.release(claim, [d for d in claim.deliveries if d.pk not in _in_flight])
        ended += outbox.end_lease(claim, flying)
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
    """A forked child holds none of its parent's claims, nor their requests."""
    global _held_lock, _in_flight_lock
    _held.clear()
    _held_lock = threading.Lock()
    _in_flight.clear()
    _in_flight_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held)


#: A submitted call and the future that gets its result.
_Call = tuple[Future[Any], Callable[[], Any]]


class RequestThreads:
    """Up to ``size`` daemon threads running the calls submitted, each answered by a Future.

    What the sender needs of a ``ThreadPoolExecutor``, without its refusal to run
    anything once the main thread has finished (see the module docstring).
    Threads start on demand. When the interpreter refuses to start one (Python
    3.12 does in ``atexit`` handlers) and none is running, the caller's thread
    runs the call itself: sending at exit slows down but still happens. Leaving
    the ``with`` block cancels the calls not started and waits for those running,
    so no request is still in flight when a claim's rows are given back.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        if len(self._threads) < self._size:
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
        while (call := self._calls.get()) is not None:
            self._run(call)

    @staticmethod
    def _run(call: _Call) -> None:
        future, function = call
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = function()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def __enter__(self) -> RequestThreads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()


def _expire_old(
    adapter: VendorAdapter, claim: outbox.Claim, config: Config, stats: DrainStats
) -> list[Delivery]:
    """Fail, unsent, the claimed deliveries older than the vendor's ``MAX_AGE``.

    An outage longer than ``MAX_AGE`` must not end in a replay of stale events
    (Browsee forbids historical dumps; docs/vendors/browsee.md).
    """
    cutoff = timezone.now() - timedelta(seconds=adapter.config.max_age)
    expired = [d for d in claim.deliveries if d.created_at < cutoff]
    if expired:
        outcome = Outcome(
            OutcomeKind.FAILED,
            None,
            f"not sent: older than MAX_AGE ({adapter.config.max_age:g}s) when its turn came",
        )
        outbox.finish(claim, expired, outcome, adapter.config, config.options, attempted=False)
        stats.add(outcome, len(expired), sent=False)
    return [d for d in claim.deliveries if d.created_at >= cutoff]


def _events(adapter: VendorAdapter, deliveries: list[Delivery]) -> list[Event]:
    """The deliveries' events as the adapter reads them, with remembered vendor profiles."""
    events = [delivery.event.to_normalised() for delivery in deliveries]
    return (
        vendor_profiles.with_known_profiles(adapter.name, events)
        if adapter.remembers_profiles
        else events
    )


def _send_batch(
    adapter: VendorAdapter,
    batch: list[Delivery],
    events: list[Event],
    stop: threading.Event | None,
    options: DeliveryOptions,
) -> Outcome | None:
    """Send one request's worth of deliveries (in a pool thread; no database work here).

    ``None`` means "not sent" (stopping, or the vendor was paused meanwhile).
    The circuit breaker hears each answer here, before this thread sends the
    next request, so a vendor that fails fast is paused mid-claim.
    """
    return _attempt(
        adapter,
        batch,
        stop,
        options,
        lambda: adapter.send_events(events, lambda request: http.send(adapter, request)),
    )


def _send_identify(
    adapter: VendorAdapter,
    delivery: Delivery,
    stop: threading.Event | None,
    options: DeliveryOptions,
) -> Outcome | None:
    """Send one ``identify()`` call, in the drain thread: it may read and write the
    vendor profiles it learns (one login per user, so these are rare)."""
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


def _record(
    adapter: VendorAdapter,
    claim: outbox.Claim,
    batch: list[Delivery],
    outcome: Outcome | None,
    config: Config,
    stats: DrainStats,
    *,
    requests: int = 1,
) -> None:
    if outcome is None:
        outbox.release(claim, batch)
        _record_pause(adapter.name)
        return
    outbox.record_adjustments(claim, batch, dict(outcome.adjustments))
    outbox.finish(claim, batch, outcome, adapter.config, config.options)
    stats.add(outcome, len(batch), requests=requests)
    if outcome.learned:
        vendor_profiles.learn(adapter, outcome.learned, lambda request: http.send(adapter, request))
    _record_pause(adapter.name)


def _record_pause(vendor: str) -> None:
    """Write a pause this process began to the database, for the other processes."""
    pause = breaker.take_unrecorded(vendor)
    if pause is not None:
        outbox.pause_vendor(vendor, *pause)


def _record_as_completed(
    adapter: VendorAdapter,
    claim: outbox.Claim,
    pending: dict[Future[Outcome | None], list[Delivery]],
    config: Config,
    stats: DrainStats,
) -> None:
    """Record outcomes as requests finish; those finished meanwhile with the same
    outcome in one write.

    One UPDATE per request made the vendor threads queue for SQLite's single
    writer lock, which capped a worker at ~180 requests/s whatever the vendors
    could take (``python -m tests.benchmarks``, throughput). The slower the
    writes, the more requests finish during one, so the batching adapts; a
    request is still recorded as soon as the database lets us.
    """
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        by_outcome: dict[Outcome | None, list[list[Delivery]]] = {}
        for future in done:
            by_outcome.setdefault(future.result(), []).append(pending.pop(future))
        for outcome, batches in by_outcome.items():
            deliveries = [delivery for batch in batches for delivery in batch]
            _record(adapter, claim, deliveries, outcome, config, stats, requests=len(batches))
