"""What ``manage.py send_event`` does, as functions tests and scripts can call.

The command itself only parses arguments; turning them into an event, sending
it and printing the result lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_eventtrack import api
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import MAX_DEPTH, TrackedEvent
from django_eventtrack.core.redaction import truncate
from django_eventtrack.delivery import backends, http, sender
from django_eventtrack.errors import EventTrackError, InvalidEvent
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import inserts
from django_eventtrack.outbox.routing import Target
from django_eventtrack.vendors.base import VendorRequest


def add_identity_arguments(parser: CommandParser, whose: str) -> None:
    """``--user-id``, ``--anonymous-id`` and one option per browser id in the registry
    (``--session``, ``--device-id``, ...), each naming ``whose`` id it is. A broken
    setting is a clean command error here, where Django does not catch one."""
    parser.add_argument("--user-id", help=f"{whose} user id")
    parser.add_argument("--anonymous-id", help=f"{whose} anonymous visitor id")
    try:
        browser_ids = get_config().browser_ids
    except EventTrackError as exc:
        raise CommandError(str(exc)) from None
    for browser_id in browser_ids:
        flag = "--" + browser_id.name.replace("_", "-")
        parser.add_argument(flag, dest=browser_id.name, help=browser_id.description)


def parse_properties(json_text: str | None, pairs: Sequence[str]) -> dict[str, Any]:
    """``--properties JSON`` overlaid with each ``--property``.

    ``KEY=VALUE`` sets a string; ``KEY:=JSON`` sets a JSON value (a number,
    ``true``, an object...), as HTTPie spells it.
    """
    properties: dict[str, Any] = {}
    if json_text is not None:
        loaded = _json(json_text, "--properties is not valid JSON", "properties")
        if not isinstance(loaded, dict):
            raise InvalidEvent(
                f'--properties must be a JSON object like \'{{"plan": "pro"}}\', '
                f"got a {type(loaded).__name__}",
                field="properties",
            )
        properties.update(loaded)
    for pair in pairs:
        properties.update([parse_property(pair)])
    return properties


def parse_property(pair: str) -> tuple[str, Any]:
    key, sep, value = pair.partition("=")
    if not sep or not key or key == ":":
        raise InvalidEvent(
            f"--property {pair!r} is not KEY=VALUE (or KEY:=JSON for numbers and objects)",
            field="properties",
        )
    if not key.endswith(":"):
        return key, value
    where = f"--property {truncate(pair, 40)!r}: the value after := is not valid JSON"
    return key[:-1], _json(value, where, f"properties.{key[:-1]}")


def _json(text: str, problem: str, field: str) -> Any:
    """``text`` read as JSON, else :class:`InvalidEvent` saying ``problem`` and why."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidEvent(f"{problem}: {exc}", field=field) from None
    except RecursionError:  # the parser's own limit, thousands of levels deep
        raise InvalidEvent(
            f"{problem}: nested too deeply to read (properties may be nested {MAX_DEPTH} "
            "levels deep)",
            field=field,
        ) from None


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO-8601 time with an offset (``2026-11-23T10:00:00Z``); naive is refused."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(
            f"--timestamp {text!r} is not ISO-8601, e.g. 2026-11-23T10:00:00Z", field="timestamp"
        ) from None
    if moment.tzinfo is None:
        raise InvalidEvent(
            f"--timestamp {text!r} has no timezone; add Z or an offset like +02:00",
            field="timestamp",
        )
    return moment


def check_plan(event: TrackedEvent) -> None:
    """Refuse an event that breaks the tracking plan, whatever ``PLAN_MODE`` says: from the
    shell it is a typo to fix now, not an event to quarantine (:class:`PlanViolation`)."""
    compiled = get_config().plan
    if compiled is None:
        return
    found = compiled.violations(event.name, event.properties, identify=event.is_identify)
    if found:
        raise api.violation_error(event.name, found, compiled.plan.source)


def send_and_wait(event: TrackedEvent, vendors: Iterable[str] | None = None) -> list[Delivery]:
    """Store ``event`` and make one attempt per vendor now; the deliveries as they ended.

    A retryable failure stays ``pending`` in the outbox: the worker or the
    background sender retries it later, as for any other event.
    """
    recorded = inserts.record(event, vendors)
    if recorded is None:  # its subject asked to be forgotten: nothing stored
        return []
    targets = recorded.targets
    sender.drain(vendors=sorted({target.vendor for target in targets}), event_ids=[event.id])
    return list(Delivery.objects.filter(event_id=event.id).order_by("pk"))


def track_and_flush(
    event: TrackedEvent, vendors: Iterable[str] | None = None
) -> list[Delivery] | None:
    """Track ``event`` as ``track()`` does, then let the delivery backend finish with it
    as it would at exit (``close()``, within ``SHUTDOWN_TIMEOUT``).

    The deliveries as they ended when the backend sends from this process
    (``thread``, ``sync``); ``None`` when it only queued the event for a worker,
    Celery or the Tasks framework.
    """
    api.submit(event, vendors)
    backend = backends.get_backend()
    backend.close()
    if not getattr(backend, "sends_in_process", False):
        return None
    return list(Delivery.objects.filter(event_id=event.id).order_by("pk"))


def format_result(delivery: Delivery) -> str:
    """One line per vendor: ``hackle: delivered (HTTP 200)``, then one per thing
    changed to fit the vendor (``  changed to fit: ...``)."""
    status = f" (HTTP {delivery.last_status})" if delivery.last_status else ""
    label = {
        Delivery.Status.DELIVERED: "delivered",
        Delivery.Status.SKIPPED: "skipped",
        Delivery.Status.PENDING: "not delivered yet, will retry",
        Delivery.Status.FAILED: "failed",
    }[Delivery.Status(delivery.status)]
    message = f": {delivery.last_error}" if delivery.last_error else ""
    changes = [f"\n  changed to fit: {line}" for line in delivery.adjustments or ()]
    return f"{delivery.vendor}: {label}{status}{message}{''.join(changes)}"


def all_delivered(deliveries: Iterable[Delivery]) -> bool:
    """True when every targeted vendor took the event (a skip is not acceptance)."""
    deliveries = list(deliveries)
    return bool(deliveries) and all(d.status == Delivery.Status.DELIVERED for d in deliveries)


def format_request(target: Target, request: VendorRequest | None) -> str:
    """The request as HTTP text with credentials masked, or the reason it is skipped."""
    if request is None:
        return f"# {target.vendor}: skipped: {target.skip_reason}\n"
    masked = request.masked()
    headers = {"User-Agent": http.USER_AGENT, **masked["headers"]}
    lines = [f"# {target.vendor}"]
    lines += [f"# changed to fit: {line}" for noted in request.notes.values() for line in noted]
    lines.append(f"{masked['method']} {masked['url']}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["", json.dumps(masked["body"], indent=2, ensure_ascii=False), ""]
    return "\n".join(lines)
