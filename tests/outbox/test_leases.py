"""``outbox.leases``: a claim reserves due deliveries for one sender until its lease ends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_eventtrack import track
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox
from tests.outbox.conftest import _claim


@pytest.mark.django_db
def test_a_claim_is_exclusive_until_its_lease_ends(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    first = _claim()
    assert len(first.deliveries) == 1
    assert _claim().deliveries == []  # leased to the first sender
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    second = _claim()  # the first sender "died": its lease is over
    assert [d.pk for d in second.deliveries] == [d.pk for d in first.deliveries]
    assert second.token != first.token


@pytest.mark.django_db
def test_release_makes_deliveries_due_again(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    claim = _claim()
    leases.release(claim, claim.deliveries)
    assert len(_claim().deliveries) == 1


@pytest.mark.django_db
def test_a_claim_reads_at_most_max_bytes_of_events_and_at_least_one(
    worker_mode: Sandbox,
) -> None:
    """Events of about 40 kB: a claim bounded at 100 kB takes two of them (each read
    once for both its vendors), one bounded below a single event still takes one."""
    for n in range(5):
        text = {"a": "x" * 20_000, "b": "y" * 20_000}
        track("a.b", {"n": n, **text}, user_id=1, vendors=["hackle", "browsee"])
    lease = timedelta(seconds=60)
    claim = leases.claim_due({"hackle": 10, "browsee": 10}, lease, max_bytes=100_000)
    assert sorted(d.vendor for d in claim.deliveries) == ["browsee", "browsee", "hackle", "hackle"]
    assert len({d.event_id for d in claim.deliveries}) == 2
    assert claim.cut_short  # more are due: a sender must not take the claim for its last
    one = leases.claim_due({"hackle": 10}, lease, max_bytes=1)
    assert (len(one.deliveries), one.cut_short) == (1, True)
    rest = leases.claim_due({"hackle": 10, "browsee": 10}, lease)  # unbounded: the rest
    assert (len(rest.deliveries), rest.cut_short) == (10 - 4 - 1, False)


@pytest.mark.django_db
def test_renewing_extends_the_claim_of_the_rows_still_held(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    track("a.b", user_id=2)
    claim = _claim(lease=1)
    recorded, held = claim.deliveries
    leases.update(claim, [recorded], status=Delivery.Status.DELIVERED)
    assert leases.renew([claim.token], claim.deliveries, timedelta(seconds=600)) == 1
    until = Delivery.objects.get(pk=held.pk).claimed_until
    assert until is not None
    assert until > timezone.now() + timedelta(minutes=9)
    assert Delivery.objects.get(pk=recorded.pk).claimed_until is None
    assert leases.renew([uuid.uuid4()], [held], timedelta(seconds=600)) == 0  # not its claim
