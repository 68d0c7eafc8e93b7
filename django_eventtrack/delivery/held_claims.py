"""The claims this process's drains hold, and what went out of them, so that whatever
stops a drain can let them go.

A drain that stops records every answer it got and gives back what it never sent
(:mod:`.sender`). A process exiting while one of its drains cannot (stuck on a
database that does not answer) lets go of that drain's claims from another thread
(:func:`surrender`): what was never sent is given back, due again now; what was sent
keeps its claim's token, so an answer that still comes in is recorded, but is due
again now too, rather than when the lease ends. The drains report here what they
hold (:class:`Holdings`, renewed while they work: :meth:`Holdings.renew`) and what they
send (:func:`start_sending`), and write under :func:`writing`, which :func:`surrender`
takes: the two never write the same rows at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TypeVar

from django.db import DatabaseError, close_old_connections

from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases

logger = logging.getLogger("django_eventtrack.sender")

T = TypeVar("T")

#: The claims drains in this process hold, with the ``stop`` event they were given.
_held: dict[uuid.UUID, tuple[leases.Claim, threading.Event | None]] = {}
_held_lock = threading.Lock()
#: Per ``stop`` event, held while a drain given it writes to the database.
_writing: weakref.WeakKeyDictionary[threading.Event, threading.Lock] = weakref.WeakKeyDictionary()
#: The deliveries whose request has started (by primary key), until their claim is dropped.
_sent: set[int] = set()
_sent_lock = threading.Lock()

#: Seconds to wait before each new try of a write that let claimed rows go, after the
#: database refused it (a restart, a lock held too long): about 3 s in all, after which
#: the rows come due when their lease ends.
RETRY_WAITS = (0.2, 0.4, 0.8, 1.6)


def writing(stop: threading.Event | None) -> threading.Lock:
    """The lock drains stopped by ``stop`` write under (one of their own without one):
    :func:`surrender` takes it, so it never writes a claim's rows while a drain does,
    and a claim under way is made before it looks."""
    if stop is None:
        return threading.Lock()
    with _held_lock:
        return _writing.setdefault(stop, threading.Lock())


def hold(claim: leases.Claim, stop: threading.Event | None) -> None:
    """A drain stopped by ``stop`` holds ``claim`` until it :func:`drop` s it."""
    with _held_lock:
        _held[claim.token] = (claim, stop)


def drop(tokens: Iterable[uuid.UUID]) -> None:
    """The claims of ``tokens`` are recorded or given back: nothing more to let go."""
    with _held_lock:
        claims = [held[0] for token in tokens if (held := _held.pop(token, None))]
    with _sent_lock:
        _sent.difference_update(delivery.pk for claim in claims for delivery in claim.deliveries)


def start_sending(deliveries: Sequence[Delivery], stop: threading.Event | None) -> bool:
    """Whether the request of ``deliveries`` may start: not once ``stop`` is set. Marks
    them sent, under the lock :func:`surrender` reads them with, so it never gives
    back as unsent a delivery whose request started."""
    with _sent_lock:
        if stop is not None and stop.is_set():
            return False
        _sent.update(delivery.pk for delivery in deliveries)
        return True


def give_back(claim: leases.Claim) -> int:
    """Let go of what ``claim`` still holds unrecorded: what was never sent is due again
    now, what was sent too but with the claim's token kept (its answer may still be
    recorded); how many were sent. Retried when the database refuses (then logged:
    the rows come due when their lease ends)."""
    try:
        return retried(lambda: _let_go(claim))
    except DatabaseError as exc:
        logger.error(
            "could not give back %d claimed deliveries (%s); they come due again when "
            "their lease ends",
            len(claim.deliveries),
            type(exc).__name__,
        )
        return 0


def _let_go(claim: leases.Claim) -> int:
    with _sent_lock:
        sent = [delivery for delivery in claim.deliveries if delivery.pk in _sent]
        unsent = [delivery for delivery in claim.deliveries if delivery.pk not in _sent]
    leases.release(claim, unsent)  # recorded ones no longer carry its token
    return leases.expire(claim, sent)


def retried(write: Callable[[], T]) -> T:
    """``write()``, tried again after :data:`RETRY_WAITS` while the database refuses it;
    the last refusal is raised."""
    for wait in RETRY_WAITS:
        try:
            return write()
        except DatabaseError as exc:
            logger.warning(
                "a write of claimed deliveries failed (%s); trying again in %.1fs",
                type(exc).__name__,
                wait,
            )
            close_old_connections()  # a connection the database dropped is not used again
            time.sleep(wait)
    return write()


def surrender(stop: threading.Event, timeout: float = 1.0) -> int:
    """Let go of the claims of drains stopped with ``stop`` (:func:`give_back`), once no
    such drain writes (at most ``timeout`` seconds: else they come due when their lease
    ends); how many deliveries were sent. Drains given ``stop`` claim nothing more (it
    is set): a claim under way is made first, and let go of too."""
    lock = writing(stop)
    if not lock.acquire(timeout=timeout):
        logger.warning(
            "a sender of this process is still writing; its claimed deliveries come due "
            "again when their lease ends"
        )
        return 0
    try:
        with _held_lock:
            claims = [claim for claim, held_stop in _held.values() if held_stop is stop]
        return sum(give_back(claim) for claim in claims)
    finally:
        lock.release()


class Holdings:
    """The claims one drain holds (stopped by ``stop``), the deliveries of each not yet
    recorded, and their heartbeat: every third of ``lease``, one UPDATE renews them all
    (:func:`.leases.renew`), so they stay the drain's however long its requests take,
    while a dead sender's come due within the lease. The drain writes under
    :attr:`writing`."""

    def __init__(self, stop: threading.Event | None, lease: timedelta) -> None:
        self.stop = stop
        self.lease = lease
        self.writing = writing(stop)
        #: Per claim's token: the claim and its deliveries not yet recorded, by primary key.
        self.claims: dict[uuid.UUID, tuple[leases.Claim, dict[int, Delivery]]] = {}
        self.renew_at = 0.0

    def __bool__(self) -> bool:
        return bool(self.claims)

    def hold(self, claim: leases.Claim) -> None:
        if not self.claims:
            self.renew_at = time.monotonic() + self.lease.total_seconds() / 3
        self.claims[claim.token] = (claim, {d.pk: d for d in claim.deliveries})
        hold(claim, self.stop)

    def recorded(self, claim: leases.Claim, deliveries: Sequence[Delivery]) -> None:
        """``deliveries`` of ``claim`` have their outcome; a claim all recorded is done."""
        unrecorded = self.claims[claim.token][1]
        for delivery in deliveries:
            unrecorded.pop(delivery.pk, None)
        if not unrecorded:
            del self.claims[claim.token]
            drop([claim.token])

    def renewal_in(self) -> float:
        """Seconds until the claims held are next renewed (0: now)."""
        return max(self.renew_at - time.monotonic(), 0.0)

    def renew(self) -> None:
        """The heartbeat, when it is due: not held back by the drain's share of a busy
        process, as a lease that lapses lets another sender send the same rows."""
        if not self.claims or self.renewal_in():
            return
        held = [d for _, unrecorded in self.claims.values() for d in unrecorded.values()]
        with self.writing:
            leases.renew(list(self.claims), held, self.lease)
        self.renew_at = time.monotonic() + self.lease.total_seconds() / 3

    def let_go(self) -> None:
        """Give back what is still held (:func:`give_back`), once the drain has ended."""
        with self.writing:
            for claim, _ in self.claims.values():
                give_back(claim)
            drop(self.claims)


def _forget_all() -> None:
    """A forked child holds none of its parent's claims, nor their requests, and must
    not wait on a lock a parent's thread held at the fork."""
    global _held_lock, _sent_lock
    _held.clear()
    _held_lock = threading.Lock()
    _writing.clear()
    _sent.clear()
    _sent_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)
