"""The tracking plan in a project's test suite: assert that properties follow it, and
count which declared events the suite tracked (the pytest plugin's
``--eventtrack-plan-coverage``).

Nothing here imports the models or needs a configured Django at import time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from django_eventtrack import signals
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import TrackedEvent, normalise_properties
from django_eventtrack.plan import TrackingPlan


def assert_follows_plan(
    name: str, properties: Mapping[str, Any] | None = None, *, identify: bool = False
) -> None:
    """Fail unless an event ``name`` with ``properties`` follows the tracking plan, without
    tracking anything: for the functions that build an event's properties (a model
    hook's ``properties``), tested on their own. ``identify`` checks ``identify()``
    traits instead."""
    __tracebackhide__ = True  # pytest: show the caller, not this helper
    compiled = get_config().plan
    if compiled is None:
        raise AssertionError("no tracking plan is configured (EVENTTRACK['PLAN'])")
    found = compiled.violations(name, normalise_properties(properties), identify=identify)
    if found:
        raise AssertionError(
            f"{name!r} breaks the tracking plan {compiled.plan.source}: "
            + "; ".join(map(str, found))
        )


class PlanCoverage:
    """Counts the events tracked while it listens (``track()``'s ``event_tracked``
    signal), and reports them against the plan."""

    def __init__(self) -> None:
        self.tracked: Counter[str] = Counter()
        self.broke_plan: Counter[str] = Counter()

    def start(self) -> None:
        signals.event_tracked.connect(self._tracked, dispatch_uid=id(self))

    def stop(self) -> None:
        signals.event_tracked.disconnect(dispatch_uid=id(self))

    def _tracked(self, sender: Any, *, event: TrackedEvent, violations: Any, **kwargs: Any) -> None:
        if event.is_identify:
            return
        self.tracked[event.name] += 1
        if violations:
            self.broke_plan[event.name] += 1

    def report(self, plan: TrackingPlan | None) -> list[str]:
        """Lines for the end of a test run."""
        if plan is None:
            return ["no tracking plan is configured (EVENTTRACK['PLAN']): nothing to cover"]
        declared = list(plan.events)
        covered = [name for name in declared if self.tracked[name]]
        percent = 100 * len(covered) // len(declared) if declared else 100
        lines = [
            f"tracking plan {plan.source}: the tests tracked {len(covered)} of its "
            f"{len(declared)} events ({percent}%)"
        ]
        missing = [name for name in declared if not self.tracked[name]]
        if missing:
            lines.append(f"never tracked: {', '.join(missing)}")
        undeclared = sorted(set(self.tracked) - set(declared))
        if undeclared:
            lines.append(f"tracked but not declared: {', '.join(undeclared)}")
        broken = sorted(self.broke_plan)
        if broken:
            lines.append(f"tracked breaking the plan: {', '.join(broken)}")
        return lines
