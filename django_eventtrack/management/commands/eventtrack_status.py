"""``manage.py eventtrack_status``: what the outbox holds, per vendor; ``--check`` for probes."""

from __future__ import annotations

import json
import re
from argparse import ArgumentTypeError
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_eventtrack.monitoring import status

COLUMNS = (
    ("pending", "pending"),
    ("due", "due now"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("delivered_last_hour", "delivered 1h"),
    ("oldest_pending_seconds", "oldest pending (s)"),
)
#: Exit status of ``--check`` when the outbox is unhealthy (2 is argparse's bad usage).
UNHEALTHY = 1
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h`` or ``2d``, more than zero."""
    match = DURATION.fullmatch(text.strip().lower())
    if not match or not float(match[1]):
        raise ArgumentTypeError(
            f"expected a duration more than zero like 90 (seconds), 15m, 1h or 2d; got {text!r}"
        )
    return timedelta(seconds=float(match[1]) * UNIT_SECONDS[match[2]])


class Command(BaseCommand):
    help = (
        "Show the outbox per vendor: pending, due now, failed, skipped, delivered in the last "
        "hour and the age of the oldest pending delivery. With --check, exit 0 when healthy "
        "and 1 (printing why) when a delivery failed recently or a pending one is too old."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--check",
            action="store_true",
            help="health check for cron, Kubernetes probes and CI: exit 0 when healthy, "
            f"{UNHEALTHY} with the reasons when not",
        )
        parser.add_argument(
            "--failed-within",
            type=duration,
            default=timedelta(hours=1),
            metavar="DURATION",
            help="--check: unhealthy if a delivery failed this recently (default 1h)",
        )
        parser.add_argument(
            "--max-pending-age",
            type=duration,
            default=timedelta(minutes=15),
            metavar="DURATION",
            help="--check: unhealthy if a delivery has been pending longer (default 15m)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            self.check_health(options["failed_within"], options["max_pending_age"], options["json"])
            return
        summary = status.summary()
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict(), indent=2))
            return
        rows = list(summary.vendors.items())
        rows.append(("total", summary.totals))
        table = [["vendor", *(title for _, title in COLUMNS)]]
        table += [[name, *(_cell(getattr(c, key)) for key, _ in COLUMNS)] for name, c in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            self.stdout.write("  ".join(cells))

    def check_health(
        self, failed_within: timedelta, max_pending_age: timedelta, as_json: bool
    ) -> None:
        health = status.health(failed_within=failed_within, max_pending_age=max_pending_age)
        if as_json:
            report = {"healthy": health.healthy, "problems": list(health.problems)}
            self.stdout.write(json.dumps(report, indent=2))
        elif health.healthy:
            self.stdout.write(
                f"OK: no delivery failed in the last {_span(failed_within)} and none has been "
                f"pending longer than {_span(max_pending_age)}"
            )
        else:
            for problem in health.problems:
                self.stderr.write(f"UNHEALTHY: {problem}")
        if not health.healthy:
            raise SystemExit(UNHEALTHY)


def _cell(value: int | float | None) -> str:
    return "-" if value is None else str(round(value))


def _span(length: timedelta) -> str:
    return status.format_duration(length.total_seconds())
