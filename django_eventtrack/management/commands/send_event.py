"""``manage.py send_event NAME ...``: send one event from a shell, cron job or deploy script."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    SystemCheckError,
)

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.errors import EventTrackError
from django_eventtrack.management import commandline
from django_eventtrack.outbox import routing


class Command(BaseCommand):
    help = (
        "Track one event for the configured vendors. When EVENTTRACK['DELIVERY'] sends from "
        "this process (thread, sync) it waits for each vendor's answer and prints it; with a "
        "worker, Celery or Tasks it prints the event id, queued. With --sync it sends now "
        "whatever the delivery. Exit status 0 only when every targeted vendor accepted it "
        "(or the event was queued)."
    )

    def run_from_argv(self, argv: list[str]) -> None:
        """Report a broken setting as the system checks report it, without a traceback:
        the options come from the settings (each vendor's browser ids), and Django parses
        them before it starts catching a command's errors."""
        try:
            get_config()
        except EventTrackError as exc:
            try:
                self.check()  # raises SystemCheckError with E001, as every command would
            except SystemCheckError as error:
                self.stderr.write(str(error), lambda text: text)
            else:
                self.stderr.write(f"CommandError: {exc}")
            sys.exit(1)
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="event name, e.g. product.purchased")
        commandline.add_identity_arguments(parser, "the visitor's")
        parser.add_argument(
            "--property",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a string property; KEY:=JSON for numbers, booleans and objects (repeatable)",
        )
        parser.add_argument("--properties", metavar="JSON", help="properties as a JSON object")
        parser.add_argument(
            "--vendor",
            action="append",
            dest="vendors",
            metavar="NAME",
            help="send only to this vendor (repeatable; default: every configured vendor)",
        )
        parser.add_argument("--timestamp", help="when it happened, ISO-8601 with a timezone")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="send now from this process, whatever the delivery backend, and print each "
            "vendor's answer",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the HTTP requests (secrets masked) and send nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            event = TrackedEvent.create(
                options["name"],
                commandline.parse_properties(options["properties"], options["property"]),
                identity=Identity(
                    options["user_id"],
                    options["anonymous_id"],
                    **{name: options[name] for name in get_config().vendor_id_names},
                ),
                timestamp=commandline.parse_timestamp(options["timestamp"]),
            )
            commandline.check_plan(event)
            if options["dry_run"]:
                for target, request in routing.render_requests(event, options["vendors"]):
                    self.stdout.write(commandline.format_request(target, request))
                return
            routing.plan(event, options["vendors"])  # refuse early: no vendor, unknown vendor
            if options["sync"]:
                deliveries = commandline.send_and_wait(event, options["vendors"])
            else:
                sent = commandline.track_and_flush(event, options["vendors"])
                if sent is None:
                    backend_name = get_config().delivery
                    self.stdout.write(f"{event.id} queued for the {backend_name!r} delivery")
                    return
                deliveries = sent
        except EventTrackError as exc:
            raise CommandError(str(exc)) from None
        for delivery in deliveries:
            ok = delivery.status == delivery.Status.DELIVERED
            style = self.style.SUCCESS if ok else self.style.ERROR
            self.stdout.write(style(commandline.format_result(delivery)))
        if not commandline.all_delivered(deliveries):
            refused = sum(d.status != d.Status.DELIVERED for d in deliveries)
            raise CommandError(
                f"event {event.id}: {refused} of {len(deliveries)} vendors did not accept it",
                returncode=2,
            )
