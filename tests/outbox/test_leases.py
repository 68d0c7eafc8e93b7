"""``outbox.leases``: a claim reserves due deliveries for one sender until its lease ends."""

from __future__ import annotations

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
