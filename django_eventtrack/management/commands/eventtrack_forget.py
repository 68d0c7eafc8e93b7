"""``manage.py eventtrack_forget --user-id ...``: erase a person from a shell (``forget()``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventtrack import privacy
from django_eventtrack.conf import get_config
from django_eventtrack.errors import EventTrackError
from django_eventtrack.management import commandline


class Command(BaseCommand):
    help = (
        "Erase a person, in one transaction: skip what is still to be sent about them, scrub "
        "their stored events, delete their remembered vendor profiles and sessions, and store "
        "nothing for their ids from now on; then list what staff must delete at each vendor "
        "(the erasure request's tasks, also in the admin). --unforget tracks them again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commandline.add_identity_arguments(parser, "the person's")
        parser.add_argument(
            "--source",
            default="eventtrack_forget",
            help="who asked, shown in the admin (default: eventtrack_forget)",
        )
        parser.add_argument(
            "--unforget",
            action="store_true",
            help="track the person again (they signed up again and consented)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names = ("user_id", "anonymous_id", *(b.name for b in get_config().browser_ids))
        ids = {name: options[name] for name in names if options.get(name)}
        if not ids:
            flags = ", ".join("--" + name.replace("_", "-") for name in names)
            raise CommandError(f"give the person's ids: one or more of {flags}")
        try:
            if options["unforget"]:
                found = privacy.unforget(**ids)
                self.stdout.write(f"Tracking again: {found} of the ids given were forgotten.")
                return
            request = privacy.forget(source=options["source"], **ids)
        except EventTrackError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Erasure request {request.pk}: {_count(request.events_scrubbed, 'event')} scrubbed, "
            f"{request.deliveries_skipped} waiting deliveries skipped, "
            f"{request.profiles_deleted} remembered vendor ids deleted; nothing is tracked "
            "for these ids from now on."
        )
        for task in request.tasks.all():
            self.stdout.write(f"  {task.vendor}, by {task.due_at:%Y-%m-%d}: {task.instructions}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
