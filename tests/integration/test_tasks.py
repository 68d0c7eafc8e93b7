"""The ``tasks`` backend on Django's Tasks framework (``django.tasks`` on Django 6, the
``django_tasks`` backport on 5.2): in process with the immediate backend, then with the
database backend of ``django-tasks-db`` and real ``db_worker`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from django.db import transaction
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.delivery import backends, flow, sender
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery, Event
from django_eventtrack.monitoring import status
from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import (
    RECOVERY,
    Database,
    Processes,
    deliver_scenario,
    duplicates_of_committed,
    small_claims_and_slow_vendors,
    statuses,
    track_scenario,
)
from tests.integration.track import COMMITTED
from tests.processes.helpers import VENDORS, received, wait_until

try:  # the Tasks framework's default backend, to build a failing one on
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:
    try:
        from django_tasks.backends.immediate import (  # type: ignore[no-redef,assignment,unused-ignore]
            ImmediateBackend,
        )
    except ImportError:  # no Tasks framework: the tests that need it skip
        ImmediateBackend = object  # type: ignore[assignment,misc,unused-ignore]

ALL_DELIVERED = {"delivered": len(COMMITTED) * len(VENDORS)}
TASK_RESULTS = "django_tasks_database_dbtaskresult"


class Rollback(Exception):
    """Raised to roll a test's transaction back."""


# --- in process: the immediate backend (Django's default TASKS) -----------------------------


@pytest.fixture
def immediate(settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """DELIVERY="tasks" on the default Tasks backend, which runs a task as it is enqueued."""
    pytest.importorskip("django_eventtrack.delivery.tasks_backend", reason="needs django.tasks")
    monkeypatch.setattr(backends, "_backends", {})
    flow.breaker.reset()
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "tasks"}
    return sandbox


@pytest.mark.django_db(transaction=True)
def test_immediate_backend_sends_after_commit_and_never_after_rollback(
    immediate: Sandbox,
) -> None:
    with transaction.atomic():
        track("order.placed", {"n": 0, "order": "O0"}, session="S0")
        assert immediate.requests() == []  # nothing before commit
    try:
        with transaction.atomic():
            track("order.placed", {"n": 1, "order": "O1"}, session="S1")
            raise Rollback
    except Rollback:
        pass
    backends.get_backend().close()  # what exit does: waits for the hand-off

    for vendor in VENDORS:
        assert received(immediate, vendor) == {0: 1}, vendor
    assert list(Delivery.objects.values_list("status", flat=True)) == ["delivered"] * len(VENDORS)
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_queue_the_tasks_backend_refuses_leaves_events_pending(
    immediate: Sandbox, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The immediate backend accepts only the "default" queue unless its QUEUES says more.
    settings.EVENTTRACK = {**settings.EVENTTRACK, "TASKS_QUEUE": "eventtrack"}

    with transaction.atomic():
        track("order.placed", {"n": 0, "order": "O0"}, session="S0")
    backends.get_backend().close()

    assert "could not hand them to the Tasks framework" in caplog.text
    assert "they stay pending for the sweep" in caplog.text
    assert "Queue 'eventtrack' is not valid for backend" in caplog.text
    assert_only_pending()
    assert immediate.requests() == []


@pytest.mark.django_db(transaction=True)
def test_the_sweep_task_sends_everything_due(immediate: Sandbox, settings: Settings) -> None:
    """``sweep_outbox`` is the sweep for a project whose own scheduler enqueues it, as
    on Celery: everything due, whoever tracked it."""
    from django_eventtrack.delivery import tasks_backend

    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}  # nothing handed off
    for n in range(2):
        track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
    assert immediate.requests() == []

    result = tasks_backend.sweep_outbox.enqueue()

    assert result.return_value.startswith(f"delivered {2 * len(VENDORS)}, retried 0, failed 0")
    for vendor in VENDORS:
        assert received(immediate, vendor) == {0: 1, 1: 1}, vendor


def assert_only_pending() -> None:
    """Nothing sent, nothing final: every event waits (its deliveries not even written)."""
    totals = status.summary().totals
    assert (totals.pending, totals.delivered_last_hour, totals.failed) == (totals.due, 0, 0)
    assert totals.pending > 0
    assert not Delivery.objects.exclude(status="pending").exists()


class UnreachableBackend(ImmediateBackend):
    """A Tasks backend whose broker is down: every enqueue waits, then fails, as a
    client retrying an unreachable server does."""

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.7)  # the outage being simulated, not a wait for work
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.django_db(transaction=True)
def test_a_tasks_backend_that_is_down_never_slows_the_commit(
    immediate: Sandbox, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TASKS = {"default": {"BACKEND": f"{__name__}.UnreachableBackend"}}
    durations = []
    for n in range(3):
        started = time.monotonic()
        with transaction.atomic():
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
        durations.append(time.monotonic() - started)
    assert max(durations) < 0.05, durations

    backends.get_backend().close()
    assert "could not hand them to the Tasks framework (ConnectionError" in caplog.text
    assert_only_pending()
    assert immediate.requests() == []
    sender.drain()  # the sweep
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_compatibility_import_prefers_django_tasks() -> None:
    module = pytest.importorskip(
        "django_eventtrack.delivery.tasks_backend", reason="needs django.tasks"
    )
    try:
        import django.tasks as expected
    except ImportError:
        import django_tasks as expected  # type: ignore[no-redef,unused-ignore]
    assert module.task is expected.task


def test_no_tasks_framework_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # What Django 5.2 without the backport looks like.
    monkeypatch.setitem(sys.modules, "django.tasks", None)
    monkeypatch.setitem(sys.modules, "django_tasks", None)
    monkeypatch.delitem(sys.modules, "django_eventtrack.delivery.tasks_backend", raising=False)
    with pytest.raises(ConfigurationError, match=r"pip install 'django-eventtrack\[tasks\]'"):
        backends.load_backend("tasks")


# --- real processes: django-tasks-db and its db_worker ---------------------------------------


@pytest.fixture
def tasks(processes: Processes) -> Processes:
    """Processes configured for DELIVERY="tasks" on the "eventtrack" queue of the database
    Tasks backend (tests/integration/proj/settings.py lists that queue in its QUEUES)."""
    processes.env |= {"EVENTTRACK_DELIVERY": "tasks", "EVENTTRACK_TASKS_QUEUE": "eventtrack"}
    return processes


def start_db_worker(processes: Processes, name: str) -> subprocess.Popen[bytes]:
    """``manage.py db_worker --queue-name eventtrack``, once it is polling."""
    process = processes.start(
        name,
        *("-m", "django", "db_worker", "--queue-name", "eventtrack", "--interval", "0.1"),
        *("--no-startup-delay", "--no-reload", "--worker-id", name, "--verbosity", "1"),
    )
    processes.wait_output(process, "Starting worker", timeout=30)
    return process


@pytest.mark.integration
def test_check_reports_a_queue_the_tasks_backend_refuses(tasks: Processes) -> None:
    assert "eventtrack.E002" not in tasks.run("-m", "django", "check", "--tag", "eventtrack")
    # The backend's QUEUES are ["default", "eventtrack"]: "bulk" is refused at start-up.
    with pytest.raises(AssertionError) as refused:
        tasks.run("-m", "django", "check", "--tag", "eventtrack", EVENTTRACK_TASKS_QUEUE="bulk")
    assert "eventtrack.E002" in str(refused.value)
    assert "Queue 'bulk' is not valid for backend" in str(refused.value)


def task_results(database: Database) -> list[tuple[str, list[str]]]:
    """(status, worker ids) of every task the database Tasks backend holds."""
    rows = database.query(f"SELECT status, worker_ids FROM {TASK_RESULTS}")  # noqa: S608
    return [(status, json.loads(ids) if isinstance(ids, str) else ids) for status, ids in rows]


@pytest.mark.integration
def test_db_workers_deliver_committed_events_once_and_rolled_back_ones_never(
    tasks: Processes, outbox_database: Database, sandbox: Sandbox
) -> None:
    workers = [start_db_worker(tasks, f"db-worker-{number}") for number in range(2)]

    tracking, elapsed = deliver_scenario(tasks, outbox_database, sandbox)
    wait_until(
        lambda: {status for status, _ in task_results(outbox_database)} == {"SUCCESSFUL"},
        timeout=10,
        what="the last tasks to be marked successful",
    )
    for worker in workers:
        assert tasks.stop(worker) == 0, tasks.output(worker)
    results = task_results(outbox_database)
    shares = Counter(ids[0] for _, ids in results)
    # At most one task per committed transaction: those committed while a task was
    # being enqueued go out together in the next one.
    assert 1 <= len(results) <= len(COMMITTED)
    print(
        f"tasks (db_worker): {len(COMMITTED)} events x {len(VENDORS)} vendors through 2 workers "
        f"(tasks {sorted(shares.values())}), 0 duplicates, {tracking:.1f}s tracking, "
        f"{elapsed:.1f}s to deliver all"
    )


@pytest.mark.integration
def test_a_db_worker_killed_mid_run_loses_nothing(
    tasks: Processes, outbox_database: Database, sandbox: Sandbox
) -> None:
    small_claims_and_slow_vendors(tasks, sandbox)
    doomed = start_db_worker(tasks, "doomed")

    started = time.monotonic()
    track_scenario(tasks)
    sandbox.wait_for(100, timeout=60)
    tasks.kill(doomed)
    killed_at = time.monotonic()
    claimed = outbox_database.query(
        "SELECT COUNT(*) FROM eventtrack_delivery WHERE claim_token IS NOT NULL"
    )[0][0]
    delivered_at_kill = statuses(outbox_database)["delivered"]
    assert delivered_at_kill < ALL_DELIVERED["delivered"], "killed too late to prove anything"

    # A new db_worker runs the tasks still queued. The dead worker's task stays RUNNING
    # forever (django-tasks-db does not take it back): its claimed rows are sent by the
    # cron sweep, ``eventtrack_worker --once``, once their lease ends.
    survivor = start_db_worker(tasks, "survivor")
    sweeps = 0

    def swept_everything() -> bool:
        nonlocal sweeps
        sweeps += 1
        tasks.run("-m", "django", "eventtrack_worker", "--once")
        return statuses(outbox_database) == ALL_DELIVERED

    wait_until(swept_everything, timeout=60, what="the survivor and the sweep to send everything")
    elapsed = time.monotonic() - started
    recovery = time.monotonic() - killed_at
    assert recovery <= RECOVERY, f"delivered {recovery:.1f}s after the kill"
    assert tasks.stop(survivor) == 0, tasks.output(survivor)
    orphaned = [status for status, _ in task_results(outbox_database) if status == "RUNNING"]

    duplicates = duplicates_of_committed(sandbox)
    assert duplicates <= claimed
    print(
        f"tasks SIGKILL: killed with {delivered_at_kill} deliveries recorded and {claimed} "
        f"claimed; {len(orphaned)} task(s) left RUNNING by the dead worker; {duplicates} "
        f"duplicates; all {ALL_DELIVERED['delivered']} delivered after {sweeps} cron sweep(s), "
        f"{elapsed:.1f}s after tracking began ({recovery:.1f}s after the kill)"
    )
