"""Delivery backends: what happens once a tracked event's transaction commits.

A backend is any class with this small interface, chosen by
``EVENTTRACK["DELIVERY"]`` as an alias or a dotted path (like ``EMAIL_BACKEND``)::

    class MyBackend:
        def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None: ...
        def close(self, timeout: float | None = None) -> None: ...

``enqueue`` is called after commit with the ids of newly stored events. It must
not raise for a vendor problem and should return quickly: the rows are already
safe in the outbox, so a backend only decides *when* and *where* they are sent.
``close`` is called at interpreter exit (and by ``send_event``): it finishes
what this process started, within ``timeout`` seconds. Whatever a backend does
not finish stays pending for ``manage.py eventtrack_worker``.

Two optional members: ``sends_in_process = True`` says the backend sends from
this process (``send_event`` then reports each vendor's answer instead of
"queued"), and ``start()``, called when a process serves its first request,
starts sending whatever is due before any new event is committed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import DatabaseError, close_old_connections
from django.db.models import Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from django_eventtrack.conf import get_config
from django_eventtrack.core.redaction import redact, truncate
from django_eventtrack.delivery import held_claims, sender
from django_eventtrack.delivery.pacing import Bell, Share
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import fanout

logger = logging.getLogger("django_eventtrack.backends")

ALIASES = {
    "sync": "django_eventtrack.delivery.backends.SyncBackend",
    "thread": "django_eventtrack.delivery.backends.ThreadBackend",
    "worker": "django_eventtrack.delivery.backends.WorkerBackend",
    "capture": "django_eventtrack.testing.CaptureBackend",
    # Each engine's module holds its task and the backend that enqueues it, so
    # choosing one without its extra installed fails here, at start-up (check E002).
    "celery": "django_eventtrack.tasks.CeleryBackend",
    "tasks": "django_eventtrack.delivery.tasks_backend.TasksBackend",
}


class DeliveryBackend(Protocol):
    """What ``EVENTTRACK["DELIVERY"]`` names: the built-in backends and yours alike."""

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Start sending these committed events; return quickly, never raise for a vendor."""

    def close(self, timeout: float | None = None) -> None:
        """Stop, waiting at most ``timeout`` seconds for work in flight (at exit, in tests)."""


class SyncBackend:
    """Send in the committing thread: for scripts and tests. One attempt per vendor;
    retries are left to a worker (or the next ``sync`` drain)."""

    sends_in_process = True

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        sender.drain(event_ids=event_ids)

    def close(self, timeout: float | None = None) -> None:
        return None


class WorkerBackend:
    """Only write rows; ``manage.py eventtrack_worker`` (or cron with ``--once``) sends."""

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


class ProcessBound:
    """Base of the backends whose threads belong to the process that started them.

    ``_reset`` sets the state up afresh: when the backend is created and in a forked
    child (gunicorn, uWSGI, Celery prefork), which must never use its parent's
    threads. ``close`` runs at interpreter exit.
    """

    def __init__(self) -> None:
        self._reset()
        atexit.register(self.close)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        raise NotImplementedError

    def close(self, timeout: float | None = None) -> None:
        raise NotImplementedError


class ThreadBackend(ProcessBound):
    """An in-process background sender, woken on commit (the default).

    One long-lived thread runs the sender loop for every active vendor
    (:func:`sender.serve`), each vendor with request threads of its own, so a slow
    vendor never holds up the others; one thread and one claim per round for all
    vendors keeps what it takes from the process's requests small. It starts with
    the first commit or the first request served (:meth:`start`) and its first
    round sends everything due. A forked child starts its own; at exit
    (:meth:`close`) it sends what this process committed, within
    ``SHUTDOWN_TIMEOUT``. docs/delivery.md says what a user sees.
    """

    sends_in_process = True

    def __init__(self) -> None:
        super().__init__()
        request_started.connect(self._request_started)
        request_finished.connect(self._request_finished)

    def _request_started(self, **kwargs: Any) -> None:
        self._share.request_started()

    def _request_finished(self, **kwargs: Any) -> None:
        self._share.request_finished()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bell = Bell()
        #: What the sender may take while the process serves requests (``SENDER_SHARE``).
        self._share = Share(lambda: get_config().options.sender_share)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: Events committed in this process that may still have deliveries pending.
        self._committed: set[uuid.UUID] = set()
        self._forget_at = FORGET_FINISHED_AT
        #: Counts the sender's finished rounds; :meth:`close` waits on it.
        self._rounds = threading.Condition()
        self._round_count = 0

    def start(self) -> None:
        """Start the sender now; its first round sends whatever is due."""
        self._ensure_running()

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        self._ensure_running()
        with self._lock:
            self._committed.update(event_ids)
        self._bell.ring(fresh=True)

    def _ensure_running(self) -> None:
        """Start the sender thread unless it runs."""
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            if self._stop.is_set() and self.running:
                return  # closing: the stopping thread finishes, nothing new starts
            self._stop.clear()
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="eventtrack-sender", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        sender.serve(
            self._stop,  # close() sets it before ringing
            self._bell,
            share=self._share,
            idle_wait=self._idle_wait,
            after_round=self._round_ended,
        )

    def _idle_wait(self) -> float:
        self._forget_finished()
        return _seconds_until_next_due()

    def _round_ended(self, stats: sender.DrainStats) -> None:
        with self._rounds:
            self._round_count += 1
            self._rounds.notify_all()

    def _forget_finished(self) -> None:
        """Keep the committed ids to those still pending, once they have doubled
        since last time: a long-lived server must not remember every event."""
        with self._lock:
            if len(self._committed) < self._forget_at:
                return
            ids = set(self._committed)
            self._forget_at = len(ids) * 2
        pending = set(_pending_deliveries(ids))
        with self._lock:
            self._committed -= ids - pending
            self._forget_at = max(FORGET_FINISHED_AT, 2 * len(self._committed))

    def close(self, timeout: float | None = None) -> None:
        """Send what this process committed, then stop, within ``timeout`` seconds
        (``SHUTDOWN_TIMEOUT``); called at interpreter exit.

        Waits until every delivery of this process's events is delivered or
        final, or waits for a retry due after the deadline. Then the sender sends
        no new request: it records the answer of every request it sent (those
        still in flight get their vendor's ``CONNECT_TIMEOUT`` + ``TIMEOUT``, since
        a request abandoned unanswered may reach the vendor twice) and gives back
        the rows it never sent. If anything is left, one warning says how much
        and how to send it.
        """
        if not self.running:
            return
        seconds = get_config().options.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        with self._lock:
            committed = set(self._committed)
        try:
            self._wait_for(committed, deadline)
        finally:
            self._stop.set()
            self._bell.ring(fresh=True)
            self._finish(max(deadline, time.monotonic()) + sender.answer_wait())
        _report_unsent(committed, seconds)

    def _finish(self, until: float) -> None:
        """Wait, until ``until`` at most, for the stopped sender to record its answers and
        give back what it never sent; if it is stuck (on a database that does not
        answer), let go of its claims from here (:func:`.held_claims.surrender`)."""
        if self._thread is not None:
            self._thread.join(max(until - time.monotonic(), 0.0))
        if self.running:
            _surrender_claims(self._stop)

    def _wait_for(self, event_ids: set[uuid.UUID], deadline: float) -> None:
        """Until no delivery of ``event_ids`` is in flight or due before ``deadline``."""
        poll = get_config().options.poll_interval
        while event_ids and (remaining := deadline - time.monotonic()) > 0:
            with self._rounds:
                rounds = self._round_count
            try:
                due_by = timezone.now() + timedelta(seconds=remaining)
                if not _pending_deliveries(event_ids, due_by=due_by):
                    return
            except DatabaseError:
                return  # _report_unsent says it
            with self._rounds:  # a round ending (or a while, for other processes' claims)
                self._rounds.wait_for(
                    lambda: self._round_count != rounds,  # noqa: B023 - read while waiting
                    timeout=min(remaining, poll),
                )

    @property
    def running(self) -> bool:
        thread = self._thread
        return self._pid == os.getpid() and thread is not None and thread.is_alive()


class HandOffBackend(ProcessBound):
    """Base of the backends that hand events to a task queue (``celery``, ``tasks``).

    The hand-off runs in a thread of its own, so a broker that is down or slow
    never holds up the commit (Celery retries a publish to a broker that is down
    for about 0.7 s). Events committed meanwhile go out together, up to
    :data:`IDS_PER_TASK` to a task; a failed hand-off is logged and its rows stay
    pending for the sweep. A forked child starts its own thread; at exit
    :meth:`close` waits for what is queued, within ``SHUTDOWN_TIMEOUT``.
    Subclasses implement :meth:`hand_off`.
    """

    #: What is handed to, for log lines ("Celery", "the Tasks framework").
    engine = "the task queue"

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._queued: list[uuid.UUID] = []
        self._handing_off = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def hand_off(self, event_ids: list[uuid.UUID]) -> None:
        """Send one task for ``event_ids``; may block (a broker down), may raise."""
        raise NotImplementedError

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._changed:
            self._queued.extend(event_ids)
            self._changed.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"eventtrack-{type(self).__name__}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queued))
                batch = self._queued[:IDS_PER_TASK]
                del self._queued[:IDS_PER_TASK]
                self._handing_off = len(batch)
            try:
                self.hand_off(batch)
            except Exception as exc:
                logger.warning(
                    "events=%s: could not hand them to %s (%s: %s); they stay pending for "
                    "the sweep",
                    ",".join(map(str, batch)),
                    self.engine,
                    type(exc).__name__,
                    exc,
                )
            finally:
                close_old_connections()
                with self._changed:
                    self._handing_off = 0
                    self._changed.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Wait until everything committed here has been handed off, at most ``timeout``
        seconds (``SHUTDOWN_TIMEOUT``); what is left stays pending for the sweep."""
        if self._pid != os.getpid():
            return
        seconds = get_config().options.shutdown_timeout if timeout is None else timeout
        with self._changed:
            if self._changed.wait_for(lambda: not (self._queued or self._handing_off), seconds):
                return
            left = len(self._queued) + self._handing_off
        logger.warning(
            "%d events were not handed to %s within SHUTDOWN_TIMEOUT (%gs); they stay pending: "
            "the sweep (or `manage.py eventtrack_worker --once`) sends them",
            left,
            self.engine,
            seconds,
        )


#: Events per task handed to Celery or the Tasks framework (one ``IN`` list each).
IDS_PER_TASK = 500
#: How many committed event ids the thread backend remembers before it forgets
#: those whose deliveries are all final.
FORGET_FINISHED_AT = 1000
#: Event ids per query when the thread backend looks its events up (SQLite's
#: default limit on query parameters is 999).
IDS_PER_QUERY = 500


def _pending_deliveries(
    event_ids: Iterable[uuid.UUID], *, due_by: datetime | None = None
) -> list[uuid.UUID]:
    """The event id of each pending delivery of ``event_ids``, counting those not
    written yet (one per vendor in their event's routes, all due); with ``due_by``,
    only deliveries claimed (in flight) or due by then."""
    ids = list(event_ids)
    found: list[uuid.UUID] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        # The events not yet routed first: one a sender routes between the two queries
        # counts twice for a moment, never not at all.
        for pk, routes in fanout.unrouted(chunk).values_list("pk", "routes"):
            found += [pk] * (len(routes) if isinstance(routes, dict) else 1)
        rows = Delivery.objects.filter(event_id__in=chunk, status=Delivery.Status.PENDING)
        if due_by is not None:
            rows = rows.filter(Q(claim_token__isnull=False) | Q(next_attempt_at__lte=due_by))
        found += rows.values_list("event_id", flat=True)
    return found


def _surrender_claims(stop: threading.Event) -> None:
    try:
        held_claims.surrender(stop)
    except DatabaseError as exc:
        logger.warning(
            "could not end the leases of this process's sender (%s); their deliveries "
            "come due when the lease ends",
            _database_error(exc),
        )


def _database_error(exc: DatabaseError) -> str:
    """``exc`` for a log line: its class and the database's words on one line, with every
    credential the settings hold masked (the vendors', the metrics token, the databases'
    passwords)."""
    config = get_config()
    secrets = [secret for vendor in config.vendors.values() for secret in vendor.secrets]
    secrets += [config.metrics_token]
    secrets += [str(database.get("PASSWORD") or "") for database in settings.DATABASES.values()]
    return truncate(redact(" ".join(f"{type(exc).__name__}: {exc}".split()), secrets))


def _report_unsent(event_ids: set[uuid.UUID], seconds: float) -> None:
    """The one line a stopping process logs about its events still pending."""
    if not event_ids:
        return
    try:
        pending = _pending_deliveries(event_ids)
    except DatabaseError as exc:
        logger.warning(
            "could not check which events of this process were sent (%s); run "
            "`manage.py eventtrack_worker --once` to send any left pending",
            _database_error(exc),
        )
        return
    if not pending:
        return
    logger.warning(
        "%d deliveries of events tracked by this process were not sent within "
        "SHUTDOWN_TIMEOUT (%gs); they stay pending: run `manage.py eventtrack_worker` "
        "(or `eventtrack_worker --once` from cron) to send them",
        len(pending),
        seconds,
    )


def _seconds_until_next_due() -> float:
    """How long the background sender may sleep before a pending retry comes due."""
    options = get_config().options
    # Only vendors this sender drains: a disabled vendor's leftover rows must not
    # keep it waking every POLL_INTERVAL.
    if fanout.unrouted().exists():
        return options.poll_interval
    next_due: datetime | None = Delivery.objects.filter(
        status=Delivery.Status.PENDING, vendor__in=list(get_config().active_vendors)
    ).aggregate(next_due=Min("next_attempt_at"))["next_due"]
    if next_due is None:
        return sender.MAX_IDLE_WAIT
    seconds = (next_due - timezone.now() + timedelta(milliseconds=10)).total_seconds()
    return min(max(seconds, options.poll_interval), sender.MAX_IDLE_WAIT)


_started_in: int | None = None


def start_on_first_request(**kwargs: Any) -> None:
    """``request_started`` receiver: start the backend's senders (``start()``) when a
    process serves its first request, so rows left by a process that stopped and
    retries coming due are sent without waiting for a new event. One comparison
    per request after the first; a forked child starts its own."""
    global _started_in
    if _started_in == os.getpid():
        return
    _started_in = os.getpid()
    try:
        start = getattr(get_backend(), "start", None)
        if start is not None:
            start()
    except Exception:
        logger.exception("the delivery backend could not start; it starts on the next commit")


def notify(event_ids: Sequence[uuid.UUID]) -> None:
    """Tell the configured backend that ``event_ids`` are due; never raises.

    The rows are already safe in the outbox, so a failing backend (a broker
    down, a bad dotted path) only delays them until a worker or sweep runs.
    """
    try:
        get_backend().enqueue(event_ids)
    except Exception:
        logger.exception(
            "events=%s: the delivery backend failed; they stay pending for the worker",
            ",".join(map(str, event_ids)),
        )


_backends: dict[str, DeliveryBackend] = {}
_backends_lock = threading.Lock()


def get_backend(name: str | None = None) -> DeliveryBackend:
    """The backend instance for ``name`` (default: the ``DELIVERY`` setting), one per process."""
    name = name or get_config().delivery
    with _backends_lock:
        backend = _backends.get(name)
        if backend is None:
            backend = _backends[name] = load_backend(name)()
        return backend


def load_backend(name: str) -> type[DeliveryBackend]:
    path = ALIASES.get(name, name)
    try:
        backend: type[DeliveryBackend] = import_string(path)
    except Exception as exc:
        if name in ALIASES:
            # A built-in engine missing its extra, or refusing our task (a Tasks
            # backend whose QUEUES lacks TASKS_QUEUE): the module says which.
            raise ConfigurationError(
                f'EVENTTRACK["DELIVERY"] (or EVENTTRACK_DELIVERY) is {name!r}, whose backend '
                f"cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(exc, ImportError):
            raise
        raise ConfigurationError(
            f'EVENTTRACK["DELIVERY"] (or EVENTTRACK_DELIVERY) is {name!r}, which is neither '
            f"one of {', '.join(ALIASES)} nor an importable class path ({exc})"
        ) from None
    return backend
