"""What the plan's vendor mappings change at the vendors: the Hellotext object's property,
the PrimeData event types, each vendor's name for the event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.testing import capture_events
from tests.plan.conftest import SHOP_PLAN, WritePlan

pytestmark = pytest.mark.django_db

TEST_CREDENTIALS = {
    "hellotext": {"API_TOKEN": "t"},
    "hackle": {"API_KEY": "k"},
    "primedata": {"CLIENT_ID": "c", "ACCESS_TOKEN": "a"},
}


@pytest.fixture
def mapped(settings: Settings, write_plan: WritePlan) -> None:
    plan: dict[str, Any] = json.loads(json.dumps(SHOP_PLAN))
    order = plan["events"]["order.placed"]
    order["properties"]["purchase"] = {"type": "object"}
    order["vendors"] = {
        "hellotext": {"object": "purchase"},
        "hackle": {"name": "Order Placed"},
        "primedata": {"event_type": "order"},
    }
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": str(write_plan(plan)),
        "VENDORS": TEST_CREDENTIALS,
    }


@pytest.mark.usefixtures("mapped")
def test_the_mappings_reach_the_vendors_requests() -> None:
    with capture_events() as events:
        track(
            "order.placed",
            {"order": "A-1", "amount": 5, "purchase": {"reference": "P-9", "name": "Tee"}},
            profile="P1",
            user_id="7",
        )
        track("product.viewed", {"product": "TEE-1"}, profile="P1", user_id="7")
    placed, viewed = events
    # Hellotext's object comes from the property the plan names, not the noun-named one.
    assert placed.payload("hellotext")["object_parameters"] == {
        "source": "django",
        "reference": "P-9",
        "name": "Tee",
    }
    assert placed.payload("hackle")["event"]["key"] == "Order Placed"
    assert placed.payload("primedata")["events"][0]["eventType"] == "order"
    # The plan names PrimeData's types: an event it does not map is not a registered one.
    assert "not a registered PrimeData event type" in viewed.skipped["primedata"]
