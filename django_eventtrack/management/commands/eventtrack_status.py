"""``manage.py eventtrack_status``: what the outbox holds, per vendor."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_eventtrack import status

COLUMNS = (
    ("pending", "pending"),
    ("due", "due now"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("delivered_last_hour", "delivered 1h"),
    ("oldest_pending_seconds", "oldest pending (s)"),
)


class Command(BaseCommand):
    help = (
        "Show the outbox per vendor: pending, due now, failed, skipped, delivered in the last "
        "hour and the age of the oldest pending delivery."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args: Any, **options: Any) -> None:
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


def _cell(value: int | float | None) -> str:
    return "-" if value is None else str(round(value))
