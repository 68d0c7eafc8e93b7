"""``manage.py eventtrack_purge``: retention for the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventtrack.conf import get_config
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.outbox import retention

MAX_DAYS = 36_500


class Command(BaseCommand):
    help = (
        "Delete delivered, failed and skipped deliveries older than the retention period "
        "(EVENTTRACK['RETENTION_DAYS'], default 30 days), then the events left without "
        "deliveries. Pending deliveries and their events are always kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=float, help="retention in days (default: RETENTION_DAYS)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: float | None = options["days"]
        if days is None:
            try:
                days = get_config().options.retention_days
            except ConfigurationError as exc:
                raise CommandError(str(exc)) from None
        if not 0 < days <= MAX_DAYS:
            raise CommandError(f"--days must be more than 0 and at most {MAX_DAYS}, got {days:g}")
        result = retention.purge(timedelta(days=days), dry_run=options["dry_run"])
        verb = "Would delete" if result.dry_run else "Deleted"
        by_status = ", ".join(f"{count} {name}" for name, count in result.deliveries.items())
        self.stdout.write(
            f"{verb} {result.deliveries_total} deliveries ({by_status}) and {result.events} "
            f"events older than {result.cutoff.isoformat(timespec='seconds')} ({days:g} days)."
        )
