"""``manage.py eventtrack_worker``: send what the outbox holds, as a service or from cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventtrack.delivery import worker
from django_eventtrack.errors import EventTrackError


class Command(BaseCommand):
    help = (
        "Drain the event outbox: send every due delivery to its vendor, retrying with backoff. "
        "Runs until SIGTERM or Ctrl-C (in-flight requests finish, unsent deliveries stay "
        "pending); with --once, sends what is due now, prints a summary and exits (for cron)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="send what is due now, print a one-line summary and exit",
        )
        parser.add_argument(
            "--vendor",
            action="append",
            dest="vendors",
            metavar="NAME",
            help="drain only this vendor (repeatable; default: every configured vendor)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker.log_to_stderr_unless_configured(options["verbosity"])
        try:
            runner = worker.Worker(options["vendors"])
        except EventTrackError as exc:
            raise CommandError(str(exc)) from None
        with worker.stop_on_signals(runner):
            if options["once"]:
                self.stdout.write(worker.stats_line(runner.run_once()))
            else:
                runner.run()
