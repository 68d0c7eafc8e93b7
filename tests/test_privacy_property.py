"""The property the erasure and the withdrawal promise, under a running sender: once
``forget()`` (or ``withdraw_consent()``) has committed, nothing more about that person (or
for that purpose) is sent, except a request already under way at that moment.

"Under way" is exact here: a sender checks each delivery just before its request
(:func:`django_eventtrack.outbox.leases.sendable`, wrapped below to note when each check
started). A delivery the sandbox received whose last check started after the commit
had returned is a breach; one whose check started before it was in flight then.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pytest_django import Settings

import django_eventtrack
from django_eventtrack.delivery import sender
from django_eventtrack.delivery.pacing import Bell
from django_eventtrack.models import Delivery, ErasureRequest, Event, PrivacySubject
from django_eventtrack.outbox import leases
from django_eventtrack.sandbox import Sandbox

SUBJECTS = ("A", "B", "C")
#: Hackle serves analytics, PrimeData (batched requests) marketing.
VENDORS = {"hackle": "analytics", "primedata": "marketing"}
MARK = re.compile(r"mark-(\d+)")

Operation = tuple[str, str]
operations = st.lists(
    st.tuples(
        st.sampled_from(["track", "track", "forget", "withdraw", "settle"]),
        st.sampled_from(SUBJECTS),
    ),
    min_size=1,
    max_size=12,
)


class Checks:
    """When each delivery's sendable checks started (monotonic), by primary key."""

    def __init__(self) -> None:
        self.started: dict[int, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.real = leases.sendable

    def __call__(self, claimed: Sequence[tuple[leases.Claim, Sequence[Delivery]]]) -> set[int]:
        started = time.monotonic()
        sendable = self.real(claimed)
        with self.lock:
            for pk in sendable:
                self.started[pk].append(started)
        return sendable


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Checks:
    watching = Checks()
    monkeypatch.setattr(leases, "sendable", watching)
    return watching


@pytest.fixture
def two_vendors(settings: Settings, sandbox: Sandbox, transactional_db: None) -> Sandbox:
    vendor_settings = sandbox.vendor_settings()
    settings.EVENTTRACK = {
        "VENDORS": {name: vendor_settings[name] for name in VENDORS},
        "DELIVERY": "worker",
        "POLL_INTERVAL": 0.01,
        # One request at a time: what a sender claimed waits its turn, so erasures and
        # withdrawals land between the claim and the request too.
        "CONCURRENCY": 1,
        "MIN_CONCURRENCY": 1,
        "MAX_CONCURRENCY": 1,
    }
    return sandbox


@pytest.fixture
def running_sender(two_vendors: Sandbox) -> Any:
    """Start a sender loop (the worker's) in a thread; the returned call stops it."""

    def start() -> Any:
        stop, bell = threading.Event(), Bell()
        thread = threading.Thread(
            target=sender.serve, args=(stop, bell), kwargs={"idle_wait": lambda: 0.01}
        )
        thread.start()

        def halt() -> None:
            stop.set()
            bell.ring()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the sender did not stop within 30 s"

        return halt

    return start


def settled(timeout: float = 10.0) -> None:
    """Wait (bounded) until nothing is left to send."""
    deadline = time.monotonic() + timeout
    while (
        Event.objects.filter(routes__isnull=False).exists()
        or Delivery.objects.filter(status=Delivery.Status.PENDING).exists()
    ):
        assert time.monotonic() < deadline, "the outbox did not settle"
        time.sleep(0.005)


def sending(sandbox: Sandbox, timeout: float = 10.0) -> None:
    """Wait (bounded) until the sender's next request reaches the sandbox, or it has nothing
    left to send: with one request at a time, what it claimed with it waits its turn."""
    deadline = time.monotonic() + timeout
    seen = len(sandbox.requests())
    while len(sandbox.requests()) == seen:
        pending = Delivery.objects.filter(status=Delivery.Status.PENDING).exists()
        if not pending and not Event.objects.filter(routes__isnull=False).exists():
            return
        assert time.monotonic() < deadline, "the sender sent nothing"
        time.sleep(0.002)


def run(
    operations: Sequence[Operation], sandbox: Sandbox
) -> tuple[dict[int, Any], dict[str, float], dict[str, float]]:
    """Apply ``operations`` from this thread; each event's (id, subject), and when each
    subject's forget() and withdraw_consent() returned (after their commit)."""
    tracked: dict[int, Any] = {}
    forgotten: dict[str, float] = {}
    withdrawn: dict[str, float] = {}
    for number, (kind, subject) in enumerate(operations):
        user = f"U-{subject}"
        if kind == "track":
            event = django_eventtrack.track(
                "order.placed",
                {"order": f"mark-{number}"},
                user_id=user,
                anonymous_id=f"a{subject}" * 8,
            )
            if event is not None:
                tracked[number] = (event.id, subject)
        elif kind == "forget":
            django_eventtrack.forget(user_id=user)
            forgotten.setdefault(subject, time.monotonic())
        elif kind == "withdraw":
            django_eventtrack.withdraw_consent(["marketing"], user_id=user)
            withdrawn.setdefault(subject, time.monotonic())
        elif kind == "sending":
            sending(sandbox)
        else:
            settled()
    return tracked, forgotten, withdrawn


#: What a sender claimed and holds while its first request is under way: the erasure and
#: the withdrawal land between the claim and the next requests.
HELD_THEN_FORGOTTEN = [*[("track", "A")] * 4, ("track", "B"), ("sending", "A"), ("forget", "A")]
HELD_THEN_WITHDRAWN = [*[("track", "B")] * 4, ("sending", "B"), ("withdraw", "B")]


@settings(max_examples=25, deadline=None)
@example(operations=HELD_THEN_FORGOTTEN)
@example(operations=HELD_THEN_WITHDRAWN)
@given(operations=operations)
def test_nothing_is_sent_after_the_commit(
    operations: list[Operation], two_vendors: Sandbox, running_sender: Any, checks: Checks
) -> None:
    for model in (Event, PrivacySubject, ErasureRequest):
        model.objects.all().delete()
    two_vendors.reset()
    checks.started.clear()
    for vendor in VENDORS:  # requests take a while, so some are in flight during the calls
        two_vendors.inject(vendor, delay=0.01, count=10_000)

    halt = running_sender()
    try:
        tracked, forgotten, withdrawn = run(operations, two_vendors)
        settled()  # the sender finishes: what it held when they committed included
    finally:
        halt()

    for vendor, purpose in VENDORS.items():
        for record in two_vendors.requests(vendor):
            for mark in MARK.findall(record.raw):
                event_id, subject = tracked[int(mark)]
                delivery = Delivery.objects.get(event_id=event_id, vendor=vendor)
                assert checks.started[delivery.pk], f"{vendor} got event {mark} unchecked"
                checked = max(checks.started[delivery.pk])
                if subject in forgotten:
                    assert checked < forgotten[subject], f"{vendor} got {mark} after forget()"
                if purpose == "marketing" and subject in withdrawn:
                    assert checked < withdrawn[subject], f"{vendor} got {mark} after withdrawal"
    # And what was stopped is recorded as such, never left pending.
    assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()
