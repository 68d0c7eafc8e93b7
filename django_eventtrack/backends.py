"""Delivery backends: what happens once a tracked event's transaction commits.

A backend is any class with this small interface, chosen by
``EVENTTRACK["DELIVERY"]`` as an alias or a dotted path (like ``EMAIL_BACKEND``)::

    class MyBackend:
        def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None: ...
        def close(self, timeout: float | None = None) -> None: ...

``enqueue`` is called after commit with the ids of newly stored events. It must
not raise for a vendor problem and should return quickly: the rows are already
safe in the outbox, so a backend only decides *when* and *where* they are sent.
Whatever it does not finish stays pending for ``manage.py eventtrack_worker``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from django.db import close_old_connections, connections
from django.db.models import Min
from django.utils import timezone
from django.utils.module_loading import import_string

from django_eventtrack import sender
from django_eventtrack.conf import get_config
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery

logger = logging.getLogger("django_eventtrack.backends")

ALIASES = {
    "sync": "django_eventtrack.backends.SyncBackend",
    "thread": "django_eventtrack.backends.ThreadBackend",
    "worker": "django_eventtrack.backends.WorkerBackend",
    "capture": "django_eventtrack.testing.CaptureBackend",
    # Each engine's module holds its task and the backend that enqueues it, so
    # choosing one without its extra installed fails here, at start-up (check E002).
    "celery": "django_eventtrack.tasks.CeleryBackend",
    "tasks": "django_eventtrack.tasks_framework.TasksBackend",
}
#: The longest an idle background sender waits before looking for due retries.
MAX_IDLE_WAIT = 60.0


class DeliveryBackend(Protocol):
    """What ``EVENTTRACK["DELIVERY"]`` names: the built-in backends and yours alike."""

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Start sending these committed events; return quickly, never raise for a vendor."""

    def close(self, timeout: float | None = None) -> None:
        """Stop, waiting at most ``timeout`` seconds for work in flight (at exit, in tests)."""


class SyncBackend:
    """Send in the committing thread: for scripts and tests. One attempt per vendor;
    retries are left to a worker (or the next ``sync`` drain)."""

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


class ThreadBackend:
    """In-process background senders, woken on commit (the default).

    One long-lived thread per active vendor, woken by every commit, so an
    event is picked up by a thread that is already waiting and a slow or
    failing vendor never holds up the others. (A single thread whose rounds
    started a thread per vendor made an event committed during a round wait
    for the slowest vendor's requests before its round could even begin.)

    Fork-safe: the threads belong to the process that started them; a forked
    child (gunicorn, uWSGI, Celery prefork, multiprocessing) starts its own on
    first use and never inherits the parent's. At interpreter exit they stop
    claiming, let in-flight requests finish for at most ``SHUTDOWN_TIMEOUT``
    seconds, and leave everything else pending.
    """

    def __init__(self) -> None:
        self._reset()
        atexit.register(self.close)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wakes: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._pid = os.getpid()

    def enqueue(self, event_ids: Sequence[uuid.UUID]) -> None:
        self._ensure_running()
        for wake in list(self._wakes.values()):
            wake.set()

    def _ensure_running(self) -> None:
        """Start a thread for each active vendor that has none (settings may change)."""
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            if self._stop.is_set() and self.running:
                return  # closing: the stopping threads finish, nothing new starts
            self._stop.clear()
            for vendor in get_config().active_vendors:
                thread = self._threads.get(vendor)
                if thread is not None and thread.is_alive():
                    continue
                wake = self._wakes[vendor] = threading.Event()
                thread = self._threads[vendor] = threading.Thread(
                    target=self._run,
                    args=(vendor, wake),
                    name=f"eventtrack-sender-{vendor}",
                    daemon=True,
                )
                thread.start()

    def _run(self, vendor: str, wake: threading.Event) -> None:
        try:
            while True:
                wake.clear()  # a commit from now on ends the next wait
                if self._stop.is_set():  # close() sets it before waking us
                    break
                try:
                    sender.drain([vendor], stop=self._stop)
                    wait = _seconds_until_next_due()
                except Exception:
                    logger.exception(
                        "vendor=%s: background sender failed; retrying shortly", vendor
                    )
                    wait = get_config().options.poll_interval
                finally:
                    # Reused while CONN_MAX_AGE allows, like a request's connection.
                    close_old_connections()
                wake.wait(wait)
        finally:
            connections.close_all()

    def close(self, timeout: float | None = None) -> None:
        """Stop after in-flight requests, waiting at most ``timeout`` (``SHUTDOWN_TIMEOUT``)."""
        if not self._threads or self._pid != os.getpid():
            return
        self._stop.set()
        for wake in list(self._wakes.values()):
            wake.set()
        deadline = time.monotonic() + (
            get_config().options.shutdown_timeout if timeout is None else timeout
        )
        for thread in list(self._threads.values()):
            thread.join(max(deadline - time.monotonic(), 0.0))
        if self.running:
            logger.warning("background sender still busy at exit; unsent events stay pending")

    @property
    def running(self) -> bool:
        return self._pid == os.getpid() and any(
            thread.is_alive() for thread in list(self._threads.values())
        )


def _seconds_until_next_due() -> float:
    """How long the background sender may sleep before a pending retry comes due."""
    options = get_config().options
    # Only vendors this sender drains: a disabled vendor's leftover rows must not
    # keep it waking every POLL_INTERVAL.
    next_due: datetime | None = Delivery.objects.filter(
        status=Delivery.Status.PENDING, vendor__in=list(get_config().active_vendors)
    ).aggregate(next_due=Min("next_attempt_at"))["next_due"]
    if next_due is None:
        return MAX_IDLE_WAIT
    seconds = (next_due - timezone.now() + timedelta(milliseconds=10)).total_seconds()
    return min(max(seconds, options.poll_interval), MAX_IDLE_WAIT)


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
