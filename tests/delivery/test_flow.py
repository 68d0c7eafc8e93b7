"""Per-vendor flow control: the window of requests in flight, on its own and in a drain."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack.conf import get_config
from django_eventtrack.delivery import flow, sender
from django_eventtrack.delivery.flow import Batches, Window
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import Outcome, OutcomeKind
from tests.delivery.helpers import peak_in_flight, use_vendors
from tests.processes.helpers import received, run_in_child, track_many

Status = Delivery.Status


# --- the window on its own ---------------------------------------------------------------------


def test_the_window_doubles_each_round_trip_until_refused_then_grows_by_one() -> None:
    window = Window(2, 1, 100)
    for size in (2, 4, 8):
        assert window.size == size
        for _ in range(size):  # one round trip: every request in flight answers, fast
            window.answered(0.1, full=True)
    assert window.size == 16
    window.refused(sent_at=-math.inf)
    assert window.size == 8
    for _ in range(8):
        window.answered(0.1, full=True)
    assert window.size == 9  # one more per round trip


def test_the_window_grows_only_on_fast_answers_to_a_full_window() -> None:
    window = Window(4, 1, 100)
    window.answered(0.1, full=True)
    assert window.size == 5
    window.answered(0.1, full=False)  # a window not used up proves nothing
    window.answered(0.5, full=True)  # the vendor slows down: our requests queue there
    assert window.size == 5
    window.answered(0.2, full=True)  # twice the fastest answer is still fast
    assert window.size == 6


def test_refusals_halve_the_window_once_per_round_trip_within_its_bounds() -> None:
    window = Window(16, 3, 16)
    window.answered(0.1, full=True)
    assert window.size == 16  # the upper bound
    sent = time.monotonic()
    for _ in range(5):  # five requests in flight together, all refused
        window.refused(sent)
    assert window.size == 8
    window.refused(time.monotonic())  # sent after the cut: cut again
    assert window.size == 4
    window.refused(time.monotonic())
    assert window.size == 3  # the lower bound


def test_a_request_unanswered_halves_the_batches_once_per_round_trip_grown_back_by_one() -> None:
    batches = Batches(50)
    sent = time.monotonic()
    for _ in range(4):  # four requests in flight together, none answered
        batches.unanswered(sent)
    assert batches.size == 25
    batches.unanswered(time.monotonic())  # sent after the cut: cut again
    assert batches.size == 12
    for size in range(13, 51):
        batches.delivered()
        assert batches.size == size
    batches.delivered()
    assert batches.size == 50  # the upper bound
    for _ in range(10):
        batches.unanswered(time.monotonic())
    assert batches.size == 1  # the lower bound


def test_the_events_per_request_are_at_most_what_the_vendor_takes(settings: Settings) -> None:
    settings.EVENTTRACK = {"VENDORS": {"primedata": {"EVENTS_PER_REQUEST": 800}}}
    assert flow.batches("primedata", get_config(), 500).size == 500
    assert flow.batches("hackle", get_config(), 1).size == 1


def test_concurrency_must_lie_between_its_bounds(settings: Settings) -> None:
    settings.EVENTTRACK = {"MIN_CONCURRENCY": 8, "MAX_CONCURRENCY": 4}
    with pytest.raises(ConfigurationError, match=r"MIN_CONCURRENCY.*\(8\).*MAX_CONCURRENCY.*\(4\)"):
        get_config()
    settings.EVENTTRACK = {"CONCURRENCY": 40, "MAX_CONCURRENCY": 32, "MIN_CONCURRENCY": 2}
    assert get_config().options.concurrency_range == (2, 40)  # CONCURRENCY widens them


# --- in a drain, against the sandbox -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_vendor_answering_fast_gets_more_requests_in_flight_up_to_the_maximum(
    settings: Settings, sandbox: Sandbox
) -> None:
    """With ``CONCURRENCY`` 2 a drain used to keep 2 requests in flight, whatever the
    vendor could take: 60 events at 0.2 s each took 6 s."""
    use_vendors(settings, sandbox, CONCURRENCY=2, MAX_CONCURRENCY=12)
    sandbox.inject("hackle", delay=0.2, count=60)
    track_many(60, vendors=["hackle"])
    stats = sender.drain()
    assert (stats.delivered, stats.requests) == (60, 60)
    assert peak_in_flight(sandbox, "hackle", 0.2) == 12
    assert flow.window("hackle", get_config()).size == 12


@pytest.mark.django_db(transaction=True)
def test_refused_requests_halve_the_requests_in_flight(
    settings: Settings, sandbox: Sandbox
) -> None:
    use_vendors(settings, sandbox, CONCURRENCY=8, MAX_CONCURRENCY=8, RETRY_BACKOFF_BASE=60)
    track_many(3, vendors=["hackle"])
    sandbox.inject("hackle", status=503, delay=0.2, count=3)  # in flight together
    stats = sender.drain()
    assert stats.retried == 3
    assert flow.window("hackle", get_config()).size == 4  # halved once, not thrice
    assert Delivery.objects.filter(status=Status.PENDING, attempts=1).count() == 3


# --- in a forked child -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_keeps_what_the_windows_learnt_and_never_waits_on_a_parents_lock() -> None:
    """A process forked (gunicorn, Celery prefork) while a thread of its parent was in
    the middle of a window or a vendor's batches must not wait on that thread, which the
    child does not have."""
    config = get_config()
    learnt = flow.window("hackle", config)
    learnt.refused(time.monotonic())
    halved = learnt.size
    batches = flow.batches("primedata", config, 500)
    batches.unanswered(time.monotonic())

    def child() -> dict[str, Any]:
        window = flow.window("hackle", config)
        window.refused(time.monotonic())
        sizes = flow.batches("primedata", config, 500)
        sizes.unanswered(time.monotonic())
        return {"kept": window is learnt and sizes is batches, "sizes": [window.size, sizes.size]}

    with flow._learnt_lock, learnt._lock, batches._lock:  # held at the fork
        report = run_in_child(child, timeout=5)
    assert report == {"kept": True, "sizes": [max(halved // 2, learnt.low), 12]}


@pytest.mark.django_db(transaction=True)
def test_a_request_that_got_no_answer_costs_the_next_ones_half_their_events(
    settings: Settings, sandbox: Sandbox
) -> None:
    """PrimeData has the first request but its answer is cut off: its 40 events are sent
    again (each a duplicate). The next request carries 20 (even those queued before the
    cut), then one more after each answer: a second lost answer would cost half."""
    per_request = {"primedata": {"EVENTS_PER_REQUEST": 40}}
    use_vendors(settings, sandbox, ("primedata",), per_request, CONCURRENCY=1, MAX_CONCURRENCY=1)
    sandbox.inject("primedata", truncate=True)
    track_many(100, vendors=["primedata"])
    stats = sender.drain()
    assert stats.delivered == 100
    sizes = [record.event_count for record in sandbox.requests("primedata")]
    assert sizes[:2] == [40, 20]
    assert max(sizes[2:]) < 30  # grown back one event per answer, not at once
    copies = received(sandbox, "primedata")
    assert sorted(copies.values()) == [1] * 60 + [2] * 40


def test_a_503_with_retry_after_pauses_the_vendor_as_long_as_it_asks() -> None:
    """Longer than the breaker's own pause: the vendor said when it will be back."""
    breaker = flow.CircuitBreaker()
    unavailable = Outcome(OutcomeKind.RETRY, 503, "HTTP 503", retry_after=60)
    for _ in range(3):  # as the sender does: each request's answer heard, then counted
        breaker.heard("hackle", unavailable)
        breaker.record("hackle", unavailable, threshold=3, pause=30)
    pause = breaker.take_unrecorded("hackle")
    assert pause is not None
    assert (pause.seconds, pause.reason) == (60, "HTTP 503, Retry-After 60s")
    assert not breaker.allows("hackle")
