"""Pacing a drain: its share of a busy process's time, the bell that wakes it, and how
often it goes to the database."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.delivery import sender
from django_eventtrack.delivery.pacing import Bell, Share
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox
from tests.delivery.helpers import use_vendors
from tests.processes.helpers import VENDORS, busy_process, track_many, wait_until

Status = Delivery.Status


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
    use_vendors(settings, sandbox, only=VENDORS)
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
