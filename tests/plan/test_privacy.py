"""The tracking plan's quarantine and a person's privacy requests: a replay follows the
consent withdrawn since, and an erased person's quarantined events are never replayed."""

from __future__ import annotations

import pytest

from django_eventtrack import forget, track, withdraw_consent
from django_eventtrack.api import replay_quarantined
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from tests.plan.conftest import SHOP_PLAN, Configure
from tests.plan.test_track import BAD_ORDER, string_amounts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("hellotext_knows_order")
def test_a_replay_follows_a_withdrawal_made_since(with_plan: Configure, sandbox: Sandbox) -> None:
    with_plan("quarantine")
    held = track("order.placed", BAD_ORDER, profile="P1", user_id="U-q")
    assert held is not None
    withdraw_consent(["marketing"], user_id="U-q")

    with_plan("quarantine", string_amounts())
    assert replay_quarantined().routed == [held.id]

    outcome = dict(Delivery.objects.filter(event_id=held.id).values_list("vendor", "last_error"))
    assert outcome["hellotext"] == "no consent for marketing"
    assert outcome["primedata"] == "no consent for marketing"
    assert not [r for r in sandbox.requests("hellotext") if "U-q" in r.raw]


def test_an_erased_persons_quarantined_events_are_never_replayed(
    with_plan: Configure, sandbox: Sandbox
) -> None:
    with_plan("quarantine")
    held = track("order.placed", BAD_ORDER, profile="P1", user_id="U-e")
    assert held is not None
    forget(user_id="U-e")

    row = Event.objects.get(pk=held.id)
    assert (row.quarantine, row.properties, row.identity) == (None, {}, {})
    with_plan("quarantine", string_amounts())
    assert replay_quarantined().routed == []
    assert not sandbox.requests()
    assert SHOP_PLAN  # the plan the fixtures share is left as it was
