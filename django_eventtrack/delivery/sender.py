"""Draining the outbox: claim due deliveries, send them, record what happened.

Every delivery backend ends up here (``sync`` for one event, ``thread``, the
worker command, Celery and Tasks for everything due), so retries, batching,
concurrency and the circuit breaker behave the same whichever one runs.

One drain serves all its vendors from the thread that calls it and does their
database work together: one claim for every vendor that needs more deliveries,
one transaction for the outcomes of the requests finished meanwhile, each event
read once. Each vendor's requests go out from its own request threads, as many
at a time as its window allows (:mod:`.flow`), so a slow vendor never holds up
the others.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from django.db import close_old_connections, connections
from django.utils import timezone

from django_eventtrack.conf import Config, DeliveryOptions, get_config
from django_eventtrack.core.event import IDENTIFY, TrackedEvent
from django_eventtrack.delivery import as_sent, flow, held_claims, http
from django_eventtrack.delivery.pacing import Bell, Pace, Share
from django_eventtrack.delivery.threads import RequestThreads
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import dropped_names, leases, outcomes, pausing, vendor_profiles
from django_eventtrack.vendors import Outcome, OutcomeKind, VendorAdapter
from django_eventtrack.vendors.base import Notes, Send, VendorRequest
from django_eventtrack.vendors.batching import request_batches

logger = logging.getLogger("django_eventtrack.sender")


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
        pace = Pace(bell or Bell(), share or Share())
        with _Drain(names, config, stats, event_ids, stop, pace) as run:
            run.until_idle()
    return stats


#: Seconds a stopping sender may take, once every request in flight is answered, to
#: record the answers and give back the rest.
SETTLE_SECONDS = 1.0


def answer_wait(config: Config | None = None) -> float:
    """The longest a stopping sender may wait for the answers of the requests it sent:
    the slowest vendor's ``CONNECT_TIMEOUT`` + ``TIMEOUT``, and the time to record them."""
    vendors = (config or get_config()).active_vendors.values()
    timeouts = [vendor.connect_timeout + vendor.read_timeout for vendor in vendors]
    return max(timeouts, default=0.0) + SETTLE_SECONDS


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
                wait = 0.0 if stop.is_set() else idle_wait()
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
            if not stop.is_set():  # set and rung after this look: the wait ends at once
                bell.wait(wait, fresh_only=True)
    finally:
        connections.close_all()


@dataclass(eq=False)
class _Batch:
    """One request's worth of claimed deliveries, and how its request went."""

    claim: leases.Claim
    deliveries: list[Delivery]
    #: The events as the vendor gets them (remembered profiles added); empty for an identify.
    events: list[TrackedEvent]
    #: Per event id, what sending them changed before the adapter built the request
    #: (a browser id of another user's left out or replaced).
    notes: Notes = field(default_factory=dict)
    #: Whether the vendor's window was full when it was sent (so a fast answer widens it).
    full: bool = False
    sent_at: float = 0.0
    elapsed: float = 0.0
    #: Deliveries taken out by :meth:`recheck`: not sent, to be given back.
    dropped: list[Delivery] = field(default_factory=list)
    #: Requests it counts for: 0 for a part split off a sent batch (:func:`_singled_out`).
    requests: int = 1

    @property
    def identify(self) -> bool:
        return not self.events

    def split(self, size: int) -> tuple[_Batch, _Batch]:
        """The first ``size`` deliveries, and the rest."""
        return (
            _Batch(self.claim, self.deliveries[:size], self.events[:size]),
            _Batch(self.claim, self.deliveries[size:], self.events[size:]),
        )

    def keep(self, sendable: set[int]) -> bool:
        """Keep only the deliveries that may still be sent (:func:`.leases.sendable`);
        whether any may. When none may, the batch is left whole, to be given back."""
        kept = [i for i, delivery in enumerate(self.deliveries) if delivery.pk in sendable]
        if len(kept) == len(self.deliveries):
            return True
        if not kept:
            return False
        self.dropped = [d for d in self.deliveries if d.pk not in sendable]
        self.events = [self.events[i] for i in kept] if self.events else []
        self.deliveries = [self.deliveries[i] for i in kept]
        return True


class _Lane:
    """One vendor's part of a drain: claimed deliveries waiting to go out, and the
    requests in flight, at most as many as its window allows."""

    def __init__(
        self,
        adapter: VendorAdapter,
        window: flow.Window,
        batches: flow.Batches,
        pool: RequestThreads,
    ) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self.window = window
        self.batches = batches
        self.pool = pool
        self.queue: deque[_Batch] = deque()
        self.flying: dict[Future[Outcome | None], _Batch] = {}
        #: The last claim found fewer due deliveries than it asked for.
        self.exhausted = False
        self.paused = False
        #: The fingerprint of the credentials this lane sends (a pause for refused
        #: credentials holds only for those), and whether the vendor's refusal of some
        #: credentials is unresolved (the next accepted request ends it).
        self.credentials = pausing.fingerprint(adapter.config)
        self.refused = False
        self.send = _sending(adapter, self.credentials)

    def allowed(self) -> bool:
        """Whether this process's circuit breaker lets a request go to the vendor now."""
        return flow.breaker.allows(self.name, self.credentials)

    def wanted(self, batch_size: int) -> int:
        """How many deliveries to claim now: enough for two windows' worth of requests
        (at least ``BATCH_SIZE``, at most :data:`MAX_CLAIM` beyond it), once less than one
        window's worth is waiting."""
        if self.exhausted or self.paused or len(self.queue) >= self.window.size:
            return 0
        return max(batch_size, min(2 * self.window.size * self.batches.size, MAX_CLAIM))

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


#: The most deliveries of one vendor a claim takes beyond ``BATCH_SIZE``.
MAX_CLAIM = 500
#: The most bytes of events (their properties and ``vendor_extra`` as stored) one claim
#: reads, whatever their number: what a sender holds in memory stays within a few times
#: this under a backlog of the largest events (at least one event per claim).
CLAIM_BYTES = 4 * 1024 * 1024


class _Drain:
    """One drain: its lanes, the claims it holds, and the loop that keeps them busy."""

    def __init__(
        self,
        names: Sequence[str],
        config: Config,
        stats: DrainStats,
        event_ids: Sequence[uuid.UUID] | None,
        stop: threading.Event | None,
        pace: Pace,
    ) -> None:
        self.config = config
        self.options = config.options
        self.stats = stats
        self.event_ids = event_ids
        self.stop = stop
        self.pace = pace
        self.lanes = [self._lane(config.adapters[name](config.vendors[name])) for name in names]
        #: The claims this drain holds; its writes go under ``held.writing``.
        self.held = held_claims.Holdings(stop, timedelta(seconds=self.options.lease_seconds))
        self.writing = self.held.writing
        self.claimed_at = time.monotonic()

    def _lane(self, adapter: VendorAdapter) -> _Lane:
        name, config = adapter.name, self.config
        return _Lane(
            adapter,
            flow.window(name, config),
            flow.batches(name, config, adapter.max_batch_size),
            RequestThreads(config.options.concurrency_range[1], f"eventtrack-{name}"),
        )

    def __enter__(self) -> _Drain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait for the requests in flight, record their answers and give back what was
        never sent; after an error, each write is tried again a few times, then what is
        left unrecorded is let go of (:func:`.held_claims.give_back`): due again now, not
        when the lease ends."""
        for lane in self.lanes:
            lane.pool.close()
        try:
            held_claims.retried(self._settle)
        except Exception:
            logger.exception("could not record the last answers of this drain")
        finally:
            self.held.let_go()

    def _settle(self) -> None:
        """Record every request finished, give back every batch waiting."""
        self._record_finished()
        self._release_waiting()

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
        self.held.renew()  # the heartbeat, before the share has its say
        if self.stopping():
            self._settle()
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
        if self.held:
            waits.append(self.held.renewal_in())
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
        held, refused = pausing.holding({lane.name: lane.adapter.config for lane in wanted})
        for lane in list(wanted):
            lane.refused = lane.name in refused
            if lane.name in held or not lane.allowed():
                self._pause(lane)
                del wanted[lane]
        if not wanted:
            return
        with self.writing:
            if self.stopping():  # its claims are being let go of: claim nothing more
                return
            claim = leases.claim_due(
                {lane.name: count for lane, count in wanted.items()},
                self.held.lease,
                event_ids=self.event_ids,
                max_bytes=CLAIM_BYTES,
            )
            if claim.deliveries:
                self.held.hold(claim)
        normalised: dict[uuid.UUID, as_sent.Read] = {}
        dropped = dropped_names.known([lane.name for lane in wanted]) if claim.deliveries else {}
        for lane, count in wanted.items():
            mine = [d for d in claim.deliveries if d.vendor == lane.name]
            lane.exhausted = len(mine) < count and not claim.cut_short
            self._enqueue(lane, claim, mine, normalised, dropped.get(lane.name, {}))

    def _enqueue(
        self,
        lane: _Lane,
        claim: leases.Claim,
        deliveries: list[Delivery],
        normalised: dict[uuid.UUID, as_sent.Read],
        dropped: Mapping[str, str],
    ) -> None:
        """Queue ``deliveries`` on ``lane``, a request's worth per batch (events of
        different :meth:`~VendorAdapter.batch_key` never in one request)."""
        sendable = self._expire_old(lane, claim, deliveries)
        tracked = [d for d in sendable if d.event.kind != IDENTIFY]
        events, notes = as_sent.events(lane.adapter, tracked, normalised)
        tracked, events = self._unwanted(lane, claim, tracked, events, dropped, notes)
        per_request = lane.batches.size
        for cut in request_batches(lane.adapter, events, self.options.max_request_bytes):
            for start in range(0, len(cut), per_request):
                part = cut[start : start + per_request]
                batch = [tracked[index] for index in part]
                mine = {str(events[index].id): notes[str(events[index].id)] for index in part}
                lane.queue.append(_Batch(claim, batch, [events[index] for index in part], mine))
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
        notes: Notes,
    ) -> tuple[list[Delivery], list[TrackedEvent]]:
        """Skip, unsent, what the vendor does not want now (:func:`.as_sent.why_not`; ``dropped``:
        the names it was seen to drop, ``notes``: what sending changed of each event)."""
        now = timezone.now()
        kept: tuple[list[Delivery], list[TrackedEvent]] = ([], [])
        skipped: dict[str, list[Delivery]] = {}
        for delivery, event in zip(deliveries, events, strict=True):
            changed = notes.get(str(event.id), [])
            reason = as_sent.why_not(lane.adapter, event, dropped, changed, now)
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
        """Record a verdict reached without sending (no attempt counted)."""
        with self.writing:
            outcomes.record_outcome(
                claim, deliveries, outcome, lane.adapter.config, self.options, attempted=False
            )
        self.stats.add(outcome, len(deliveries), sent=False)
        self.held.recorded(claim, deliveries)

    # -- sending ----------------------------------------------------------------------------

    def _send(self) -> None:
        """Send what each lane has waiting, up to its window, once each delivery is checked
        again (:meth:`_sendable`)."""
        going: list[tuple[_Lane, _Batch]] = []
        for lane in self.lanes:
            if lane.queue and not lane.allowed():
                self._pause(lane)
            free = lane.window.size - lane.in_flight()
            while lane.queue and free > 0 and not self.pace.share.delay():
                batch = lane.queue.popleft()
                if len(batch.deliveries) > lane.batches.size:  # cut since it was queued
                    batch, rest = batch.split(lane.batches.size)
                    lane.queue.appendleft(rest)
                going.append((lane, batch))
                free -= 1
        if not going:
            return
        sendable = self._sendable([batch for _, batch in going])
        for lane, batch in going:
            if not batch.keep(sendable):  # recorded as unsent with the next answers
                unsent: Future[Outcome | None] = Future()
                unsent.set_result(None)
                lane.flying[unsent] = batch
                self.pace.bell.ring()
                continue
            batch.full = lane.in_flight() + 1 >= lane.window.size
            future = lane.pool.submit(functools.partial(self._request, lane, batch))
            lane.flying[future] = batch
            future.add_done_callback(lambda _: self.pace.bell.ring())

    def _sendable(self, batches: list[_Batch]) -> set[int]:
        """The last look before the requests (:func:`.leases.sendable`), from the drain's
        own thread and connection (the one that claimed): what was skipped or taken over
        since the claim is given back unsent. A failed look sends nothing this time."""
        try:
            return leases.sendable([(batch.claim, batch.deliveries) for batch in batches])
        except Exception:
            logger.exception(
                "could not check %d claimed requests before sending; given back",
                len(batches),
            )
            return set()

    def _request(self, lane: _Lane, batch: _Batch) -> Outcome | None:
        """Send one batch (in one of the lane's request threads)."""
        batch.sent_at = time.monotonic()
        spent = time.thread_time()
        try:
            if batch.identify:
                return _send_identify(lane, batch.deliveries[0], self.stop, self.options)
            outcome = _send_batch(lane, batch.deliveries, batch.events, self.stop, self.options)
            return outcome and outcome.adjusted(batch.notes)
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
        if lane.queue:
            self._write([(lane, batch, None) for batch in lane.queue])
            lane.queue.clear()

    # -- recording --------------------------------------------------------------------------

    def _record_finished(self) -> None:
        """Record every request finished since the last look, in one transaction; each
        stays in flight until its outcome is written (to be tried again after an error)."""
        finished = [
            (lane, future, batch)
            for lane in self.lanes
            for future, batch in lane.flying.items()
            if future.done()
        ]
        if not finished:
            return
        answers: list[tuple[_Lane, _Batch, Outcome | None]] = []
        for lane, future, batch in finished:
            answers.append((lane, batch, future.result()))
            if batch.dropped:  # taken out by the last look: given back unsent
                answers.append((lane, _Batch(batch.claim, batch.dropped, []), None))
        self._write(answers)
        for lane, future, _ in finished:
            del lane.flying[future]
        for lane, batch, outcome in answers:
            _teach(lane, batch, outcome)
            if batch.identify and outcome is not None and outcome.kind is not OutcomeKind.RETRY:
                lane.exhausted = False  # its user's later deliveries are claimable now

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
        with self.writing:
            outcomes.record_results(results, self.options)
        for (lane, _, outcome), batches in groups.items():
            deliveries = [delivery for batch in batches for delivery in batch.deliveries]
            if outcome is not None:
                self.stats.add(
                    outcome, len(deliveries), requests=sum(batch.requests for batch in batches)
                )
            self.held.recorded(batches[0].claim, deliveries)
            _record_pause(lane)
            if lane.refused and outcome is not None and outcome.ok:
                lane.refused = False
                pausing.credentials_accepted(lane.name)


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


def _teach(lane: _Lane, batch: _Batch, outcome: Outcome | None) -> None:
    """Tell the vendor's window, and its batches, how its request went. Refused
    credentials say nothing about how much the vendor takes; an expected answer is an
    answer like any other."""
    if outcome is None or outcome.kind is OutcomeKind.SKIPPED or outcome.credentials_refused:
        return
    if outcome.kind is OutcomeKind.RETRY and not outcome.expected:
        lane.window.refused(batch.sent_at)
        if outcome.http_status is None:  # no answer: the vendor may have it all the same
            lane.batches.unanswered(batch.sent_at)
        return
    lane.window.answered(batch.elapsed, full=batch.full)
    if outcome.ok:
        lane.batches.delivered()


def _send_batch(
    lane: _Lane,
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
    adapter = lane.adapter
    outcome = _attempt(lane, batch, stop, options, lambda: adapter.send_events(events, lane.send))
    if outcome is not None and outcome.learned:
        _learn(lane, outcome)
    return outcome


#: One request thread at a time keeps what answers taught: two answers that found the
#: same profile lost must create it again once, not twice.
_learning = threading.Lock()


def _new_lock() -> None:
    """A forked child must not wait on a lock a parent's thread held at the fork."""
    global _learning
    _learning = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)


def _learn(lane: _Lane, outcome: Outcome) -> None:
    try:
        with _learning:
            vendor_profiles.learn(lane.adapter, outcome.learned, lane.send)
            dropped_names.learn(lane.name, outcome.learned)
    except Exception:
        logger.exception(
            "vendor=%s: could not keep what its answer taught; the next answer teaches it again",
            lane.name,
        )


def _send_identify(
    lane: _Lane,
    delivery: Delivery,
    stop: threading.Event | None,
    options: DeliveryOptions,
) -> Outcome | None:
    """Send one ``identify()`` call (in a request thread, which may read and write the
    vendor profiles it learns; one login per user, so these are rare), without the
    browser ids that belong to another user."""
    event, notes = as_sent.identify(delivery)
    reason = lane.adapter.identify_skip_reason(event)
    if reason is not None:
        return Outcome(OutcomeKind.SKIPPED, None, "; ".join([reason, *notes[str(event.id)]]))
    outcome = _attempt(
        lane,
        [delivery],
        stop,
        options,
        lambda: lane.adapter.send_identify(event, lane.send, vendor_profiles.profiles),
    )
    return outcome and outcome.adjusted(notes)


def _sending(adapter: VendorAdapter, credentials: str) -> Send:
    """How a lane sends each request, the extra ones an adapter makes included (a profile
    created again, a session attached): through the HTTP layer, every answer heard by the
    circuit breaker, so a 429's ``Retry-After`` or refused credentials (``credentials``:
    their fingerprint) pause the vendor whichever request met them."""

    def send(request: VendorRequest) -> http.Attempt:
        attempt = http.send(adapter, request)
        flow.breaker.heard(adapter.name, attempt.outcome, credentials=credentials)
        return attempt

    return send


def _attempt(
    lane: _Lane,
    batch: list[Delivery],
    stop: threading.Event | None,
    options: DeliveryOptions,
    send: Callable[[], http.Attempt | Outcome],
) -> Outcome | None:
    """Run ``send`` unless stopping or paused; its outcome, with the breaker told."""
    if not lane.allowed() or not held_claims.start_sending(batch, stop):
        return None
    outcome = _outcome_of(lane.adapter, batch, send)
    flow.breaker.record(
        lane.name,
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


def _record_pause(lane: _Lane) -> None:
    """Write a pause this process began to the database, for the other processes."""
    pause = flow.breaker.take_unrecorded(lane.name)
    if pause is not None:
        pausing.pause_vendor(lane.name, pause.seconds, pause.reason, credentials=pause.credentials)
