"""The plan inside ``track()``/``identify()``: the three modes, quarantine, replay.

End to end against the vendor sandbox: what reaches a vendor is what the sandbox
recorded, and what is held back is what the outbox keeps.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connections
from pytest_django import Settings

from django_eventtrack import PlanViolation, conf, identify, track
from django_eventtrack.api import replay_quarantined
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.monitoring import status
from django_eventtrack.outbox import quarantine
from django_eventtrack.sandbox import Sandbox
from tests.plan.conftest import SHOP_PLAN, Configure, WritePlan
from tests.processes.helpers import VENDORS

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = {"order": "A-1", "amount": 89.9, "currency": "USD"}
BAD_ORDER = {"order": "A-1", "amount": "five", "currency": "USD"}


def received(sandbox: Sandbox) -> dict[str, int]:
    """Events each vendor accepted (a batch counts each of its events)."""
    return {vendor: len(sandbox.events(vendor)) for vendor in VENDORS}


def string_amounts() -> dict[str, Any]:
    """The shop's plan after it learnt that amounts arrive as strings too."""
    plan = json.loads(json.dumps(SHOP_PLAN))
    plan["events"]["order.placed"]["properties"]["amount"] = {"type": ["number", "string"]}
    return plan


@pytest.mark.usefixtures("hellotext_knows_order")
def test_quarantine_holds_bad_events_back_from_every_vendor_and_keeps_them(
    with_plan: Configure, sandbox: Sandbox
) -> None:
    with_plan("quarantine")
    good = track("order.placed", ORDER, profile="P1", user_id="7")
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)
    assert good is not None
    assert Event.objects.get(pk=good.id).violations is None
    assert set(Delivery.objects.filter(event_id=good.id).values_list("status", flat=True)) == {
        "delivered"
    }

    bad = track("order.placed", BAD_ORDER, profile="P1", user_id="7")  # does not raise
    undeclared = track("foo.bar", {"x": 1}, profile="P1", user_id="7")
    assert bad is not None
    assert undeclared is not None
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)  # nothing more reached anyone

    held = {row.name: row for row in Event.objects.filter(quarantine__isnull=False)}
    assert set(held) == {"order.placed", "foo.bar"}
    assert held["order.placed"].violations == [
        {"field": "properties.amount", "message": "must be a number, got a string ('five')"}
    ]
    [violation] = held["foo.bar"].violations or []
    assert violation["field"] == "name"
    assert "'foo.bar' is not declared" in violation["message"]
    assert held["order.placed"].properties == BAD_ORDER  # nothing lost
    assert not Delivery.objects.filter(event_id__in=[bad.id, undeclared.id]).exists()
    assert all(row.routes is None for row in held.values())


def test_quarantined_events_count_as_nothing_pending_and_survive_the_purge(
    with_plan: Configure,
) -> None:
    with_plan("quarantine")
    track("foo.bar", {}, profile="P1")
    assert status.summary().totals.pending == 0
    call_command("eventtrack_purge", "--days", "0.000001", stdout=io.StringIO())
    assert Event.objects.filter(quarantine__isnull=False).count() == 1


def test_raise_mode_raises_plan_violation_naming_the_event_the_property_and_the_type(
    with_plan: Configure, sandbox: Sandbox
) -> None:
    with_plan("raise")
    with pytest.raises(PlanViolation) as caught:
        track("order.placed", BAD_ORDER, profile="P1")
    error = caught.value
    assert isinstance(error, InvalidEvent)
    assert error.event == "order.placed"
    assert error.field == "properties.amount"
    assert "'order.placed' breaks the tracking plan" in str(error)
    assert "properties.amount must be a number, got a string ('five')" in str(error)
    with pytest.raises(PlanViolation, match=r"'foo\.bar' is not declared"):
        track("foo.bar", {}, profile="P1")
    with pytest.raises(PlanViolation, match=r"properties\.order is required"):
        track("order.placed", {"amount": 1}, profile="P1")
    assert not Event.objects.exists()
    assert received(sandbox) == dict.fromkeys(VENDORS, 0)


def test_raise_mode_with_raise_on_invalid_off_logs_and_tracks_nothing(
    with_plan: Configure, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with_plan("raise")
    settings.EVENTTRACK = {**settings.EVENTTRACK, "RAISE_ON_INVALID": False}
    with caplog.at_level(logging.ERROR, "django_eventtrack"):
        assert track("foo.bar", {}, profile="P1") is None
    assert "'foo.bar' is not declared" in caplog.text
    assert not Event.objects.exists()


@pytest.mark.usefixtures("hellotext_knows_order")
def test_warn_mode_sends_the_event_and_flags_it(
    with_plan: Configure, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with_plan("warn")
    with caplog.at_level(logging.WARNING, "django_eventtrack"):
        event = track("order.placed", BAD_ORDER, profile="P1", user_id="7")
    assert event is not None
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)
    row = Event.objects.get(pk=event.id)
    assert row.quarantine is None
    assert row.violations == [
        {"field": "properties.amount", "message": "must be a number, got a string ('five')"}
    ]
    assert "breaks the tracking plan (sent and flagged)" in caplog.text


@pytest.mark.usefixtures("hellotext_knows_order")
def test_replay_after_the_plan_is_fixed_delivers_the_quarantined_order_once(
    with_plan: Configure, sandbox: Sandbox, write_plan: WritePlan
) -> None:
    with_plan("quarantine")
    bad = track("order.placed", BAD_ORDER, profile="P1", user_id="7")
    track("foo.bar", {}, profile="P1")
    assert bad is not None
    write_plan(string_amounts())  # the same file, now accepting string amounts
    conf.reload()

    out = call_command_output("eventtrack_plan", "--replay")
    assert "1 released and routed" in out
    assert "1 still break the plan" in out
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)
    assert sandbox.requests("hackle")[0].body["event"]["properties"]["amount"] == "five"
    row = Event.objects.get(pk=bad.id)
    assert (row.quarantine, row.violations) == (None, None)
    assert Event.objects.get(name="foo.bar").quarantine is not None

    assert "0 released" in call_command_output("eventtrack_plan", "--replay")
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)
    assert Delivery.objects.filter(event_id=bad.id).count() == len(VENDORS)


@pytest.mark.usefixtures("hellotext_knows_order")
def test_two_replays_racing_route_each_event_once(
    with_plan: Configure, sandbox: Sandbox, write_plan: WritePlan, settings: Settings
) -> None:
    with_plan("quarantine")
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    # user_id: a session for PrimeData, which ties every event to one.
    ids = [track("order.placed", BAD_ORDER, profile="P1", user_id="7").id for _ in range(20)]  # type: ignore[union-attr]
    write_plan(string_amounts())
    conf.reload()
    start = threading.Barrier(2)
    results = []

    def replay() -> None:
        start.wait(timeout=10)
        try:
            results.append(replay_quarantined())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=replay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    routed = [pk for result in results for pk in result.routed]
    assert sorted(routed) == sorted(ids)  # each once, between the two
    call_command("eventtrack_worker", "--once", stdout=io.StringIO())
    assert received(sandbox) == dict.fromkeys(VENDORS, 20)
    assert Delivery.objects.filter(event_id__in=ids).count() == 20 * len(VENDORS)


@pytest.mark.usefixtures("hellotext_knows_order")
def test_a_replay_that_read_an_event_another_released_meanwhile_leaves_it(
    with_plan: Configure, sandbox: Sandbox, write_plan: WritePlan
) -> None:
    """The race itself, step by step: both replays read the quarantined row, one routes
    it, and the other's conditional update then matches nothing."""
    with_plan("quarantine")
    event = track("order.placed", BAD_ORDER, profile="P1", user_id="7")
    assert event is not None
    write_plan(string_amounts())
    conf.reload()
    stale = Event.objects.get(pk=event.id)  # read by a replay that is slower
    assert replay_quarantined().routed == [event.id]
    late = quarantine.Released()
    quarantine._release_one(stale, conf.get_config().plan, late)  # type: ignore[arg-type]
    assert (late.routed, late.taken) == ([], 1)
    assert received(sandbox) == dict.fromkeys(VENDORS, 1)
    assert Delivery.objects.filter(event_id=event.id).count() == len(VENDORS)


def test_replay_without_a_plan_is_an_error(settings: Settings) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no tracking plan is configured"):
        call_command("eventtrack_plan", "--replay")


def test_the_default_mode_is_raise_in_tests_and_under_debug_else_quarantine(
    with_plan: Configure, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_plan(mode=None)
    assert hasattr(mail, "outbox")  # pytest-django set up Django's test environment
    with pytest.raises(PlanViolation):
        track("foo.bar", {}, profile="P1")
    monkeypatch.delattr(mail, "outbox")
    settings.DEBUG = True
    with pytest.raises(PlanViolation):
        track("foo.bar", {}, profile="P1")
    settings.DEBUG = False
    assert track("foo.bar", {}, profile="P1") is not None
    assert Event.objects.get().quarantine == {"vendors": None}


def test_quarantine_keeps_the_vendors_track_was_asked_for(with_plan: Configure) -> None:
    with_plan("quarantine")
    track("foo.bar", {}, profile="P1", vendors=["hackle", "browsee"])
    assert Event.objects.get().quarantine == {"vendors": ["browsee", "hackle"]}


def test_identify_traits_are_checked_when_the_plan_declares_them(with_plan: Configure) -> None:
    plan = {
        **SHOP_PLAN,
        "identify": {
            "properties": {"email": {"type": "string", "format": "email", "pii": True}},
            "required": ["email"],
        },
    }
    with_plan("raise", plan)
    with pytest.raises(PlanViolation) as caught:
        identify(user_id="7", traits={"email": "not-an-address"})
    # A pii property's value is kept out of the message (it is logged and stored).
    assert str(caught.value).endswith("properties.email must be a valid email, got a string")
    assert identify(user_id="7", traits={"email": "a@example.com"}) is not None


def test_identify_is_not_an_undeclared_event(with_plan: Configure) -> None:
    with_plan("raise")
    assert identify(user_id="7", traits={"email": "a@example.com"}) is not None


def call_command_output(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
