"""``manage.py demo``: a visitor's whole journey, from a Hellotext short link to a shipped order.

It migrates the shop's database, starts the vendor sandbox on loopback and
points the four vendors at it through the same ``EVENTTRACK_*`` environment
variables a deployment uses. Then a visitor lands from a Hellotext short link
(``?hello_session=...``), views a product, signs in (``IDENTIFY_ON_LOGIN``
identifies them to every vendor: a Hellotext profile is created and the session
attached to it), adds the product to the cart and checks out; later, outside
any request, an admin ships the order, and that event carries the customer's
Hellotext profile. Everything goes through the real middleware, ``track()``
(through ``shop.events``, generated from the shop's tracking plan, which checks
every event: the demo runs under ``DEBUG``, where a violation raises),
``identify()``, the model hooks, the outbox and the default ``thread``
backend; the report shows what each vendor received and answered.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.utils import timezone

from django_eventtrack import conf
from django_eventtrack.models import Delivery, Event
from django_eventtrack.monitoring.status import summary
from django_eventtrack.sandbox import RecordedRequest, Sandbox
from shop.models import Order
from shop.seed import CUSTOMER, PASSWORD, seed

VENDOR_ORDER = ["hellotext", "hackle", "browsee", "primedata"]


class Command(BaseCommand):
    help = "Run the demo: a visitor from a Hellotext short link buys; the order ships later."
    # The checks run once the sandbox's variables are set (before, no vendor is active).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=0, help="sandbox port (default: any free)")
        parser.add_argument("--json", action="store_true", help="print the raw payloads too")

    def handle(self, *args: Any, **options: Any) -> None:
        # The sandbox's PrimeData knows the shop's event schemas, as a real data source
        # would; the library knows them from the tracking plan (its PrimeData event types
        # are EVENT_TYPES): it skips any other.
        event_types = sorted(conf.get_config().vendors["primedata"].options["EVENT_TYPES"])
        with Sandbox(
            port=options["port"], options={"primedata": {"aliases": event_types}}
        ) as sandbox:
            os.environ.update(sandbox.env())
            conf.reload()
            self.check(display_num_errors=False)
            call_command("migrate", verbosity=0)
            seed()
            self.say(f"Vendor sandbox on {sandbox.url}; all four vendors point at it.\n")
            hello_session = str(uuid.uuid4())
            started = timezone.now()
            order = self.play_visitor(hello_session)
            self.say(f"\nNext day, outside any request: an admin ships {order.reference}.")
            order.status = Order.Status.SHIPPED
            order.save(update_fields=["status"])
            self.wait_until_sent()
            self.report(sandbox, hello_session, started, show_json=options["json"])

    def play_visitor(self, hello_session: str) -> Order:
        client = Client()
        steps = [
            ("GET", f"/?hello_session={hello_session}&utm_source=hellotext&utm_medium=sms"),
            ("GET", "/products/TEE-1/"),
            ("POST", "/sign-in/"),
            ("POST", "/cart/add/TEE-1/"),
            ("POST", "/checkout/"),
        ]
        self.say(f"A visitor lands from a Hellotext short link with hello_session={hello_session}")
        credentials = {"username": CUSTOMER["username"], "password": PASSWORD}
        for method, path in steps:
            if method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, credentials if path == "/sign-in/" else {})
            if response.status_code >= 400:
                raise CommandError(f"{method} {path} answered {response.status_code}")
            self.say(f"  {method} {path} -> {response.status_code}")
            self.wait_until_sent()  # a visitor reads each page before the next click
        return Order.objects.latest("created_at")

    def wait_until_sent(self, timeout: float = 15.0) -> None:
        """Wait for the background sender to empty the outbox (bounded)."""
        deadline = time.monotonic() + timeout
        while summary().totals.pending:  # deliveries pending, or not yet written
            if time.monotonic() > deadline:
                raise CommandError("deliveries still pending after 15s; see eventtrack_status")
            time.sleep(0.05)

    def report(
        self, sandbox: Sandbox, hello_session: str, started: datetime, *, show_json: bool
    ) -> None:
        self.say(
            "\nWhat each vendor received (the visitor's hello_session is marked *; "
            "identify calls come from signing in):"
        )
        for vendor in VENDOR_ORDER:
            records = sandbox.requests(vendor)
            received = [(record, _summaries(vendor, record)) for record in records]
            events = sum(len(summaries) for _, summaries in received)
            counted = f"{events} events in " if events != len(records) else ""
            self.say(f"\n{vendor} ({counted}{len(records)} requests)")
            for record, summaries in received:
                for name, ids in summaries:
                    marked = ", ".join(
                        f"{k}={v}{'*' if v == hello_session else ''}" for k, v in ids
                    )
                    self.say(f"  {record.status}  {name:<20} {marked}")
                if show_json:
                    self.say(json.dumps(record.body, indent=2))
        this_run = Delivery.objects.filter(created_at__gte=started)
        statuses = {
            status: this_run.filter(status=status).count() for status in Delivery.Status.values
        }
        self.say(f"\nOutbox, this run: {statuses}")
        plan = conf.get_config().plan
        if plan is not None:
            broke = Event.objects.filter(created_at__gte=started, violations__isnull=False)
            self.say(
                f"Tracking plan {Path(plan.plan.source).name}: {len(plan.plan)} events declared; "
                f"{broke.count()} tracked this run broke it."
            )

    def say(self, text: str) -> None:
        self.stdout.write(text)


Summary = list[tuple[str, list[tuple[str, Any]]]]


def _summaries(vendor: str, record: RecordedRequest) -> Summary:
    """(event name, identity fields) for each event in one recorded request."""
    body: dict[str, Any] = record.body or {}
    ids: list[tuple[str, Any]]
    if record.path.endswith("/v1/profiles"):
        return [("identify (profile)", [("reference", body.get("reference"))])]
    if "/v1/sessions/" in record.path:
        session = record.path.rsplit("/", 1)[-1]
        return [("identify (session)", [("session", session), ("profile", body.get("profile"))])]
    if record.path.endswith("/v1/properties"):
        return [("identify ($set)", [("userId", body.get("userId"))])]
    if record.path.endswith("/v1/identify"):
        ids = [(k, body[k]) for k in ("userId", "anonymousId") if k in body]
        return [("identify", ids)]
    if vendor == "hellotext":
        ids = [(k, body[k]) for k in ("profile", "session") if k in body]
        return [(body.get("action", "?"), ids)]
    if vendor == "hackle":
        user = body.get("user", {})
        ids = [(k, user[k]) for k in ("userId", "deviceId") if k in user]
        ids += [(f"identifiers.{k}", v) for k, v in user.get("identifiers", {}).items()]
        return [(body.get("event", {}).get("key", "?"), ids)]
    if vendor == "browsee":
        return [
            (body.get("event", "?"), [(k, body[k]) for k in ("userId", "anonymousId") if k in body])
        ]
    summaries: Summary = []
    for event in body.get("events", []):
        ids = [("sessionId", event.get("sessionId", "-"))]
        if event.get("eventType") == "identify":
            ids.append(("userId", (event.get("target") or {}).get("itemId")))
        summaries.append((event.get("eventType", "?"), ids))
    return summaries
