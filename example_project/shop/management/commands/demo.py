"""``manage.py demo``: the whole path from a shell command to four vendors, on loopback.

Starts the vendor sandbox, points the four vendors at it through the same
``EVENTTRACK_*`` environment variables a real deployment uses, sends one
``product.purchased`` with ``send_event``, and prints what each vendor received.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from django_eventtrack import conf
from django_eventtrack.sandbox import Sandbox


class Command(BaseCommand):
    help = "Run the demo: sandbox vendors, one product.purchased, what each vendor received."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=0, help="sandbox port (default: any free)")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        with Sandbox(port=options["port"]) as sandbox:
            self.stdout.write(f"Vendor sandbox listening on {sandbox.url}\n")
            os.environ.update(sandbox.env())
            conf.reload()
            command = [
                "product.purchased",
                "--profile=P1",
                "--property=product=vxqQJ3Yg",
                "--property=amount:=89.90",
                "--property=currency=USD",
                "--sync",
            ]
            self.stdout.write("$ manage.py send_event " + " ".join(command))
            call_command("send_event", *command, stdout=self.stdout, stderr=self.stderr)
            self.stdout.write("\nWhat each vendor received:")
            order = ["hellotext", "hackle", "browsee", "primedata"]
            for record in sorted(sandbox.requests(), key=lambda r: order.index(r.vendor)):
                self.stdout.write(
                    f"\n{record.vendor}: {record.method} {record.path} -> {record.status}"
                )
                self.stdout.write(json.dumps(record.body, indent=2))
