"""When a sender works: woken by a :class:`Bell`, within its :class:`Share` of the
process's time, and at the database at most every :data:`DATABASE_INTERVAL`
(:class:`Pace`, one per drain).

The ``thread`` backend sends from the web process itself, so its sender must leave
the pages their time; a worker's sender has no pages to leave it to, and its plain
:class:`Share` never makes it wait. docs/performance.md has the figures.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The shortest time between two rounds of a drain's database work (a claim, the
#: outcomes come in meanwhile): under load, a round covers the commits and answers of
#: that time instead of one each, and the writes leave the database to the requests.
DATABASE_INTERVAL = 0.02


class Bell:
    """What a waiting drain wakes up for: a request finished, or (``fresh``) new
    events were committed, which the ``thread`` backend rings on every commit.

    A commit wakes the drain only when it waits for nothing sooner: a drain that
    wakes anyway (an answer, its next turn at the database or of its share) sees the
    commit then, and a busy server's pages do not pay a thread switch per commit.
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

    Request threads and the sender's threads take turns on one interpreter lock, so
    what the sender spends the pages lose. While the process is busy (serving a
    request, and its other threads keep at least :attr:`BUSY` of a CPU busy), the
    sender may use ``fraction`` of the time and waits (:meth:`delay`) when it has
    used more; it catches up at full speed once the requests leave time.
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


@dataclass
class Pace:
    """When one drain works: woken by its ``bell``, within its ``share`` of the
    process's time, and at most every :data:`DATABASE_INTERVAL` at the database."""

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
