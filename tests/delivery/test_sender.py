"""The drain loop: how one drain shares its database work and its time between vendors."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.delivery import flow, http, sender
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox
from tests.delivery.helpers import peak_in_flight, use_vendors
from tests.processes.helpers import VENDORS, received, run_in_child, track_many


@pytest.mark.django_db(transaction=True)
def test_a_slow_vendor_does_not_hold_up_a_fast_one_in_the_same_drain(
    settings: Settings, sandbox: Sandbox
) -> None:
    use_vendors(settings, sandbox, only=("hackle", "browsee"), CONCURRENCY=2)
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
    use_vendors(settings, sandbox, only=VENDORS)
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
    # The claim's routing reads only the events' routes and measures their size in SQL;
    # their rows (the properties among the columns fetched) are read once.
    reads = [q["sql"] for q in queries if '"eventtrack_event"."properties", ' in q["sql"]]
    assert len(reads) == 1, reads


@pytest.mark.django_db(transaction=True)
def test_outcomes_with_changes_noted_per_event_are_written_together(
    settings: Settings, sandbox: Sandbox
) -> None:
    """Forty events each noted (another user's browser id replaced): each round of
    answers writes their adjustments in one UPDATE and their outcome in one, not one of
    each per delivery (forty of each, before)."""
    use_vendors(settings, sandbox, only=("hackle",), CONCURRENCY=1)
    browser = {"session": "shared", "anonymous_id": "a" * 32}
    track("order.placed", {"order": "first"}, identity=browser, user_id="first-user")
    sender.drain()
    for n in range(40):
        track("order.placed", {"n": n}, identity=browser, user_id="next-user")
    with CaptureQueriesContext(connection) as queries:
        assert sender.drain().delivered == 40
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "eventtrack_delivery"')]
    adjusted = [sql for sql in updates if 'SET "adjustments"' in sql]
    recorded = [sql for sql in updates if "\"status\" = 'delivered'" in sql]
    assert 1 <= len(adjusted) == len(recorded) <= 10, updates
    lines = Delivery.objects.filter(event__identity__user_id="next-user").values_list(
        "adjustments", flat=True
    )
    assert {tuple(each) for each in lines} == {
        (
            "anonymous_id replaced by this user's own: the browser's belongs to another",
            "session left out: it belongs to another user of this browser",
        )
    }


@pytest.mark.django_db(transaction=True)
def test_each_request_in_flight_keeps_its_connection_alive(
    settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 keeps at most its pool's size of connections per vendor and closes any
    other after one request; the pool held 16 whatever the concurrency."""
    use_vendors(settings, sandbox, CONCURRENCY=24, MIN_CONCURRENCY=24, MAX_CONCURRENCY=24)
    http.close_sessions()
    sandbox.inject("hackle", delay=0.3, count=48)
    track_many(48, vendors=["hackle"])
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        stats = sender.drain()
    assert stats.delivered == 48
    assert peak_in_flight(sandbox, "hackle", 0.3) == 24
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.mark.django_db(transaction=True)
def test_a_drain_waiting_on_its_vendors_sleeps(settings: Settings, sandbox: Sandbox) -> None:
    """Requests in flight and more waiting behind a full window: the drain's thread waits
    for an answer instead of looking again and again (it costs the pages their CPU)."""
    use_vendors(settings, sandbox, CONCURRENCY=2, MIN_CONCURRENCY=2, MAX_CONCURRENCY=2)
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
    use_vendors(settings, sandbox, only=("hackle", "browsee"), POLL_INTERVAL=0.1)
    sandbox.inject("browsee", delay=1.5)
    track_many(3, vendors=["hackle", "browsee"])
    flow.breaker.pause("hackle", 0.3, "a test")
    stats = sender.drain()
    assert "hackle" in stats.paused_vendors
    assert stats.delivered == 6  # Hackle's three too, in the same drain


@pytest.mark.django_db(transaction=True)
def test_a_drain_renews_its_claims_while_its_requests_outlast_the_lease(
    settings: Settings, sandbox: Sandbox
) -> None:
    """A request takes 1.2 s and the lease 0.3 s: the drain renews what it holds (the row
    in flight and the one waiting) every 0.1 s with one UPDATE for both, so another
    sender looking meanwhile finds nothing to take, and nothing is sent twice."""
    use_vendors(settings, sandbox, LEASE_SECONDS=0.3, CONCURRENCY=1, MAX_CONCURRENCY=1)
    sandbox.inject("hackle", delay=1.2, count=2)
    track_many(2, vendors=["hackle"])
    renewals: list[str] = []
    done = threading.Event()

    def drain() -> None:
        with CaptureQueriesContext(connection) as queries:
            sender.drain()
        renewals.extend(
            q["sql"]
            for q in queries
            if q["sql"].startswith('UPDATE "eventtrack_delivery" SET "claimed_until"')
        )
        done.set()

    thread = threading.Thread(target=drain)
    thread.start()
    taken: list[leases.Claim] = []
    try:
        sandbox.wait_for(1, vendor="hackle")
        while not done.wait(0.05):  # another sender, looking while the requests take long
            claim = leases.claim_due_deliveries("hackle", 10, timedelta(seconds=60))
            taken += [claim] if claim.deliveries else []
    finally:
        thread.join(10)
    assert taken == []
    assert received(sandbox, "hackle") == {0: 1, 1: 1}
    assert len(renewals) >= 10  # every third of the lease, for 2.4 s
    assert all(" IN (" in sql for sql in renewals)


@pytest.mark.django_db(transaction=True)
def test_a_backlog_larger_than_a_claim_s_bytes_is_sent_in_one_drain_claim_after_claim(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims of at most 100 kB of events, ten events of about 40 kB: each claim holds
    two (the memory a drain holds stays bounded), and a claim cut short by its bytes is
    not taken for the last one: the same drain sends all ten."""
    use_vendors(settings, sandbox, only=("hackle", "browsee"))
    monkeypatch.setattr(sender, "CLAIM_BYTES", 100_000)
    claimed: list[int] = []
    real_claim = leases.claim_due

    def claim_due(*args: Any, **kwargs: Any) -> leases.Claim:
        claim = real_claim(*args, **kwargs)
        claimed.append(len({delivery.event_id for delivery in claim.deliveries}))
        return claim

    monkeypatch.setattr(leases, "claim_due", claim_due)
    text = {f"p{index}": "x" * 1_000 for index in range(40)}
    with transaction.atomic():
        for n in range(10):
            track("order.placed", {"n": n, **text}, session=f"S{n}", vendors=["hackle", "browsee"])
    stats = sender.drain()
    assert stats.delivered == 20
    assert max(claimed) == 2
    assert received(sandbox, "browsee") == dict.fromkeys(range(10), 1)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_never_waits_for_a_parents_thread_keeping_what_an_answer_taught() -> None:
    with sender._learning:  # a parent's request thread, keeping a profile, at the fork
        report = run_in_child(lambda: {"free": sender._learning.acquire(timeout=2)}, timeout=5)
    assert report == {"free": True}
