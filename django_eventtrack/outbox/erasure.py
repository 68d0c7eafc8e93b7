"""Forgetting a person (``forget()``), and taking it back (``unforget()``).

Everything here happens in the caller's transaction, so it commits or rolls
back as one: the person's ids marked forgotten (``track()`` stores nothing for
them from then on), whatever was still to be sent about them skipped
("erased"), their stored events scrubbed (the rows kept for counts), what we
remember of them at the vendors (profiles, sessions' owners) deleted, and an
:class:`~django_eventtrack.models.ErasureRequest` written with a task per vendor:
what staff must delete there, since none of the vendors offers a deletion API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from django_eventtrack.conf import get_config
from django_eventtrack.models import ErasureRequest, ErasureTask, Event
from django_eventtrack.outbox import retention, subjects, vendor_profiles
from django_eventtrack.outbox.subjects import Ids

#: How long staff have to finish a vendor's erasure task: the GDPR's one month.
TASK_DUE = timedelta(days=30)


def forget(ids: Ids, *, source: str = "") -> ErasureRequest:
    """Forget the person with ``ids`` ((identity key, id) pairs); see the module.

    The ids we remember for them at the vendors (their profiles, the sessions those
    own) count as theirs too. The first write marks them forgotten, so on SQLite the
    transaction holds the write lock from its start and no ``track()`` for them
    slips in between.
    """
    everything = [*ids, *vendor_profiles.ids_of_person(ids)]
    subjects.mark(everything, forgotten=True)
    skipped = subjects.settle_pending(everything, None, subjects.ERASED)
    scrubbed = retention.erase(Event.objects.filter(subjects.events_of(everything)))
    deleted = vendor_profiles.delete_person(everything)
    request = ErasureRequest.objects.create(
        id_keys=", ".join(dict.fromkeys(key for key, _ in everything)),
        source=source[:64],
        events_scrubbed=scrubbed,
        deliveries_skipped=skipped,
        profiles_deleted=deleted,
    )
    _write_tasks(request, everything)
    return request


def _write_tasks(request: ErasureRequest, ids: Ids) -> None:
    """A task per vendor that could hold the person's data: every configured one."""
    config = get_config()
    due = request.created_at + TASK_DUE
    ErasureTask.objects.bulk_create(
        [
            ErasureTask(
                request=request,
                vendor=name,
                instructions=config.adapter(name).erasure_task(ids),
                due_at=due,
            )
            for name in config.active_vendors
        ]
    )


def unforget(ids: Ids) -> int:
    """Track the person with ``ids`` again (they signed up again and consented); how
    many of the ids were forgotten. What was erased stays erased."""
    forgotten = subjects.forgotten(ids)
    subjects.mark(ids, forgotten=False)
    return forgotten


@dataclass(frozen=True)
class Done:
    """What :func:`mark_done` did."""

    done: int
    #: Already done before.
    already: int


def mark_done(tasks: list[ErasureTask], by: str) -> Done:
    """Staff did ``tasks`` at their vendors: mark them done, by whom, and empty their
    instructions (the vendor's ids for the person are no longer needed)."""
    todo = [task.pk for task in tasks if task.status == ErasureTask.Status.TODO]
    done = ErasureTask.objects.filter(pk__in=todo, status=ErasureTask.Status.TODO).update(
        status=ErasureTask.Status.DONE, done_at=timezone.now(), done_by=by[:150], instructions=""
    )
    return Done(done=done, already=len(tasks) - len(todo))
