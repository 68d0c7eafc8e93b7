"""The outbox worker: what ``manage.py eventtrack_worker`` runs, as a library.

:class:`Worker` drains the outbox either once (``--once``, for cron) or until
stopped (a long-running service under systemd, Docker or Kubernetes), with the
same loop as the ``thread`` backend (:func:`~django_eventtrack.delivery.sender.serve`):
one drain for every vendor, in which each vendor has requests in flight of its own,
so a vendor that is slow or down never delays the others' events. Between rounds
the loop closes its database connections (honouring ``CONN_MAX_AGE``), so a
restarted database costs one failed round, not the worker.

Stopping is graceful: :meth:`Worker.stop` (or SIGTERM/SIGINT under
:func:`stop_on_signals`) lets in-flight requests finish, gives claimed but
unsent deliveries back, and returns. Anything interrupted harder (SIGKILL, a
power cut) is picked up by any worker once its claim's lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType

from django.db import close_old_connections

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import sender
from django_eventtrack.delivery.pacing import Bell
from django_eventtrack.delivery.sender import DrainStats
from django_eventtrack.outbox.routing import target_vendors

logger = logging.getLogger("django_eventtrack.worker")

#: The signals that ask a running worker to stop gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Worker:
    """Drain the outbox for ``vendors`` (default: every configured vendor).

    Naming an unknown or unconfigured vendor raises
    :class:`~django_eventtrack.errors.ConfigurationError` up front, as does
    having no vendor configured at all. ``totals`` adds up every round.
    """

    def __init__(self, vendors: Iterable[str] | None = None) -> None:
        self.vendors = target_vendors(vendors)
        self.stopping = threading.Event()
        self._bell = Bell()
        self.totals = DrainStats()

    def run_once(self) -> DrainStats:
        """Send everything due now (retries coming due meanwhile included), then return."""
        try:
            return self._drain(self.vendors)
        finally:
            close_old_connections()

    def _drain(self, vendors: list[str]) -> DrainStats:
        """One drain; what it did counts in the totals even when it fails half-way
        (a database fault after some outcomes were recorded)."""
        stats = DrainStats()
        try:
            sender.drain(vendors, stop=self.stopping, stats=stats)
        finally:
            self.totals.merge(stats)
        return stats

    def run(self) -> DrainStats:
        """Drain continuously until :meth:`stop` is called; returns the totals.

        It runs the ``thread`` backend's loop (:func:`sender.serve`): one drain for
        every vendor, each vendor with requests in flight of its own. Idle, it looks
        for due deliveries every ``POLL_INTERVAL`` seconds: events written by other
        processes cannot wake it, so it polls (one indexed read).
        """
        logger.info(
            "worker started: pid=%d vendors=%s poll_interval=%gs",
            os.getpid(),
            ",".join(self.vendors),
            get_config().options.poll_interval,
        )
        sender.serve(
            self.stopping,
            self._bell,
            vendors=self.vendors,
            idle_wait=lambda: get_config().options.poll_interval,
            after_round=self._round_ended,
        )
        logger.info("worker stopped: pid=%d %s", os.getpid(), stats_line(self.totals))
        return self.totals

    def stop(self) -> None:
        """Ask :meth:`run` to return once in-flight requests have finished."""
        self.stopping.set()
        self._bell.ring(fresh=True)

    def _round_ended(self, stats: DrainStats) -> None:
        self.totals.merge(stats)
        if stats.sent or stats.paused_vendors:
            logger.info("round: %s", stats_line(stats))


def drain_events(event_ids: Sequence[str]) -> str:
    """What a ``drain_outbox`` task runs, on Celery and the Tasks framework alike: send
    the due deliveries of ``event_ids`` (as a task carries them, strings); its summary line."""
    return stats_line(sender.drain(event_ids=[uuid.UUID(event_id) for event_id in event_ids]))


def sweep() -> str:
    """What a ``sweep_outbox`` task runs: send everything due; its summary line."""
    return stats_line(sender.drain())


def stats_line(stats: DrainStats) -> str:
    """One line for logs and ``--once``: ``delivered 4, retried 0, failed 0 (4 requests)``."""
    requests = f"{stats.requests} request{'' if stats.requests == 1 else 's'}"
    line = (
        f"delivered {stats.delivered}, retried {stats.retried}, failed {stats.failed} ({requests})"
    )
    if stats.skipped:
        line += f"; skipped {stats.skipped}"
    if stats.paused_vendors:
        line += f"; paused: {', '.join(sorted(stats.paused_vendors))}"
    return line


@contextlib.contextmanager
def stop_on_signals(worker: Worker) -> Iterator[None]:
    """SIGTERM or SIGINT stops ``worker`` gracefully; a second one acts as usual (kills).

    Only the main thread may install signal handlers. The previous handlers are
    restored on exit.
    """
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info(
            "received %s: finishing in-flight requests, then stopping",
            signal.Signals(signum).name,
        )
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)
        # Not worker.stop() here: the handler runs in the main thread, which may
        # be holding the event's internal lock at this very instant.
        threading.Thread(target=worker.stop, name="eventtrack-worker-stop").start()

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def log_to_stderr_unless_configured(verbosity: int) -> None:
    """Show the worker's log lines on stderr when the project configured no logging for them.

    Under systemd or Docker stderr is the journal; a project with its own
    ``LOGGING`` for ``django_eventtrack`` (or the root logger) is left alone.
    """
    package_logger = logging.getLogger("django_eventtrack")
    if package_logger.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger.addHandler(handler)
    levels = {0: logging.WARNING, 1: logging.INFO}
    package_logger.setLevel(levels.get(verbosity, logging.DEBUG))
