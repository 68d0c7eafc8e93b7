"""Delivery through Django's Tasks framework: the ``tasks`` backend and its two tasks.

``django.tasks`` on Django 6.0+, the ``django_tasks`` backport (``pip install
'django-eventtrack[tasks]'``) on Django 5.2: the import below is the only place
that knows the difference. Any configured Tasks backend runs the sending: the
database backend of ``django-tasks-db`` and its ``db_worker``, RQ, or the
immediate backend in tests.

The tasks are Celery's (:mod:`django_eventtrack.tasks`), with the same names and
arguments: :data:`drain_outbox` for the events of a commit, :data:`sweep_outbox`
for everything due. They are declared on the default queue and enqueued on
``TASKS_QUEUE``, which check ``eventtrack.E002`` validates at start-up
(:meth:`TasksBackend.check_settings`). The Tasks framework has no scheduler: the
sweep is ``manage.py eventtrack_worker --once`` from cron, or :data:`sweep_outbox`
enqueued by the project's own scheduler.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

try:  # Django 6.0+
    from django.tasks import task
except ImportError:
    try:  # the backport, on Django 5.2
        from django_tasks import task  # type: ignore[no-redef,unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "DELIVERY 'tasks' needs Django 6.0+ or the django-tasks backport: "
            f"pip install 'django-eventtrack[tasks]' ({exc})"
        ) from None

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import worker
from django_eventtrack.delivery.backends import HandOffBackend


@task()
def drain_outbox(event_ids: list[str]) -> str:
    """Send the due deliveries of ``event_ids`` (the events of one commit, or of several).

    Claims make it safe to run any number of these at once, and a task run
    twice sends nothing twice. Returns the summary line, the task's result.
    """
    return worker.drain_events(event_ids)


@task()
def sweep_outbox() -> str:
    """Send everything due: retries, and events whose ``drain_outbox`` never ran."""
    return worker.sweep()


class TasksBackend(HandOffBackend):
    """``DELIVERY = "tasks"``: after commit, enqueue :data:`drain_outbox` for the events.

    Enqueued from a thread of its own (see
    :class:`~django_eventtrack.delivery.backends.HandOffBackend`): a Tasks backend that is
    slow or refuses the task (unknown queue, its database or Redis down) never
    holds up the commit; the error is logged and the rows stay pending for the sweep.
    """

    engine = "the Tasks framework"

    @classmethod
    def check_settings(cls) -> None:
        """Raise when the Tasks backend refuses the task on ``TASKS_QUEUE`` (check E002)."""
        _on_configured_queue()

    def hand_off(self, event_ids: Sequence[uuid.UUID]) -> None:
        _on_configured_queue().enqueue([str(event_id) for event_id in event_ids])


def _on_configured_queue() -> Any:
    """:data:`drain_outbox` on ``TASKS_QUEUE``; the Tasks backend validates it here."""
    return drain_outbox.using(queue_name=get_config().tasks_queue)
