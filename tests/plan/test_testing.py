"""The testing helpers and the pytest plugin, with a tracking plan."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pytest_django import Settings

from django_eventtrack import PlanViolation, track
from django_eventtrack.conf import get_config
from django_eventtrack.testing import PlanCoverage, assert_follows_plan, capture_events
from tests.plan.conftest import SHOP_PLAN, WritePlan

pytest_plugins = ["pytester"]


@pytest.fixture
def planned(settings: Settings, write_plan: WritePlan) -> Path:
    path = write_plan()
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN": str(path)}
    return path


@pytest.mark.usefixtures("planned")
def test_assert_follows_plan_checks_properties_without_tracking() -> None:
    assert_follows_plan("order.placed", {"order": "A-1", "amount": 5})
    with pytest.raises(AssertionError, match=r"properties\.amount must be a number"):
        assert_follows_plan("order.placed", {"order": "A-1", "amount": "5"})
    with pytest.raises(AssertionError, match=r"'signup\.done' is not declared"):
        assert_follows_plan("signup.done")


def test_assert_follows_plan_without_a_plan_says_so() -> None:
    with pytest.raises(AssertionError, match="no tracking plan is configured"):
        assert_follows_plan("order.placed")


@pytest.mark.django_db
def test_captured_events_carry_their_violations_and_can_be_checked(
    planned: Path, settings: Settings
) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "PLAN_MODE": "quarantine"}
    with capture_events() as events:
        track("order.placed", {"order": "A-1", "amount": 5})
        track("order.placed", {"order": "A-1", "amount": "five"})
        assert [event.quarantined for event in events] == [False, True]
        assert events[1].violations == (
            "properties.amount must be a number, got a string ('five')",
        )
        assert "quarantined: properties.amount must be a number" in events[1].describe()
        with pytest.raises(AssertionError) as caught:
            events.assert_plan_followed()
    assert str(caught.value) == (
        f"1 captured event(s) break the tracking plan {planned}:\n"
        "  order.placed: properties.amount must be a number, got a string ('five')"
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("planned")
def test_in_tests_the_default_mode_raises() -> None:
    with capture_events(), pytest.raises(PlanViolation):
        track("order.placed", {"order": "A-1"})


@pytest.mark.django_db
@pytest.mark.usefixtures("planned")
def test_plan_coverage_counts_what_was_tracked() -> None:
    coverage = PlanCoverage()
    coverage.start()
    try:
        track("order.placed", {"order": "A-1", "amount": 5})
        with pytest.raises(PlanViolation):
            track("signup.done", {})
    finally:
        coverage.stop()
    track("product.viewed", {})  # after stop: not counted
    compiled = get_config().plan
    assert compiled is not None
    assert coverage.report(compiled.plan) == [
        f"tracking plan {compiled.plan.source}: the tests tracked 1 of its 2 events (50%)",
        "never tracked: product.viewed",
    ]


def test_the_pytest_plugin_reports_plan_coverage(pytester: pytest.Pytester, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SHOP_PLAN), encoding="utf-8")
    pytester.makepyfile(
        test_shop=textwrap.dedent(
            """
            import pytest
            from django_eventtrack import track

            @pytest.mark.django_db
            def test_order():
                track("order.placed", {"order": "A-1", "amount": 5})
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "--ds=tests.settings",
        "--eventtrack-plan-coverage",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore",
    )
    result.stdout.fnmatch_lines(
        [
            "*eventtrack plan coverage*",
            "tracking plan *plan.json: the tests tracked 1 of its 2 events (50%)",
            "never tracked: product.viewed",
        ]
    )
    assert result.ret == 0


@pytest.fixture(autouse=True)
def _plan_from_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The plugin's subprocess reads the plan from the environment (its settings are ours)."""
    if request.node.name == "test_the_pytest_plugin_reports_plan_coverage":
        monkeypatch.setenv("EVENTTRACK_PLAN", str(tmp_path / "plan.json"))
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
