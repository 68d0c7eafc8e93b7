"""``outbox.vendor_profiles``: the profile ids vendors gave our users, looked up for ``track()``."""

from __future__ import annotations

import pytest
from django.db import transaction
from pytest_django import DjangoAssertNumQueries

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.models import Delivery, VendorProfile
from django_eventtrack.outbox import fanout
from django_eventtrack.sandbox import Sandbox

Status = Delivery.Status


@pytest.mark.django_db
def test_a_user_id_alone_looks_up_a_remembered_profile_once_per_process(
    worker_mode: Sandbox, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    """The lookup cost more than storing the event; a profile found is kept, a missing
    one is looked up again, so the first event after ``identify()`` carries it."""
    get_config()
    statuses = []
    for profile, queries in ((None, 2), ("P7", 2), ("P7", 1)):
        if profile:
            VendorProfile.objects.get_or_create(vendor="hellotext", user_id="7", profile_id=profile)
        with transaction.atomic(), django_assert_num_queries(queries):
            event = track("order.shipped", {"order": "O1"}, user_id=7)
        assert event is not None
        assert event.identity.profile == profile
        fanout.write_now([event.id])
        statuses.append(Delivery.objects.get(event_id=event.id, vendor="hellotext").status)
    assert statuses == [Status.SKIPPED, Status.PENDING, Status.PENDING]
