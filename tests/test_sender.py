"""The sender: how many requests it keeps in flight per vendor (its window), and how one drain
shares its database work and its time between vendors."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.delivery import flow, held_claims, http, sender
from django_eventtrack.delivery.flow import Window
from django_eventtrack.delivery.pacing import Bell, Share
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS, busy_process, received, track_many, wait_until

Status = Delivery.Status


@pytest.fixture(autouse=True)
def _closed_breaker() -> Iterator[None]:
    flow.breaker.reset()
    yield
    flow.breaker.reset()


def configure(
    settings: Settings, sandbox: Sandbox, only: Sequence[str] = ("hackle",), **options: Any
) -> None:
    vendor_settings = sandbox.vendor_settings()
    settings.EVENTTRACK = {
        "VENDORS": {name: vendor_settings[name] for name in only},
        "DELIVERY": "worker",
        "RETRY_BACKOFF_BASE": 0.01,
        **options,
    }


def peak_in_flight(sandbox: Sandbox, vendor: str, delay: float) -> int:
    """The most requests the vendor had in flight at once, when each took ``delay`` seconds:
    the most that arrived within any ``delay``-long stretch."""
    arrivals = sorted(request.received_at for request in sandbox.requests(vendor))
    return max(sum(1 for other in arrivals if at - delay < other <= at) for at in arrivals)


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


def test_concurrency_must_lie_between_its_bounds(settings: Settings) -> None:
    settings.EVENTTRACK = {"MIN_CONCURRENCY": 8, "MAX_CONCURRENCY": 4}
    with pytest.raises(ConfigurationError, match=r"MIN_CONCURRENCY.*\(8\).*MAX_CONCURRENCY.*\(4\)"):
        get_config()
    settings.EVENTTRACK = {"CONCURRENCY": 40, "MAX_CONCURRENCY": 32, "MIN_CONCURRENCY": 2}
    assert get_config().options.concurrency_range == (2, 40)  # CONCURRENCY widens them


# --- draining against the sandbox --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_vendor_answering_fast_gets_more_requests_in_flight_up_to_the_maximum(
    settings: Settings, sandbox: Sandbox
) -> None:
    """With ``CONCURRENCY`` 2 a drain used to keep 2 requests in flight, whatever the
    vendor could take: 60 events at 0.2 s each took 6 s."""
    configure(settings, sandbox, CONCURRENCY=2, MAX_CONCURRENCY=12)
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
    configure(settings, sandbox, CONCURRENCY=8, MAX_CONCURRENCY=8, RETRY_BACKOFF_BASE=60)
    track_many(3, vendors=["hackle"])
    sandbox.inject("hackle", status=503, delay=0.2, count=3)  # in flight together
    stats = sender.drain()
    assert stats.retried == 3
    assert flow.window("hackle", get_config()).size == 4  # halved once, not thrice
    assert Delivery.objects.filter(status=Status.PENDING, attempts=1).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_slow_vendor_does_not_hold_up_a_fast_one_in_the_same_drain(
    settings: Settings, sandbox: Sandbox
) -> None:
    configure(settings, sandbox, only=("hackle", "browsee"), CONCURRENCY=2)
    sandbox.inject("hackle", delay=1.0, count=4)
    track_many(40, vendors=["hackle", "browsee"])
    stats = sender.drain()
    assert stats.delivered == 80
    first_hackle_answer = min(r.received_at for r in sandbox.requests("hackle")) + 1.0
    assert max(r.received_at for r in sandbox.requests("browsee")) < first_hackle_answer
    assert received(sandbox, "browsee") == dict.fromkeys(range(40), 1)


@pytest.mark.django_db(transaction=True)
def test_one_claim_reads_each_event_once_for_all_its_vendors(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One claim transaction for every vendor (a claim per vendor before), and each
    event's row read once (a JOIN per vendor before: its JSON decoded once per vendor)."""
    configure(settings, sandbox, only=VENDORS)
    track_many(10)
    claims: list[dict[str, int]] = []
    real_claim = leases.claim_due

    def claim_due(limits: dict[str, int], *args: Any, **kwargs: Any) -> leases.Claim:
        claims.append(dict(limits))
        return real_claim(limits, *args, **kwargs)

    monkeypatch.setattr(leases, "claim_due", claim_due)
    with CaptureQueriesContext(connection) as queries:
        stats = sender.drain()
    assert stats.delivered == 10 * len(VENDORS)
    assert [sorted(limits) for limits in claims] == [sorted(VENDORS)]
    # The claim's routing reads only the events' routes; their rows are read once.
    reads = [q["sql"] for q in queries if '"eventtrack_event"."properties"' in q["sql"]]
    assert len(reads) == 1, reads


@pytest.mark.django_db(transaction=True)
def test_each_request_in_flight_keeps_its_connection_alive(
    settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 keeps at most its pool's size of connections per vendor and closes any
    other after one request; the pool held 16 whatever the concurrency."""
    configure(settings, sandbox, CONCURRENCY=24, MIN_CONCURRENCY=24, MAX_CONCURRENCY=24)
    http.close_sessions()
    sandbox.inject("hackle", delay=0.3, count=48)
    track_many(48, vendors=["hackle"])
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        stats = sender.drain()
    assert stats.delivered == 48
    assert peak_in_flight(sandbox, "hackle", 0.3) == 24
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# --- sharing a busy process --------------------------------------------------------------------


def test_a_share_makes_the_sender_wait_only_while_requests_keep_the_process_busy() -> None:
    share = Share(0.5)
    share.request_started()  # a long request held open, the process idle: not busy
    share.charge(0.05)
    assert share.delay() == 0
    with busy_process():  # now the request's thread works
        wait_until(lambda: share.delay() == 0 and share._busy(), what="the process busy")
        share.charge(0.05)
        assert 0.08 < share.delay() <= 0.1  # 50 ms of CPU at half the time: 100 ms
        finished_at = time.monotonic()  # no later than the request ends
        share.request_finished()
        # A sync server's worker is between two requests: still serving for LINGER.
        assert share.delay() > 0.05
        # Then nobody to make wait: it is paid back at full speed.
        wait_until(lambda: share.delay() == 0, timeout=1, what="the linger to end")
        assert time.monotonic() - finished_at >= Share.LINGER
    unlimited = Share()
    unlimited.request_started()
    unlimited.charge(0.05)
    assert unlimited.delay() == 0  # a worker's drain never waits


def test_a_commit_wakes_a_drain_only_when_it_waits_for_nothing_sooner() -> None:
    bell = Bell()
    threading.Timer(0.05, bell.ring, kwargs={"fresh": True}).start()
    started = time.monotonic()
    assert bell.wait(5, commits_wake=True) is True
    assert time.monotonic() - started < 1
    threading.Timer(0.05, bell.ring, kwargs={"fresh": True}).start()
    started = time.monotonic()
    assert bell.wait(0.5, commits_wake=False) is True  # seen when it woke anyway
    assert time.monotonic() - started >= 0.5
    threading.Timer(0.05, bell.ring).start()  # a request finished: always wakes it
    started = time.monotonic()
    assert bell.wait(5, commits_wake=False) is False
    assert time.monotonic() - started < 1


@pytest.mark.django_db(transaction=True)
def test_a_stream_of_commits_is_claimed_a_few_at_a_time(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit rings the running drain, which claims at most every
    ``DATABASE_INTERVAL``: a claim covers the commits of that time, not one each."""
    configure(settings, sandbox, only=VENDORS)
    claims = 0
    real_claim = leases.claim_due

    def claim_due(*args: Any, **kwargs: Any) -> leases.Claim:
        nonlocal claims
        claims += 1
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(leases, "claim_due", claim_due)
    sandbox.inject("hackle", delay=0.5)  # keeps the drain running while events come in
    bell = Bell()
    drained = threading.Thread(target=sender.drain, kwargs={"bell": bell})
    track_many(1)
    drained.start()
    for n in range(1, 41):
        track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
        bell.ring(fresh=True)
    drained.join(10)
    assert Delivery.objects.filter(status=Status.DELIVERED).count() == 41 * len(VENDORS)
    assert claims < 20, claims


@pytest.mark.django_db(transaction=True)
def test_a_drain_waiting_on_its_vendors_sleeps(settings: Settings, sandbox: Sandbox) -> None:
    """Requests in flight and more waiting behind a full window: the drain's thread waits
    for an answer instead of looking again and again (it costs the pages their CPU)."""
    configure(settings, sandbox, CONCURRENCY=2, MIN_CONCURRENCY=2, MAX_CONCURRENCY=2)
    sandbox.inject("hackle", delay=0.4, count=8)
    track_many(8, vendors=["hackle"])
    started, spent = time.monotonic(), time.thread_time()
    stats = sender.drain()
    assert stats.delivered == 8
    assert time.monotonic() - started >= 1.6  # four rounds of two
    assert time.thread_time() - spent < 0.4


@pytest.mark.django_db(transaction=True)
def test_a_vendor_paused_mid_drain_is_sent_to_once_its_pause_is_over(
    settings: Settings, sandbox: Sandbox
) -> None:
    """A drain kept running by a slow vendor (as the ``thread`` backend's is by a stream
    of commits) looks again at a paused vendor, instead of leaving it paused to the end."""
    configure(settings, sandbox, only=("hackle", "browsee"), POLL_INTERVAL=0.1)
    sandbox.inject("browsee", delay=1.5)
    track_many(3, vendors=["hackle", "browsee"])
    flow.breaker.pause("hackle", 0.3, "a test")
    stats = sender.drain()
    assert "hackle" in stats.paused_vendors
    assert stats.delivered == 6  # Hackle's three too, in the same drain


@pytest.mark.django_db(transaction=True)
def test_ending_the_leases_waits_for_a_claim_under_way(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process exiting ends its drains' leases while a claim may still be writing
    (waiting for SQLite's lock, writing the deliveries of a backlog): that claim is
    held and given back too, not committed afterwards and left until its lease ends.
    The drain is then stuck, as a daemon thread is when the interpreter exits."""
    configure(settings, sandbox)
    track_many(3, vendors=["hackle"])
    stop, claiming, claim_may_go, frozen, after_claim = (threading.Event() for _ in range(5))
    real_claim_due = leases.claim_due

    def slow_claim(*args: Any, **kwargs: Any) -> leases.Claim:
        claiming.set()
        claim_may_go.wait(5)
        return real_claim_due(*args, **kwargs)

    def exit_freezes_the_drain(*args: Any, **kwargs: Any) -> None:
        after_claim.set()
        frozen.wait(10)

    monkeypatch.setattr(leases, "claim_due", slow_claim)
    monkeypatch.setattr(sender._Drain, "_enqueue", exit_freezes_the_drain)
    drain = threading.Thread(target=sender.drain, kwargs={"stop": stop}, daemon=True)
    drain.start()
    try:
        wait_until(claiming.is_set, what="a claim under way")
        stop.set()
        # The claim goes on a moment after the process has started ending the leases.
        threading.Timer(0.2, claim_may_go.set).start()
        held_claims.surrender(stop)
        wait_until(after_claim.is_set, what="the claim to be made")
        now = timezone.now()
        claimed = Delivery.objects.filter(status="pending", next_attempt_at__gt=now)
        assert list(claimed.values_list("claim_token", flat=True)) == []
        assert Delivery.objects.filter(status="pending").count() == 3
    finally:
        claim_may_go.set()
        frozen.set()
        drain.join(10)
