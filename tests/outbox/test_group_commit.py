"""``outbox.group_commit``: a SQLite process's sender writes share transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import DatabaseError
from django.utils import timezone

from django_eventtrack.models import Event
from django_eventtrack.outbox import group_commit
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import wait_until


@pytest.mark.django_db(transaction=True)
def test_sender_writes_queued_meanwhile_share_one_transaction_and_fail_alone(
    worker_mode: Sandbox,
) -> None:
    group = group_commit._GroupCommit()
    events = [Event.objects.create(name=f"e{n}", timestamp=timezone.now()) for n in range(4)]
    first_running, release = threading.Event(), threading.Event()
    ran_in: dict[int, int] = {}
    results: dict[int, object] = {}

    def write(n: int) -> Callable[[], int]:
        def run() -> int:
            ran_in[n] = threading.get_ident()
            updated = Event.objects.filter(pk=events[n].pk).update(name=f"written {n}")
            if n == 0:
                first_running.set()
                release.wait(5)
            if n == 2:
                raise DatabaseError("this write fails")
            return updated

        return run

    def writer(n: int) -> None:
        try:
            results[n] = group.write("default", write(n))
        except DatabaseError as exc:
            results[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads[0].start()
    assert first_running.wait(5)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(group._queued) == 3, what="three writes queued behind the first")
    release.set()
    for thread in threads:
        thread.join(5)

    assert [results[0], results[1], results[3]] == [1, 1, 1]
    assert isinstance(results[2], DatabaseError)
    # The three queued meanwhile went in one transaction, run by one thread.
    assert len({ran_in[1], ran_in[2], ran_in[3]}) == 1
    names = dict(Event.objects.values_list("pk", "name"))
    assert [names[event.pk] for event in events] == ["written 0", "written 1", "e2", "written 3"]
