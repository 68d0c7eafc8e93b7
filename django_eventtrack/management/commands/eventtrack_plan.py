"""``manage.py eventtrack_plan``: the tracking plan, printed, exported, compared, replayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventtrack import api
from django_eventtrack.conf import get_config, tracking_plan
from django_eventtrack.errors import EventTrackError
from django_eventtrack.monitoring import coverage
from django_eventtrack.plan import TrackingPlan, codegen, diff, render


class Command(BaseCommand):
    help = (
        "Print the tracking plan (EVENTTRACK['PLAN']), or: write one JSON Schema file per "
        "event (--json-schema DIR), render it as Markdown (--markdown), compare it with the "
        "outbox (--coverage) or with another plan (--diff OTHER, exit 1 on a breaking "
        "change), generate a typed module (--python FILE), or validate the quarantined events "
        "again and route those that now pass (--replay)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--json-schema", metavar="DIR", type=Path, help="write DIR/<event>.schema.json"
        )
        action.add_argument("--markdown", action="store_true", help="print the plan as Markdown")
        action.add_argument(
            "--coverage", action="store_true", help="the plan against the events tracked lately"
        )
        action.add_argument("--diff", metavar="OTHER", help="classify the changes to plan OTHER")
        action.add_argument("--python", metavar="FILE", type=Path, help="write a typed module")
        action.add_argument(
            "--replay", action="store_true", help="route the quarantined events that now pass"
        )
        parser.add_argument(
            "--days", type=float, default=7.0, help="--coverage's window in days (default 7)"
        )
        parser.add_argument(
            "--plan", metavar="PATH", help="use this plan file instead of EVENTTRACK['PLAN']"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.run(options)
        except EventTrackError as exc:
            raise CommandError(str(exc)) from None

    def run(self, options: dict[str, Any]) -> None:
        if options["replay"]:
            self.replay()
            return
        plan = tracking_plan(options["plan"])
        if options["json_schema"] is not None:
            self.write_schemas(plan, options["json_schema"])
        elif options["markdown"]:
            self.stdout.write(render.markdown(plan), ending="")
        elif options["coverage"]:
            found = coverage.coverage(plan, options["days"])
            self.stdout.write(coverage.report(found, options["days"]), ending="")
        elif options["diff"] is not None:
            self.compare(plan, tracking_plan(options["diff"]))
        elif options["python"] is not None:
            source = codegen.python_module(plan, get_config().vendor_id_names)
            options["python"].write_text(source, encoding="utf-8")
            self.stdout.write(f"Wrote {options['python']} ({len(plan)} event functions).")
        else:
            self.stdout.write(render.listing(plan), ending="")

    def write_schemas(self, plan: TrackingPlan, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        documents = render.json_schemas(plan)
        for name, document in documents.items():
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            (directory / name).write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {len(documents)} JSON Schema files to {directory}.")

    def compare(self, old: TrackingPlan, new: TrackingPlan) -> None:
        changes = diff.diff(old, new)
        for change in changes:
            self.stdout.write(str(change))
        breaking = sum(change.breaking for change in changes)
        if breaking:
            raise CommandError(f"{breaking} breaking change(s) from {old.source} to {new.source}")
        self.stdout.write(f"{len(changes)} change(s), none breaking.")

    def replay(self) -> None:
        released = api.replay_quarantined()
        self.stdout.write(
            f"{len(released.routed)} released and routed, {released.still_invalid} still break "
            f"the plan, {released.taken} released meanwhile by another replay."
        )
