"""The admin and the tracking plan: the plan page, quarantined events listed with their
violations, and replaying them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from django_eventtrack import conf, track
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from tests.plan.conftest import SHOP_PLAN, Configure, WritePlan
from tests.processes.helpers import VENDORS
from tests.test_admin import _admin_settings  # noqa: F401 (the admin's templates and middleware)

pytestmark = pytest.mark.django_db(transaction=True)

PLAN_PAGE = reverse("admin:eventtrack_plan")
EVENTS = reverse("admin:django_eventtrack_event_changelist")


@pytest.fixture
def held(with_plan: Configure, hellotext_knows_order: None) -> dict[str, Any]:
    """The acceptance test's outbox: a valid order, a bad one and an undeclared event."""
    with_plan("quarantine")
    return {
        "good": track("order.placed", {"order": "A-1", "amount": 5}, profile="P1"),
        "bad": track("order.placed", {"order": "A-1", "amount": "five"}, profile="P1"),
        "undeclared": track("foo.bar", {}, profile="P1"),
    }


def test_the_plan_page_shows_each_event_and_the_quarantined_ones(
    admin_client: Client, held: dict[str, Any]
) -> None:
    page = admin_client.get(PLAN_PAGE).content.decode()
    assert "<h2>order.placed</h2>" in page
    assert "<p>A customer placed an order.</p>" in page
    assert "Last 7 days: 2 tracked, 1 broke the plan (1 quarantined)" in page
    assert "<td><code>amount</code></td><td>number, &gt;= 0</td><td>yes</td>" in page
    assert "<h2>product.viewed</h2>" in page
    assert "last seen never" in page
    assert "Quarantined: 2 events held back from every vendor" in page
    assert "properties.amount must be a number, got a string (&#x27;five&#x27;)" in page
    assert "foo.bar" in page
    assert "Tracked in the last 7 days but not declared" in page


def test_the_event_list_filters_quarantined_events_and_shows_why(
    admin_client: Client, held: dict[str, Any]
) -> None:
    response = admin_client.get(EVENTS, {"plan": "quarantined"})
    listed = {event.name for event in response.context["cl"].result_list}
    assert listed == {"order.placed", "foo.bar"}
    assert 'title="properties.amount must be a number' in response.content.decode()
    assert len(admin_client.get(EVENTS, {"plan": "followed"}).context["cl"].result_list) == 1


def test_the_replay_action_routes_what_now_passes(
    admin_client: Client, held: dict[str, Any], write_plan: WritePlan, sandbox: Sandbox
) -> None:
    fixed = json.loads(json.dumps(SHOP_PLAN))
    fixed["events"]["order.placed"]["properties"]["amount"] = {"type": ["number", "string"]}
    write_plan(fixed)
    conf.reload()
    ids = [held[key].id for key in ("good", "bad", "undeclared")]
    response = admin_client.post(
        EVENTS, {"action": "replay_quarantined", "_selected_action": ids}, follow=True
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert message == (
        "1 released and routed to their vendors; 1 still break the plan. "
        "1 not quarantined, left alone."
    )
    assert Delivery.objects.filter(event_id=held["bad"].id).count() == len(VENDORS)
    assert len(sandbox.events("hackle")) == 2


def test_a_viewer_sees_the_page_but_cannot_replay(
    client: Client, held: dict[str, Any], settings: Settings
) -> None:
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_event"))
    client.force_login(viewer)
    assert client.get(PLAN_PAGE).status_code == 200
    assert "Replay against the tracking plan" not in client.get(EVENTS).content.decode()
    client.post(EVENTS, {"action": "replay_quarantined", "_selected_action": [held["bad"].id]})
    assert Event.objects.get(pk=held["bad"].id).quarantine is not None


def test_without_a_plan_the_page_says_how_to_set_one(admin_client: Client) -> None:
    assert "No tracking plan is configured" in admin_client.get(PLAN_PAGE).content.decode()
