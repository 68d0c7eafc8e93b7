"""Celery delivery: the ``celery`` backend and the two tasks its workers run.

This module is named ``tasks`` on purpose: the standard Celery-with-Django setup
calls ``app.autodiscover_tasks()``, which imports every installed app's
``tasks`` module, so a worker started with ``celery -A proj worker`` knows these
tasks with no configuration of ours. (Django's Tasks framework finds a task by
its dotted path instead, so its two tasks, with the same names and arguments,
live in :mod:`django_eventtrack.delivery.tasks_backend`.)

``DELIVERY = "celery"`` sends a :func:`drain_outbox` task after each commit,
carrying the ids of its events. The outbox stays the source of truth: a message
that never reaches the broker or is lost with a killed worker costs no event,
because :func:`sweep_outbox`, run by Celery beat (or ``manage.py
eventtrack_worker --once`` from cron), sends whatever is still due.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

try:
    from celery import shared_task
except ImportError as exc:
    raise ImportError(
        f"DELIVERY 'celery' needs Celery: pip install 'django-eventtrack[celery]' ({exc})"
    ) from None

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import worker
from django_eventtrack.delivery.backends import HandOffBackend


@shared_task(  # type: ignore[untyped-decorator]  # Celery ships no type hints
    name="django_eventtrack.drain_outbox", acks_late=True, ignore_result=True
)
def drain_outbox(event_ids: list[str]) -> str:
    """Send the due deliveries of ``event_ids`` (the events of one commit, or of several).

    Acknowledged only once it returns (``acks_late``), so a broker redelivers it
    if the worker dies first; sending twice is prevented by the outbox's claims,
    not by the broker. Returns the summary line Celery logs.
    """
    return worker.drain_events(event_ids)


@shared_task(  # type: ignore[untyped-decorator]  # Celery ships no type hints
    name="django_eventtrack.sweep_outbox", acks_late=True, ignore_result=True
)
def sweep_outbox() -> str:
    """Send everything due: retries, and events whose ``drain_outbox`` never ran.

    Schedule it with Celery beat (every minute or so). Several sweeps and drains
    may overlap safely: each delivery is claimed by one of them.
    """
    return worker.sweep()


class CeleryBackend(HandOffBackend):
    """``DELIVERY = "celery"``: after commit, send a :func:`drain_outbox` task.

    The task goes to ``CELERY_QUEUE`` when set, otherwise wherever the Celery
    app routes it (``task_routes``, else ``task_default_queue``). It is sent from
    a thread of its own (see :class:`~django_eventtrack.delivery.backends.HandOffBackend`):
    if the broker cannot be reached, Celery's publish retries run out there and
    the error is logged; the rows stay pending for the sweep.
    """

    engine = "Celery"

    def hand_off(self, event_ids: Sequence[uuid.UUID]) -> None:
        drain_outbox.apply_async(
            args=([str(event_id) for event_id in event_ids],),
            queue=get_config().celery_queue or None,
        )
