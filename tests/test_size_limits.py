"""Byte limits: ``MAX_EVENT_BYTES`` refuses an event where it is tracked, and
``MAX_REQUEST_BYTES`` cuts a batching vendor's requests (docs/reliability.md, "Size limits")."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from pytest_django import Settings

from django_eventtrack import conf, identify, track
from django_eventtrack.conf import DEFAULT_MAX_EVENT_BYTES, get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.delivery import worker
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors.batching import request_batches

#: A string property's longest value (``MAX_STRING_LENGTH``) is 64 Ki characters.
CHUNK = "x" * 60_000


pytestmark = pytest.mark.usefixtures("closed_breaker")


@pytest.fixture
def worker_vendors(settings: Settings, sandbox: Sandbox) -> Sandbox:
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "worker"}
    return sandbox


def sized(size: int, **extra: Any) -> dict[str, Any]:
    """Properties whose JSON, with ``extra`` as the vendor_extra, is ``size`` bytes."""
    event = TrackedEvent.create("a.b", {"text": ""}, vendor_extra=extra or None)
    return {"text": "x" * (size - event.size)}


# -- MAX_EVENT_BYTES ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_ten_megabytes_of_valid_properties_are_refused_naming_size_limit_and_setting(
    worker_vendors: Sandbox,
) -> None:
    document = {f"page{n}": CHUNK for n in range(170)}  # each value within its own limits

    with pytest.raises(InvalidEvent) as caught:
        track("report.generated", document, session="S1")

    message = str(caught.value)
    size = TrackedEvent.create("report.generated", document).size
    assert size > 10_000_000
    assert f"is {size:,} bytes" in message
    assert "the limit is 65,536 bytes" in message
    assert 'EVENTTRACK["MAX_EVENT_BYTES"]' in message
    assert "EVENTTRACK_MAX_EVENT_BYTES" in message
    assert caught.value.field == "properties"
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_the_limit_counts_properties_and_vendor_extra_in_utf8_bytes(
    worker_vendors: Sandbox,
) -> None:
    extra = {"hackle": {"event": {"value": 1}}}
    assert track("a.b", sized(DEFAULT_MAX_EVENT_BYTES, **extra), vendor_extra=extra, session="S")
    with pytest.raises(InvalidEvent, match="is 65,537 bytes"):
        track("a.b", sized(DEFAULT_MAX_EVENT_BYTES + 1, **extra), vendor_extra=extra, session="S")
    # "é" is one character, two bytes.
    with pytest.raises(InvalidEvent, match="is 65,5"):
        track("a.b", {"text": "é" * 32_800}, session="S")
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "worst",
    [
        {"\x01" * 100: "\x1f" * 10_000},  # six bytes a character, escaped
        {"n": [-2.2250738585072014e-308] * 900},  # the longest numbers
        {"😀": "😀" * 10_000, "l": [[[[]]]] * 200},  # four bytes a character; empty lists
    ],
)
def test_the_bound_that_spares_small_events_the_measuring_holds_for_the_worst_json(
    worst: dict[str, Any],
) -> None:
    event = TrackedEvent.create("a.b", worst, vendor_extra={"hackle": worst})
    assert event.size_bound is not None
    assert event.size <= event.size_bound < 2 * event.size


@pytest.mark.django_db
def test_the_limit_is_a_setting_and_an_environment_variable(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "worker"}
    monkeypatch.setenv("EVENTTRACK_MAX_EVENT_BYTES", "1000")
    conf.reload()
    assert get_config().max_event_bytes == 1000
    with pytest.raises(InvalidEvent, match="the limit is 1,000 bytes"):
        track("a.b", sized(1001), session="S")

    settings.EVENTTRACK = {**settings.EVENTTRACK, "MAX_EVENT_BYTES": 20 * 1024 * 1024}
    assert track("a.b", {f"page{n}": CHUNK for n in range(170)}, session="S")


@pytest.mark.django_db
def test_identify_traits_count_too(worker_vendors: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="the limit is 65,536 bytes"):
        identify(user_id="7", traits={"bio": CHUNK, "notes": CHUNK})
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_raise_on_invalid_false_logs_and_stores_nothing(
    settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": sandbox.vendor_settings(),
        "DELIVERY": "worker",
        "RAISE_ON_INVALID": False,
    }

    with caplog.at_level(logging.ERROR, logger="django_eventtrack"):
        assert track("a.b", {"one": CHUNK, "two": CHUNK}, session="S") is None

    assert "track('a.b') refused: event 'a.b' is 120," in caplog.text
    assert not Event.objects.exists()


@pytest.mark.parametrize("mode", [[], ["--sync"], ["--dry-run"]])
@pytest.mark.django_db(transaction=True)
def test_send_event_refuses_it_with_exit_status_1(worker_vendors: Sandbox, mode: list[str]) -> None:
    properties = json.dumps({"one": CHUNK, "two": CHUNK})

    with pytest.raises(CommandError) as caught:
        call_command("send_event", "a.b", "--session", "S1", "--properties", properties, *mode)

    assert "the limit is 65,536 bytes" in str(caught.value)
    assert caught.value.returncode == 1
    assert not Event.objects.exists()
    assert worker_vendors.requests() == []


# -- MAX_REQUEST_BYTES -------------------------------------------------------------------------


def test_batches_are_cut_by_count_and_by_bytes_in_order() -> None:
    primedata = get_config().adapter("primedata")
    small = [TrackedEvent.create("a.b", {"n": n}) for n in range(1_100)]
    large = TrackedEvent.create("a.b", {"text": "x" * 5_000})
    medium = TrackedEvent.create("a.b", {"text": "x" * 3_000})

    assert request_batches(primedata, small, 10**9) == [
        list(range(0, 500)),
        list(range(500, 1000)),
        list(range(1000, 1100)),
    ]
    events = [medium, medium, large, medium, medium, medium]
    cuts = request_batches(primedata, events, max_bytes=4_000)
    assert cuts == [[0], [1], [2], [3], [4], [5]]
    cuts = request_batches(primedata, events, max_bytes=8_000)
    assert cuts == [[0, 1], [2], [3, 4], [5]]
    assert request_batches(primedata, [], max_bytes=8_000) == []


@pytest.mark.django_db(transaction=True)
def test_a_backlog_of_large_events_goes_out_in_requests_within_max_request_bytes(
    settings: Settings, sandbox: Sandbox
) -> None:
    limit = 200_000
    settings.EVENTTRACK = {
        "VENDORS": {"primedata": sandbox.vendor_settings()["primedata"]},
        "DELIVERY": "worker",
        "MAX_REQUEST_BYTES": limit,
    }
    with transaction.atomic():
        for n in range(30):
            track("report.generated", {"n": n, "text": CHUNK}, identity=Identity(user_id=str(n)))

    worker.Worker(["primedata"]).run_once()

    assert Counter(Delivery.objects.values_list("status", flat=True)) == {"delivered": 30}
    requests = sandbox.requests("primedata")
    sizes = [len(request.raw.encode()) for request in requests]
    per_request = [len(request.body["events"]) for request in requests]
    assert sorted(per_request) == [3] * 10, "three 60 KB events fit in 200 KB, four do not"
    assert max(sizes) < limit + 3 * 1_000, "each event's vendor fields: well under 1 KB"
    received = Counter(e["properties"]["n"] for e in sandbox.events("primedata"))
    assert received == dict.fromkeys(range(30), 1)
