"""Replaying quarantined events on PostgreSQL: four ``eventtrack_plan --replay`` processes
race over the same quarantined events, and each event reaches each vendor once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from django_eventtrack.sandbox import Sandbox
from tests.integration.conftest import PostgresDatabase, Processes
from tests.processes.helpers import VENDORS, received

EVENTS = 200
REPLAYS = 4

#: Track EVENTS order.placed events whose amount the plan refuses (quarantined).
TRACK_BAD = f"""
import django
django.setup()
from django_eventtrack import track
for n in range({EVENTS}):
    track("order.placed", {{"n": n, "order": f"O{{n}}", "amount": "five"}}, session=f"S{{n}}")
"""


def plan(amount: dict[str, Any]) -> dict[str, Any]:
    properties = {"n": {"type": "integer"}, "order": {"type": "string"}, "amount": amount}
    return {"events": {"order.placed": {"properties": properties, "required": ["order"]}}}


@pytest.mark.integration
def test_racing_replays_deliver_each_quarantined_event_once(
    on_postgres: Processes, postgres: PostgresDatabase, sandbox: Sandbox, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan({"type": "number"})))
    on_postgres.env |= {"EVENTTRACK_PLAN": str(plan_file), "EVENTTRACK_PLAN_MODE": "quarantine"}
    on_postgres.run("-c", TRACK_BAD, EVENTTRACK_DELIVERY="worker")
    held = postgres.query("SELECT COUNT(*) FROM eventtrack_event WHERE quarantine IS NOT NULL")
    assert held == [(EVENTS,)]

    plan_file.write_text(json.dumps(plan({"type": ["number", "string"]})))
    replays = [
        on_postgres.start(
            f"replay-{index}",
            "-m",
            "django",
            "eventtrack_plan",
            "--replay",
            EVENTTRACK_DELIVERY="worker",
        )
        for index in range(REPLAYS)
    ]
    assert [process.wait(120) for process in replays] == [0] * REPLAYS
    routed = sum(
        int(on_postgres.output(process).split(" released and routed", 1)[0].split()[-1])
        for process in replays
    )
    assert routed == EVENTS  # each event released by exactly one of the replays
    on_postgres.run("-m", "django", "eventtrack_worker", "--once", EVENTTRACK_DELIVERY="worker")
    for vendor in VENDORS:
        assert received(sandbox, vendor) == dict.fromkeys(range(EVENTS), 1), vendor
    assert postgres.query("SELECT COUNT(*) FROM eventtrack_delivery") == [(EVENTS * len(VENDORS),)]
