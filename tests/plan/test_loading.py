"""Loading the plan (JSON, YAML, a Python object) and the vendor settings it derives."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.errors import ConfigurationError, PlanError
from django_eventtrack.plan import TrackingPlan, load_plan, parse_plan
from tests.plan.conftest import SHOP_PLAN, WritePlan

KEYS = {"hackle": {"name": "..."}}


def test_a_json_file_loads(write_plan: WritePlan) -> None:
    plan = load_plan(str(write_plan()), KEYS)
    assert list(plan.events) == ["order.placed", "product.viewed"]
    order = plan.events["order.placed"]
    assert order.required == ("order", "amount")
    assert order.description == "A customer placed an order."
    assert plan.source.endswith("plan.json")


def test_a_yaml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "events:\n  order.placed:\n    properties:\n      amount: {type: number}\n"
        "    required: [amount]\n",
        encoding="utf-8",
    )
    assert load_plan(path, KEYS).events["order.placed"].required == ("amount",)


def test_yaml_without_pyyaml_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.yml"
    path.write_text("events: {}\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(PlanError, match=r"needs PyYAML: pip install 'django-eventtrack\[plan\]'"):
        load_plan(path, KEYS)


def test_a_dotted_path_names_a_dict_or_a_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    module = ModuleType("shop_plan")
    module.PLAN = SHOP_PLAN  # type: ignore[attr-defined]
    module.build = lambda: SHOP_PLAN  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shop_plan", module)
    assert len(load_plan("shop_plan.PLAN", KEYS)) == 2
    assert len(load_plan("shop_plan.build", KEYS)) == 2
    with pytest.raises(PlanError, match=r"neither a \.json/\.yaml file nor an importable"):
        load_plan("shop_plan.missing", KEYS)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "must be an object like"),
        ({}, 'needs "events"'),
        ({"events": {}, "evnts": {}}, "has unknown keys ['evnts']"),
        ({"events": {"bad name!": {}}}, "event 'bad name!': event name 'bad name!' may only"),
        ({"events": {"a": []}}, "event 'a' must be an object"),
        ({"events": {"a": {"type": "array"}}}, '"type" must be "object"'),
        ({"events": {"a": {"vendors": {"nope": {}}}}}, "names 'nope', which is not a vendor"),
        ({"events": {"a": {"vendors": {"hackle": {"key": "x"}}}}}, "must map some of these keys"),
        ({"events": {"a": {"properties": {"p": {"$ref": "#/$defs/x"}}}}}, "does not name one"),
    ],
)
def test_a_malformed_plan_is_an_error_naming_the_source(data: Any, problem: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(data, "plan.json", KEYS)
    assert "tracking plan plan.json" in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_or_broken_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot be read"):
        load_plan(tmp_path / "missing.json", KEYS)
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(PlanError, match="is not valid JSON"):
        load_plan(broken, KEYS)


def test_a_plan_object_is_taken_as_it_is() -> None:
    plan = parse_plan(SHOP_PLAN, "here", KEYS)
    assert load_plan(plan, KEYS) is plan
    assert isinstance(plan, TrackingPlan)


# -- the settings --------------------------------------------------------------------------


def with_mappings(write_plan: WritePlan, **vendors: dict[str, str]) -> str:
    data = json.loads(json.dumps(SHOP_PLAN))
    data["events"]["order.placed"]["vendors"] = vendors
    return str(write_plan(data))


def test_plan_and_plan_mode_come_from_settings_or_the_environment(
    settings: Settings, write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTTRACK_PLAN", str(write_plan()))
    monkeypatch.setenv("EVENTTRACK_PLAN_MODE", "warn")
    conf.reload()
    config = conf.get_config()
    assert config.plan is not None
    assert list(config.plan.plan.events) == ["order.placed", "product.viewed"]
    assert config.plan_mode() == "warn"
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN_MODE": "sideways"}
    with pytest.raises(ConfigurationError, match="must be one of raise, quarantine, warn"):
        conf.get_config()


def test_no_plan_is_todays_behaviour(settings: Settings) -> None:
    assert conf.get_config().plan is None


def test_the_plan_fills_the_vendor_settings(settings: Settings, write_plan: WritePlan) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": with_mappings(
            write_plan,
            hackle={"name": "Order Placed"},
            hellotext={"action": "appointment.booked", "object": "booking"},
            primedata={"event_type": "order"},
        ),
    }
    vendors = conf.get_config().vendors
    assert vendors["hackle"].event_names == {"order.placed": "Order Placed"}
    assert vendors["hellotext"].event_names == {"order.placed": "appointment.booked"}
    assert vendors["hellotext"].options["ACTIONS"] == frozenset({"appointment.booked"})
    assert vendors["hellotext"].options["OBJECTS"] == {"order.placed": "booking"}
    assert vendors["primedata"].event_names == {"order.placed": "order"}
    assert vendors["primedata"].options["EVENT_TYPES"] == frozenset({"order"})
    assert vendors["browsee"].event_names == {}


def test_settings_that_agree_with_the_plan_are_merged(
    settings: Settings, write_plan: WritePlan
) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": with_mappings(write_plan, hackle={"name": "Order Placed"}),
        "VENDORS": {"hackle": {"EVENT_NAMES": {"product.viewed": "View"}}},
    }
    assert conf.get_config().vendors["hackle"].event_names == {
        "order.placed": "Order Placed",
        "product.viewed": "View",
    }


@pytest.mark.parametrize(
    ("vendor", "mapping", "setting", "message"),
    [
        (
            "hackle",
            {"name": "Order Placed"},
            {"EVENT_NAMES": {"order.placed": "purchase"}},
            'EVENTTRACK["VENDORS"]["hackle"]["EVENT_NAMES"] (or EVENTTRACK_HACKLE_EVENT_NAMES) '
            "maps 'order.placed' to 'purchase' but the tracking plan",
        ),
        (
            "primedata",
            {"event_type": "order"},
            {"EVENT_TYPES": ["cart"]},
            "names 'order' in EVENT_TYPES, which "
            'EVENTTRACK["VENDORS"]["primedata"]["EVENT_TYPES"] (or '
            "EVENTTRACK_PRIMEDATA_EVENT_TYPES) does not list",
        ),
        (
            "hellotext",
            {"action": "appointment.booked"},
            {"ACTIONS": ["table.booked"]},
            "names 'appointment.booked' in ACTIONS",
        ),
    ],
)
def test_a_setting_that_contradicts_the_plan_is_an_error_naming_both(
    settings: Settings,
    write_plan: WritePlan,
    vendor: str,
    mapping: dict[str, str],
    setting: dict[str, Any],
    message: str,
) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": with_mappings(write_plan, **{vendor: mapping}),
        "VENDORS": {vendor: setting},
    }
    with pytest.raises(PlanError) as caught:
        conf.get_config()
    assert message in str(caught.value)
    assert f'tracking plan {settings.EVENTTRACK["PLAN"]} ("vendors"."{vendor}")' in str(
        caught.value
    )


def test_a_hellotext_generated_action_in_the_plan_is_refused(
    settings: Settings, write_plan: WritePlan
) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "PLAN": with_mappings(write_plan, hellotext={"action": "short_link.clicked"}),
    }
    with pytest.raises(ConfigurationError, match="is one of Hellotext's own actions"):
        conf.get_config()
