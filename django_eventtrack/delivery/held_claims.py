"""The claims this process's drains hold, so a process about to exit can let them go.

Rows a process claimed wait for their lease to end (a minute or more) before any
other sender may take them. A process stopping with requests in flight need not
make them wait: :func:`surrender` gives back what was never sent and ends the lease
of what is in flight at once. The drains report here what they hold (:func:`hold`,
:func:`drop`) and which requests have started (:func:`sending`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence

from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases

logger = logging.getLogger("django_eventtrack.sender")

#: The claims drains in this process hold, with the ``stop`` event they were given.
_held: dict[uuid.UUID, tuple[leases.Claim, threading.Event | None]] = {}
_held_lock = threading.Lock()
#: Per ``stop`` event, held while a drain given it claims.
_claiming: weakref.WeakKeyDictionary[threading.Event, threading.Lock] = weakref.WeakKeyDictionary()
#: The deliveries whose request has started (by primary key).
_in_flight: set[int] = set()
_in_flight_lock = threading.Lock()


def claim_lock(stop: threading.Event | None) -> threading.Lock:
    """The lock drains stopped by ``stop`` claim under (one of their own without one):
    :func:`surrender` takes it, so a claim under way is held before it looks."""
    if stop is None:
        return threading.Lock()
    with _held_lock:
        return _claiming.setdefault(stop, threading.Lock())


def hold(claim: leases.Claim, stop: threading.Event | None) -> None:
    """A drain stopped by ``stop`` holds ``claim`` until it :func:`drop` s it."""
    with _held_lock:
        _held[claim.token] = (claim, stop)


def drop(tokens: Iterable[uuid.UUID]) -> None:
    """The claims of ``tokens`` are recorded or given back: nothing more to let go."""
    with _held_lock:
        for token in tokens:
            _held.pop(token, None)


def give_back(claim: leases.Claim) -> None:
    """Make what ``claim`` still holds unrecorded due again now; a failure is logged (the
    rows then come due when the lease ends)."""
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


@contextlib.contextmanager
def sending(deliveries: Sequence[Delivery]) -> Iterator[None]:
    """While the request of ``deliveries`` may be under way (entered before a request
    thread checks ``stop``, so :func:`surrender` never misses a started send)."""
    keys = [delivery.pk for delivery in deliveries]
    with _in_flight_lock:
        _in_flight.update(keys)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.difference_update(keys)


def surrender(stop: threading.Event) -> int:
    """Make the deliveries still claimed by drains stopped with ``stop`` due again now,
    for any other sender; how many were in flight. One whose request never started
    is given back; one in flight keeps its claim's token, so its answer is still
    recorded unless another sender has claimed the row meanwhile."""
    # A claim under way is waited for; later drains with this ``stop`` claim nothing (it
    # is set). Else it could commit afterwards, and keep its rows until its lease ends.
    with claim_lock(stop), _held_lock:
        claims = [claim for claim, held_stop in _held.values() if held_stop is stop]
    ended = 0
    for claim in claims:
        with _in_flight_lock:
            flying = [d for d in claim.deliveries if d.pk in _in_flight]
        leases.release(claim, [d for d in claim.deliveries if d.pk not in _in_flight])
        ended += leases.expire(claim, flying)
    return ended


def _forget_all() -> None:
    """A forked child holds none of its parent's claims, nor their requests, and must
    not wait on a lock a parent's thread held at the fork."""
    global _held_lock, _in_flight_lock
    _held.clear()
    _held_lock = threading.Lock()
    _claiming.clear()
    _in_flight.clear()
    _in_flight_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)
