"""Small helpers shared by the delivery tests (backends, worker, multi-process)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.utils.module_loading import import_string

from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import BUILT_IN
from tests.settings import TEST_ADAPTERS

#: Every vendor of the test registry, by name.
VENDORS = tuple(import_string(BUILT_IN.get(path, path)).name for path in TEST_ADAPTERS)


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what or condition}")
        time.sleep(0.01)


def marker(vendor: str, payload: dict[str, Any]) -> Any:
    """The ``n`` property of one event as the vendor received it (each vendor nests it)."""
    if vendor == "hellotext":
        return payload.get("metadata", {}).get("n")
    if vendor == "hackle":
        return payload["event"].get("properties", {}).get("n")
    return payload.get("properties", {}).get("n")


def received(sandbox: Sandbox, vendor: str) -> Counter[Any]:
    """How many times the vendor accepted each event, by its ``n`` property."""
    return Counter(marker(vendor, payload) for payload in sandbox.events(vendor))


def strings(value: Any) -> set[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(strings(item) for item in value))
    return set()


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    """Whether a server listens on ``port`` at 127.0.0.1 yet."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def track_many(count: int, vendors: list[str] | None = None) -> list[Any]:
    """Track ``order.placed`` events ``n = 0 .. count-1`` (each with a session, so every
    vendor takes it) in one transaction."""
    from django.db import transaction

    from django_eventtrack import track

    with transaction.atomic():
        return [
            track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}", vendors=vendors)
            for n in range(count)
        ]


def rows_unlike_the_orms(event_id: Any) -> dict[str, tuple[Any, Any]]:
    """The fields of the row ``track()`` wrote for ``event_id``, and of the deliveries a
    sender then writes from its routes, whose values differ from what ``Model.save()``
    writes for the same row (a twin of each): ``{"event.field": (track's, the ORM's)}``,
    ``{"vendor.field": ...}``. Keys and time stamps are compared by kind: a delivery is
    created and due when its event was stored, and changed when it was written."""
    from datetime import timedelta

    from django.utils import timezone

    from django_eventtrack.models import Delivery, Event
    from django_eventtrack.outbox import fanout

    differences: dict[str, tuple[Any, Any]] = {}
    fast_event = Event.objects.get(pk=event_id)
    copied = ("name", "properties", "identity", "vendor_extra", "kind", "timestamp", "routes")
    twin_event = Event.objects.create(**{name: getattr(fast_event, name) for name in copied})
    twin_event.refresh_from_db()
    differences |= _unlike("event", fast_event, twin_event, {"id", "created_at"})
    if fanout.write_now([event_id]) != (1 if fast_event.routes else 0):
        differences["event.routes"] = (fast_event.routes, "not routed once")
    Event.objects.filter(pk=twin_event.pk).update(routes=None)  # its deliveries come next
    for fast in Delivery.objects.filter(event_id=event_id):
        twin = Delivery.objects.create(
            event=twin_event, vendor=fast.vendor, status=fast.status, last_error=fast.last_error
        )
        twin.refresh_from_db()
        stamps = ("created_at", "updated_at", "next_attempt_at")
        differences |= _unlike(fast.vendor, fast, twin, {"id", "event_id", *stamps})
        if (fast.created_at, fast.next_attempt_at) != (fast_event.created_at,) * 2:
            differences[f"{fast.vendor}.timestamps"] = (fast.created_at, fast.next_attempt_at)
        if any(abs(getattr(twin, s) - fast.updated_at) > timedelta(minutes=1) for s in stamps):
            differences[f"{fast.vendor}.timestamps"] = tuple(getattr(twin, s) for s in stamps)
    if abs(timezone.now() - fast_event.created_at) > timedelta(minutes=1):
        differences["event.created_at"] = (fast_event.created_at, timezone.now())
    return differences


def _unlike(label: str, ours: Any, theirs: Any, skipped: set[str]) -> dict[str, tuple[Any, Any]]:
    return {
        f"{label}.{field.attname}": (getattr(ours, field.attname), getattr(theirs, field.attname))
        for field in type(ours)._meta.concrete_fields
        if field.attname not in skipped
        and getattr(ours, field.attname) != getattr(theirs, field.attname)
    }


@contextlib.contextmanager
def routed_after_the_first_query(event_ids: list[Any]) -> Iterator[list[int]]:
    """While in the block, a sender routes ``event_ids`` (writes their deliveries) right
    after the block's first query: what a reader of the outbox must not miss. Yields a
    list that then holds how many events that routing wrote."""
    from django.db import connection

    from django_eventtrack.outbox import fanout

    routed: list[int] = []

    def route(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if not routed:
            routed.append(0)  # before routing: its own queries come through here too
            routed[0] = fanout.write_now(event_ids)
        return result

    with connection.execute_wrapper(route):
        yield routed


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    """A thread of this process keeps a CPU busy (as a request being served does)."""
    done = threading.Event()

    def spin() -> None:
        while not done.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin, name="busy-process")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_in_child(body: Callable[[], dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:
    """Fork, run ``body`` in the child and return what it reported (a JSON-able dict)."""
    connections.close_all()  # never share a database connection across fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        code = 1
        try:
            os.close(read_end)
            try:
                report = body()
                code = 0
            except BaseException:
                report = {"error": traceback.format_exc()}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, timeout=timeout, what="the child")
        pid = 0
        with os.fdopen(read_end, "rb") as reader:
            result: dict[str, Any] = json.loads(reader.read() or b"{}")
        return result
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
