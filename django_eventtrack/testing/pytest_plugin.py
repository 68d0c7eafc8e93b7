"""The pytest plugin (registered as ``eventtrack`` through the ``pytest11`` entry point).

It defines fixtures and one option, and imports nothing that needs Django until one
is used, so installing the package never disturbs a test suite without Django or
without pytest-django. Disable it with ``-p no:eventtrack``.

``--eventtrack-plan-coverage`` reports, at the end of the run, which events of the
tracking plan the suite tracked, which it never did, and what it tracked that the
plan does not declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_eventtrack.testing.capture import CapturedEvents
    from django_eventtrack.testing.plan_coverage import PlanCoverage

OPTION = "--eventtrack-plan-coverage"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("eventtrack").addoption(
        OPTION,
        action="store_true",
        help="report which events of the tracking plan (EVENTTRACK['PLAN']) the tests tracked",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(OPTION, default=False):
        config.pluginmanager.register(_CoverageReporter(), "eventtrack-plan-coverage")


class _CoverageReporter:
    """Listens from the start of the session and reports in the terminal summary."""

    def __init__(self) -> None:
        self.coverage: PlanCoverage | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from django_eventtrack.testing.plan_coverage import PlanCoverage

        self.coverage = PlanCoverage()
        self.coverage.start()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.coverage is None:
            return
        from django_eventtrack.conf import get_config

        self.coverage.stop()
        compiled = get_config().plan
        terminalreporter.section("eventtrack plan coverage")
        for line in self.coverage.report(compiled.plan if compiled else None):
            terminalreporter.write_line(line)


@pytest.fixture
def tracked_events() -> Iterator[CapturedEvents]:
    """Events tracked during the test, captured instead of sent (HTTP is blocked).

    Needs database access like ``track()`` does (``@pytest.mark.django_db`` or
    the ``db`` fixture); works with and without ``transaction=True``.
    """
    from django_eventtrack.testing.capture import capture_events

    with capture_events() as events:
        yield events
