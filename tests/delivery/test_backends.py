"""Delivery backends in one process: nothing before commit, once per vendor after, the thread
backend's bounded shutdown, and a forked child that sends with a thread of its own."""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signals as django_signals
from django.db import OperationalError, transaction
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.delivery import backends, flow, held_claims, http, sender
from django_eventtrack.delivery.sender import DrainStats
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import (
    VENDORS,
    busy_process,
    received,
    routed_after_the_first_query,
    run_in_child,
    track_many,
    wait_until,
)

Status = Delivery.Status

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    """Raised to roll a test's transaction back."""


@pytest.fixture(autouse=True)
def _own_backends(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh backend instances per test, closed (threads joined) before the database is flushed.

    Those other test modules left running are stopped first: a sender thread of theirs
    inside SQLite when a test here forks would leave the child deadlocked.
    """
    for leftover in backends._backends.values():
        leftover.close(timeout=5)
    monkeypatch.setattr(backends, "_backends", {})
    flow.breaker.reset()
    yield
    for backend in backends._backends.values():
        backend.close(timeout=5)
    flow.breaker.reset()


def use(settings: Settings, sandbox: Sandbox, delivery: str, **options: Any) -> None:
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": delivery, **options}


def all_delivered(event_id: uuid.UUID) -> bool:
    statuses = Delivery.objects.filter(event_id=event_id).values_list("status", flat=True)
    return list(statuses) == [Status.DELIVERED] * len(VENDORS)


@pytest.mark.parametrize("delivery", ["sync", "thread"])
def test_rollback_sends_nothing_ever(settings: Settings, sandbox: Sandbox, delivery: str) -> None:
    use(settings, sandbox, delivery)
    seen_inside: dict[str, int] = {}

    def place_order_that_fails() -> None:
        with transaction.atomic():
            event = track("order.placed", {"n": 1, "order": "O1"}, session="S1")
            assert event is not None
            seen_inside["routes"] = len(Event.objects.get(pk=event.id).routes or {})
            seen_inside["requests"] = len(sandbox.requests())
            raise Rollback

    with pytest.raises(Rollback):
        place_order_that_fails()
    # written in the transaction, routed to every vendor, unsent
    assert seen_inside == {"routes": len(VENDORS), "requests": 0}
    assert Event.objects.count() == 0
    assert Delivery.objects.count() == 0
    assert backends._backends == {}  # the backend was never even told
    assert sender.drain().sent == 0  # and there is nothing left that anyone could send
    assert sandbox.requests() == []


@pytest.mark.parametrize("delivery", ["sync", "thread"])
def test_commit_sends_exactly_once_per_vendor(
    settings: Settings, sandbox: Sandbox, delivery: str
) -> None:
    use(settings, sandbox, delivery)
    with transaction.atomic():
        event = track("order.placed", {"n": 1, "order": "O1"}, session="S1")
        assert event is not None
        assert sandbox.requests() == []  # no HTTP while the transaction is open
    if delivery == "thread":
        sandbox.wait_for(4)
        wait_until(lambda: all_delivered(event.id), what="every delivery recorded")
        backend = backends.get_backend()
        backend.close()  # joins the sender thread: nothing can be sent after this
        assert not getattr(backend, "running", False)
    assert sorted(record.vendor for record in sandbox.requests()) == sorted(VENDORS)
    assert all(record.accepted for record in sandbox.requests())
    assert all_delivered(event.id)
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.fixture
def request_started(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the shared HTTP layer starts sending a request (in any thread)."""
    started = threading.Event()
    real_send = http.send

    def send(*args: Any, **kwargs: Any) -> http.Attempt:
        started.set()
        return real_send(*args, **kwargs)

    monkeypatch.setattr(http, "send", send)
    return started


def one_in_flight_two_waiting(request_started: threading.Event) -> backends.ThreadBackend:
    """Three events for Hackle, one transaction: the thread backend, once its first
    request has started (with ``CONCURRENCY`` 1, the other two wait behind it)."""
    track_many(3, vendors=["hackle"])
    assert request_started.wait(5), "the sender thread never started a request"
    backend = backends.get_backend()
    assert isinstance(backend, backends.ThreadBackend)
    return backend


def test_thread_backend_close_sends_nothing_new_after_shutdown_timeout_and_records_answers(
    settings: Settings, sandbox: Sandbox, request_started: threading.Event
) -> None:
    """At SHUTDOWN_TIMEOUT the sender sends nothing more; the request in flight gets its
    answer (at most its vendor's timeouts), recorded before close() returns, and what
    was never sent is given back, due at once: nothing is left for a lease to free, and
    nothing a vendor has is sent again (the answer was thrown away before)."""
    use(settings, sandbox, "thread", SHUTDOWN_TIMEOUT=0.3, CONCURRENCY=1)
    sandbox.inject("hackle", delay=1.5)
    backend = one_in_flight_two_waiting(request_started)

    started = time.monotonic()
    backend.close()
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 2.5, elapsed  # the answer of the request in flight, no more
    assert not backend.running
    outcomes = sorted(Delivery.objects.values_list("status", "attempts", "claim_token"))
    assert outcomes == [
        (Status.DELIVERED, 1, None),
        (Status.PENDING, 0, None),
        (Status.PENDING, 0, None),
    ]
    assert (
        Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=timezone.now()).count()
        == 2
    )
    assert len(sandbox.requests("hackle")) == 1


def test_thread_backend_close_waits_for_an_answer_at_most_the_vendor_s_timeouts(
    settings: Settings, sandbox: Sandbox, request_started: threading.Event
) -> None:
    """A vendor slower than its TIMEOUT: close() returns once the request timed out, its
    delivery retried later like any timeout, the others given back unsent."""
    vendors: dict[str, dict[str, Any]] = sandbox.vendor_settings()
    vendors["hackle"]["TIMEOUT"] = 0.5
    settings.EVENTTRACK = {
        "VENDORS": vendors,
        "DELIVERY": "thread",
        "SHUTDOWN_TIMEOUT": 0.2,
        "CONCURRENCY": 1,
    }
    sandbox.inject("hackle", delay=5)
    backend = one_in_flight_two_waiting(request_started)

    started = time.monotonic()
    backend.close()
    elapsed = time.monotonic() - started

    assert elapsed < 0.2 + 0.5 + 1.5, elapsed  # the deadline, then the read timeout
    assert not backend.running
    rows = sorted(Delivery.objects.values_list("attempts", "last_error", "claim_token"))
    assert [(attempts, token) for attempts, _, token in rows] == [(0, None), (0, None), (1, None)]
    assert rows[-1][1].startswith("read timeout")
    sandbox.wait_for(1, vendor="hackle")


def test_leases_that_cannot_be_ended_are_logged_with_the_databases_words_and_no_secret(
    settings: Settings,
    sandbox: Sandbox,
    request_started: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sender still busy when close() stops waiting (made so here: no time for the
    answer in flight) has its claims let go of from close(); the database refuses."""
    use(settings, sandbox, "thread", SHUTDOWN_TIMEOUT=0.3, CONCURRENCY=1)
    sandbox.inject("hackle", delay=1.5)
    key = sandbox.vendor_settings()["hackle"]["API_KEY"]

    def deadlocked(stop: threading.Event) -> int:
        raise OperationalError(f"deadlock detected\nDETAIL: waiting on key={key}")

    track("order.placed", {"n": 1, "order": "O1"}, session="S1", vendors=["hackle"])
    assert request_started.wait(5), "the sender thread never started a request"
    backend = backends.get_backend()

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, "django_eventtrack"):
        patch.setattr(held_claims, "surrender", deadlocked)
        patch.setattr(sender, "answer_wait", lambda config=None: 0.0)
        backend.close()

    assert (
        "could not end the leases of this process's sender (OperationalError: deadlock "
        "detected DETAIL: waiting on key=********)" in caplog.text
    )
    assert key not in caplog.text


class QuietParent:
    """Makes this process's sender threads go idle, alive but away from the database.

    Once hushed, the parent's rounds neither drain nor query (a forked child,
    another pid, works normally). That keeps the parent from delivering the
    child's event for it, which the test must see the child do itself, and
    keeps the fork from copying an SQLite connection in use, which SQLite forbids.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parent = os.getpid()
        self.quiet = False
        self.parked: set[str] = set()  # names of the sender threads gone idle
        real_drain = sender.drain
        real_next_due = backends._seconds_until_next_due

        def drain(*args: Any, **kwargs: Any) -> DrainStats:
            if self.quiet and os.getpid() == self.parent:
                return DrainStats()
            return real_drain(*args, **kwargs)

        def next_due() -> float:
            if self.quiet and os.getpid() == self.parent:
                self.parked.add(threading.current_thread().name)
                return sender.MAX_IDLE_WAIT
            return real_next_due()

        monkeypatch.setattr(sender, "drain", drain)
        monkeypatch.setattr(backends, "_seconds_until_next_due", next_due)

    def hush(self, backend: backends.ThreadBackend) -> None:
        """Return once every sender thread has finished any real round and is going to sleep."""
        self.quiet = True
        backend.enqueue([])  # wake them for one database-free round
        assert backend._thread is not None
        name = backend._thread.name
        wait_until(lambda: name in self.parked, what="the parent's sender thread to go idle")


# Forking a process whose sender thread is running is exactly what this test is about
# (gunicorn and Celery prefork do it); Python 3.12+ warns about it in general.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_sends_its_own_events_with_its_own_thread(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(settings, sandbox, "thread")
    parent = QuietParent(monkeypatch)
    parent_event = track("order.placed", {"n": "parent", "order": "O-parent"}, session="S-parent")
    assert parent_event is not None
    sandbox.wait_for(4)
    wait_until(lambda: all_delivered(parent_event.id), what="the parent's event")
    backend = backends.get_backend()
    assert isinstance(backend, backends.ThreadBackend)
    parent.hush(backend)
    assert backend.running  # the parent's sender thread is alive when the child is forked

    def child() -> dict[str, Any]:
        inherited = backend.running
        event = track(
            "order.placed", {"n": "child", "order": "O-child"}, session="S-child"
        )  # autocommit
        assert event is not None
        started_own = backend.running
        wait_until(lambda: all_delivered(event.id), timeout=8, what="the child's event")
        return {"inherited": inherited, "started_own": started_own}

    report = run_in_child(child)

    assert report == {"inherited": False, "started_own": True}
    for vendor in VENDORS:
        assert received(sandbox, vendor) == {"parent": 1, "child": 1}, vendor


@pytest.mark.django_db
def test_idle_wait_ignores_pending_rows_of_inactive_vendors(
    settings: Settings, sandbox: Sandbox
) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": sandbox.vendor_settings()["hackle"]}}
    event = Event.objects.create(name="a.b", timestamp=timezone.now())
    Delivery.objects.create(event=event, vendor="browsee")  # due now, but Browsee is off
    assert backends._seconds_until_next_due() == sender.MAX_IDLE_WAIT
    Delivery.objects.create(event=event, vendor="hackle")
    assert backends._seconds_until_next_due() < sender.MAX_IDLE_WAIT


def test_thread_backend_a_slow_vendor_does_not_hold_up_the_others(
    settings: Settings, sandbox: Sandbox
) -> None:
    """Each vendor has request threads of its own and the running drain claims each new
    commit at once: an event committed while Hackle is busy with a slow request reaches
    the other vendors at once, not after it (and Hackle too, beside the slow request)."""
    use(settings, sandbox, "thread")
    sandbox.inject("hackle", delay=3.0)
    track("order.placed", {"n": "first", "order": "O1"}, session="S1")
    others = [vendor for vendor in VENDORS if vendor != "hackle"]
    wait_until(lambda: all(received(sandbox, v)["first"] for v in others), what="first event")
    started = time.monotonic()
    track("order.placed", {"n": "second", "order": "O2"}, session="S2")
    wait_until(lambda: all(received(sandbox, v)["second"] for v in others), what="second event")
    assert time.monotonic() - started < 2.0
    assert "first" not in received(sandbox, "hackle")  # its request is still in flight
    wait_until(lambda: received(sandbox, "hackle") == {"first": 1, "second": 1}, timeout=10)


def test_close_sends_what_this_process_committed_before_stopping(
    settings: Settings, sandbox: Sandbox
) -> None:
    """What a script or command does at exit: close() right after the commit waits for
    the deliveries (each vendor answering slowly), then stops."""
    use(settings, sandbox, "thread", CONCURRENCY=1)
    for vendor in VENDORS:
        sandbox.inject(vendor, delay=0.2, count=3)
    with transaction.atomic():
        events = [
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}") for n in range(3)
        ]
    backend = backends.get_backend()
    backend.close()
    assert not getattr(backend, "running", True)
    for event in events:
        assert event is not None
        assert all_delivered(event.id)
    for vendor in VENDORS:
        assert received(sandbox, vendor) == {0: 1, 1: 1, 2: 1}, vendor


def test_close_does_not_wait_once_everything_is_sent(settings: Settings, sandbox: Sandbox) -> None:
    use(settings, sandbox, "thread", SHUTDOWN_TIMEOUT=5)
    event = track("order.placed", {"n": 1, "order": "O1"}, session="S1")
    assert event is not None
    wait_until(lambda: all_delivered(event.id), what="the event to be sent")
    started = time.monotonic()
    backends.get_backend().close()
    assert time.monotonic() - started < 1.0


def test_the_sender_sends_from_its_own_thread_when_no_new_thread_may_start(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.12 refuses to start threads in atexit handlers, where the thread backend
    sends a script's events: the drain then sends them from the thread it runs in."""
    use(settings, sandbox, "worker")
    for n in range(3):
        track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}", vendors=["hackle"])
    real_start = threading.Thread.start
    senders: set[str] = set()

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("eventtrack-hackle"):
            raise RuntimeError("can't create new thread at interpreter shutdown")
        real_start(thread)

    def send(*args: Any, **kwargs: Any) -> http.Attempt:
        senders.add(threading.current_thread().name)
        return real_send(*args, **kwargs)

    real_send = http.send
    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(http, "send", send)
    stats = sender.drain(["hackle"])
    assert (stats.delivered, stats.requests) == (3, 3)
    assert senders == {threading.current_thread().name}
    assert len(sandbox.requests("hackle")) == 3


def test_thread_backend_sends_within_its_share_while_a_request_is_served(
    settings: Settings, sandbox: Sandbox
) -> None:
    """Requests come first: while the process serves one, the sender stops once it has
    used its share of the time (nearly none here), and sends the rest as soon as the
    request is over."""
    use(settings, sandbox, "thread", SENDER_SHARE=0.0001)
    backend = backends.get_backend()
    assert isinstance(backend, backends.ThreadBackend)
    backend.start()
    # Its first round (nothing to send) is charged before the process is busy: a charge
    # landing after would be paid back at the busy share, 0.0001, for minutes.
    wait_until(lambda: backend._round_count > 0, what="the sender's first round")
    django_signals.request_started.send(sender=None)  # what handlers send around a request
    with busy_process():  # the request's thread at work
        wait_until(lambda: backend._share.delay() == 0 and backend._share._busy())
        with transaction.atomic():
            events = [
                track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
                for n in range(40)
            ]
        time.sleep(0.5)  # a negative check: the time in which the sender would have sent them
        sent_while_busy = len(received(sandbox, "hackle"))
        django_signals.request_finished.send(sender=None)
    assert sent_while_busy < 20
    wait_until(lambda: all(all_delivered(e.id) for e in events if e), timeout=10)
    assert received(sandbox, "hackle") == dict.fromkeys(range(40), 1)


@pytest.mark.django_db
def test_a_stopping_process_never_misses_an_event_routed_while_it_looks(
    settings: Settings, sandbox: Sandbox
) -> None:
    """What a stopping ``thread`` backend waits for: an event a sender routes between its
    two queries (events not yet routed, then pending deliveries) still counts."""
    use(settings, sandbox, "worker")
    event = track("order.placed", {"n": 1, "order": "O1"}, session="S1")
    assert event is not None
    with routed_after_the_first_query([event.id]) as routed:
        pending = backends._pending_deliveries([event.id])
    assert routed == [1]
    assert pending.count(event.id) >= len(VENDORS)


def test_celery_and_the_tasks_framework_run_the_same_two_tasks() -> None:
    """``drain_outbox`` (the events of a commit) and ``sweep_outbox`` (everything due)
    take the same arguments whichever engine runs them."""
    celery_tasks = pytest.importorskip("django_eventtrack.tasks", reason="needs Celery")
    framework = pytest.importorskip(
        "django_eventtrack.delivery.tasks_backend", reason="needs django.tasks"
    )
    for name in ("drain_outbox", "sweep_outbox"):
        celery_run = inspect.signature(getattr(celery_tasks, name).run)
        assert celery_run == inspect.signature(getattr(framework, name).func), name
