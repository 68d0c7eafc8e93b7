"""The claims a process's drains hold, let go when the process stops."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack.delivery import held_claims, sender
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox
from tests.delivery.helpers import use_vendors
from tests.processes.helpers import run_in_child, track_many, wait_until


@pytest.mark.django_db(transaction=True)
def test_surrendering_the_claims_waits_for_a_claim_under_way(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process exiting surrenders its drains' claims while one may still be writing
    (waiting for SQLite's lock, writing the deliveries of a backlog): that claim is
    held and given back too, not committed afterwards and left until its lease ends.
    The drain is then stuck, as a daemon thread is when the interpreter exits."""
    use_vendors(settings, sandbox)
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


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_holds_none_of_its_parents_claims_nor_waits_on_their_locks() -> None:
    """A forked child that stops surrenders nothing of what its parent's drains hold,
    and never waits for a parent's drain that was claiming or sending at the fork."""
    stop = threading.Event()
    claim = leases.Claim(uuid.uuid4(), timezone.now(), [Delivery(pk=1)])
    held_claims.hold(claim, stop)
    try:
        assert held_claims.start_sending(claim.deliveries, stop)
        with held_claims.writing(stop), held_claims._sent_lock:  # held at the fork
            report = run_in_child(lambda: {"in_flight": held_claims.surrender(stop)}, timeout=5)
    finally:
        held_claims.drop([claim.token])
    assert report == {"in_flight": 0}


@pytest.mark.django_db(transaction=True)
def test_surrendering_gives_back_what_never_went_out_and_ends_the_lease_of_what_did(
    settings: Settings, sandbox: Sandbox
) -> None:
    """A stuck drain's claims, let go of by a process that exits: the rows never sent are
    unclaimed; the one sent keeps its token (its answer may still be recorded); all are
    due at once instead of when the lease ends."""
    use_vendors(settings, sandbox)
    track_many(3, vendors=["hackle"])
    stop = threading.Event()
    claim = leases.claim_due_deliveries("hackle", 10, timedelta(seconds=60))
    held_claims.hold(claim, stop)
    try:
        assert held_claims.start_sending(claim.deliveries[:1], stop)
        stop.set()
        assert not held_claims.start_sending(claim.deliveries[1:], stop)  # stopping
        assert held_claims.surrender(stop) == 1
    finally:
        held_claims.drop([claim.token])
    rows = Delivery.objects.order_by("created_at")
    assert [row.claim_token for row in rows] == [claim.token, None, None]
    assert rows.filter(next_attempt_at__lte=timezone.now()).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_give_back_the_database_refuses_is_tried_again(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_vendors(settings, sandbox)
    track_many(2, vendors=["hackle"])
    claim = leases.claim_due_deliveries("hackle", 10, timedelta(seconds=60))
    real_release = leases.release
    refusals = [OperationalError("server closed the connection unexpectedly")]

    def release(*args: Any) -> None:
        if refusals:
            raise refusals.pop()
        real_release(*args)

    monkeypatch.setattr(leases, "release", release)
    monkeypatch.setattr(held_claims, "RETRY_WAITS", (0.01, 0.01))
    assert held_claims.give_back(claim) == 0
    assert refusals == []
    assert not Delivery.objects.filter(claim_token__isnull=False).exists()
    assert Delivery.objects.filter(next_attempt_at__lte=timezone.now()).count() == 2
