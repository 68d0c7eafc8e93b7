"""``manage.py check`` and the tracking plan: broken schemas fail it, naming the place;
what a vendor will do with an event as declared is a warning saying so."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from pytest_django import Settings

from django_eventtrack.checks import check_configuration, check_plan
from django_eventtrack.sandbox import Sandbox
from tests.plan.conftest import SHOP_PLAN, WritePlan


def plan_with(**events: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(SHOP_PLAN))
    data["events"].update(events)
    return data


def configure(settings: Settings, write_plan: WritePlan, data: dict[str, Any], **more: Any) -> str:
    path = str(write_plan(data))
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN": path, **more}
    return path


def test_an_invalid_schema_fails_manage_py_check_naming_the_file_event_and_property(
    settings: Settings, write_plan: WritePlan
) -> None:
    path = configure(
        settings,
        write_plan,
        plan_with(**{"cart.added": {"properties": {"qty": {"type": "strng"}}}}),
    )
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", "--tag", "eventtrack")
    text = str(caught.value)
    assert "eventtrack.E010" in text
    assert (
        f"tracking plan {path}: event 'cart.added', property 'qty': 'strng' is not a JSON " in text
    )


def test_the_metaschema_refuses_what_the_compiled_checks_would_let_by(
    settings: Settings, write_plan: WritePlan
) -> None:
    configure(
        settings,
        write_plan,
        plan_with(**{"cart.added": {"properties": {"qty": {"type": "integer", "title": 5}}}}),
    )
    [error] = [m for m in check_plan() if m.id == "eventtrack.E010"]
    assert "cart.added.schema.json is not valid JSON Schema at properties/qty/title" in error.msg
    assert "5 is not of type 'string'" in error.msg


def test_a_valid_plan_passes(settings: Settings, write_plan: WritePlan) -> None:
    configure(settings, write_plan, SHOP_PLAN)
    assert [m.id for m in check_configuration()] == ["eventtrack.W001"]  # no vendor
    assert check_plan() == []


def test_a_model_hook_tracking_an_undeclared_event_is_an_error(
    settings: Settings, write_plan: WritePlan
) -> None:
    configure(
        settings,
        write_plan,
        SHOP_PLAN,
        MODEL_EVENTS=[{"model": "testapp.Order", "on": "create", "event": "order.created"}],
    )
    [error] = [m for m in check_plan() if m.id == "eventtrack.E011"]
    assert error.msg.startswith("EVENTTRACK[\"MODEL_EVENTS\"][0] tracks 'order.created', which")


@pytest.mark.parametrize(
    ("event", "entry", "warning"),
    [
        (
            "order.placed",
            {"properties": {"order": {"type": "string"}}},
            "Hellotext skips 'order.placed' events without its object ('order'): order.placed "
            "needs it, and the plan does not require it",
        ),
        (
            "order.shipped",
            {"properties": {"amount": {"type": "number"}}, "additionalProperties": False},
            "Hellotext skips every 'order.shipped' event: order.shipped needs its object "
            "('order'), which the plan does not declare",
        ),
        (
            "cart.added",
            {"properties": {"cart": {"type": "object"}}, "required": ["cart"]},
            "Hackle gets objects as JSON strings (dropped past 1,024 characters): "
            "'cart.added''s cart",
        ),
        (
            "cart.added",
            {"properties": {"cart": {"type": "object"}}, "required": ["cart"]},
            "PrimeData gets 'cart.added''s object properties as JSON strings",
        ),
        (
            "signup.done",
            {},
            "Hellotext skips every 'signup.done' event: 'signup.done' is not a Hellotext action",
        ),
        (
            "page.viewed",
            {"properties": {"note": {"type": "string", "maxLength": 5000}}},
            "Hackle cuts strings to 1,024 characters: 'page.viewed''s note",
        ),
    ],
)
def test_what_a_vendor_will_do_with_an_event_as_declared_is_a_warning(
    settings: Settings,
    write_plan: WritePlan,
    sandbox: Sandbox,
    event: str,
    entry: dict[str, Any],
    warning: str,
) -> None:
    configure(settings, write_plan, plan_with(**{event: entry}), VENDORS=sandbox.vendor_settings())
    warnings = [m.msg for m in check_plan() if m.id == "eventtrack.W010"]
    assert any(warning in text for text in warnings), warnings


def test_a_vendor_that_does_not_get_the_event_says_nothing(
    settings: Settings, write_plan: WritePlan, sandbox: Sandbox
) -> None:
    vendors = sandbox.vendor_settings()
    vendors["hellotext"]["EVENTS"] = ["order.placed"]  # type: ignore[assignment]
    configure(settings, write_plan, plan_with(**{"signup.done": {}}), VENDORS=vendors)
    assert not any("signup.done" in m.msg for m in check_plan() if "Hellotext" in m.msg)


def test_an_accepted_fit_is_not_warned_of_for_that_event_and_vendor_alone(
    settings: Settings, write_plan: WritePlan, sandbox: Sandbox
) -> None:
    """``"accepted"`` in an event's mapping for a vendor says why what it does is fine:
    no W010 for that event at that vendor; another vendor, and another event, still warn."""
    cart = {"properties": {"cart": {"type": "object"}}, "required": ["cart"]}
    accepted = {**cart, "vendors": {"hackle": {"accepted": "the reports read the JSON"}}}
    configure(
        settings,
        write_plan,
        plan_with(**{"cart.added": accepted, "order.shipped": {**cart}}),
        VENDORS=sandbox.vendor_settings(),
    )
    warnings = [m.msg for m in check_plan() if m.id == "eventtrack.W010"]
    assert not any("Hackle" in text and "'cart.added'" in text for text in warnings), warnings
    assert any("PrimeData gets 'cart.added''s object" in text for text in warnings), warnings
    assert any("Hackle" in text and "'order.shipped''s cart" in text for text in warnings)
    [hint] = {m.hint for m in check_plan() if m.id == "eventtrack.W010" and "Hackle" in m.msg}
    assert '"vendors": {"hackle": {"accepted": "<why>"}}' in str(hint)


def test_accepted_must_be_a_reason(settings: Settings, write_plan: WritePlan) -> None:
    entry = {"vendors": {"hackle": {"accepted": ""}}}
    configure(settings, write_plan, plan_with(**{"cart.added": entry}))
    [error] = [m for m in check_configuration() if m.id == "eventtrack.E010"]
    assert "'accepted' (why what the vendor does with the event is accepted" in error.msg


def test_an_unchecked_format_is_a_warning(settings: Settings, write_plan: WritePlan) -> None:
    configure(
        settings,
        write_plan,
        plan_with(**{"a.b": {"properties": {"host": {"type": "string", "format": "hostname"}}}}),
    )
    [warning] = [m for m in check_plan() if m.id == "eventtrack.W011"]
    assert "format 'hostname' is not checked" in warning.msg
