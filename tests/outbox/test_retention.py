"""``outbox.retention``: personal data scrubbed once every delivery is final
(``SCRUB_DELIVERED`` / ``REDACT_KEYS``), and finished rows purged after the retention period
(``purge()`` and ``eventtrack_purge``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.core.redaction import MASK
from django_eventtrack.delivery import flow, worker
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import fanout, retention
from django_eventtrack.sandbox import Sandbox
from tests.delivery.test_worker import drain_until_settled
from tests.test_status import NOW, delivery, stored_event

Status = Delivery.Status

# -- personal data: scrubbed once every delivery is final ------------------------------------


def personal(n: int = 0) -> dict[str, Any]:
    return {"n": n, "email": "ada@example.com", "cart": [{"sku": "S1", "email": "x@y.z"}]}


@pytest.mark.django_db(transaction=True)
def test_scrub_delivered_empties_properties_once_all_deliveries_are_final(
    vendors: Sandbox, settings: Settings
) -> None:
    settings.EVENTTRACK = settings.EVENTTRACK | {"SCRUB_DELIVERED": True, "DELIVERY": "worker"}
    vendors.inject("hackle", status=503)  # hackle's first attempt: still pending after it
    event = track(
        "product.purchased", personal(), profile="P1", session="S1", vendor_extra={"hackle": {}}
    )
    assert event is not None
    flow.breaker.reset()
    worker.Worker().run_once()
    stored = Event.objects.get(pk=event.id)
    if Delivery.objects.filter(status=Status.PENDING).exists():
        assert stored.properties == personal()  # not all final yet: kept for the retry
    drain_until_settled(worker.Worker())
    stored.refresh_from_db()
    assert stored.properties == {}
    assert stored.vendor_extra == {}
    # pseudonymous ids stay for the admin
    assert stored.identity == {"profile": "P1", "session": "S1"}
    assert vendors.events("hackle")[0]["event"]["properties"]["email"] == "ada@example.com"


@pytest.mark.django_db(transaction=True)
def test_redact_keys_from_the_environment_masks_nested_keys_after_failure(
    vendors: Sandbox, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTTRACK_REDACT_KEYS", "email, phone")
    settings.EVENTTRACK = settings.EVENTTRACK | {"DELIVERY": "sync"}
    assert get_config().redact_keys == {"email", "phone"}
    vendors.inject("browsee", status=400, body={"status": "failure", "message": "no"})
    event = track("product.purchased", personal(), profile="P1", session="S1")
    assert event is not None
    assert Delivery.objects.get(vendor="browsee").status == Status.FAILED
    assert Event.objects.get(pk=event.id).properties == {
        "n": 0,
        "email": MASK,
        "cart": [{"sku": "S1", "email": MASK}],
    }


@pytest.mark.django_db
def test_an_event_no_vendor_sends_is_scrubbed_when_stored(settings: Settings) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {"hellotext": {"API_TOKEN": "t", "API_URL": "http://127.0.0.1:9"}},
        "SCRUB_DELIVERED": "true",
    }
    event = track("product.purchased", personal())  # no profile: Hellotext skips it
    assert event is not None
    assert Event.objects.get(pk=event.id).properties == {}  # at once, before any sender
    assert fanout.write_now([event.id]) == 1
    assert Delivery.objects.get().status == Status.SKIPPED


@pytest.mark.django_db
def test_an_event_whose_deliveries_are_not_written_yet_is_not_scrubbed(
    vendors: Sandbox, settings: Settings
) -> None:
    settings.EVENTTRACK = settings.EVENTTRACK | {"SCRUB_DELIVERED": True, "DELIVERY": "worker"}
    event = track("product.purchased", personal(), profile="P1", session="S1")
    assert event is not None
    assert retention.scrub_finished([event.id]) == 0  # no delivery is pending: none exists yet
    assert Event.objects.get(pk=event.id).properties == personal()


@pytest.mark.django_db
def test_without_the_settings_nothing_is_scrubbed(vendors: Sandbox) -> None:
    assert not get_config().scrub_delivered
    assert not get_config().redact_keys
    event = track("product.purchased", personal(), profile="P1")
    assert event is not None
    assert Event.objects.get(pk=event.id).properties == personal()


# -- purge ------------------------------------------------------------------------------------

OLD = timedelta(days=40)


RECENT = timedelta(days=1)


@pytest.fixture
def aged_outbox() -> dict[str, Event]:
    """Events named by what purging 30 days must do with them."""
    finished = stored_event(OLD)
    for vendor, state in [
        ("hackle", Status.DELIVERED),
        ("browsee", Status.FAILED),
        ("hellotext", Status.SKIPPED),
    ]:
        delivery(finished, vendor, state, age=OLD)
    still_pending = stored_event(OLD)
    delivery(still_pending, "hackle", Status.DELIVERED, age=OLD)
    delivery(still_pending, "browsee", Status.PENDING, age=OLD)
    recent = stored_event(RECENT)
    delivery(recent, "hackle", Status.DELIVERED, age=RECENT)
    old_but_touched = stored_event(OLD)
    delivery(old_but_touched, "hackle", Status.FAILED, age=RECENT)
    return {
        "finished": finished,
        "still_pending": still_pending,
        "recent": recent,
        "old_but_touched": old_but_touched,
        "never_delivered": stored_event(OLD),  # stored while no vendor was configured
        # No sender has written its deliveries yet (a worker delivery, no worker running).
        "unrouted": stored_event(OLD, routes={"hackle": None}),
    }


def remaining() -> tuple[set[uuid.UUID], set[tuple[uuid.UUID, str, str]]]:
    return (
        set(Event.objects.values_list("id", flat=True).order_by()),
        set(Delivery.objects.values_list("event_id", "vendor", "status")),
    )


@pytest.mark.django_db
def test_purge_deletes_old_finished_rows_and_keeps_pending_ones(
    aged_outbox: dict[str, Event],
) -> None:
    result = retention.purge(timedelta(days=30), now=NOW)
    assert result.deliveries == {"delivered": 2, "failed": 1, "skipped": 1}
    assert result.events == 2
    assert result.cutoff == NOW - timedelta(days=30)
    events, deliveries = remaining()
    assert events == {
        aged_outbox[name].id for name in ("still_pending", "recent", "old_but_touched", "unrouted")
    }
    assert deliveries == {
        (aged_outbox["still_pending"].id, "browsee", "pending"),
        (aged_outbox["recent"].id, "hackle", "delivered"),
        (aged_outbox["old_but_touched"].id, "hackle", "failed"),
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("aged_outbox")
def test_purge_dry_run_counts_the_same_and_deletes_nothing() -> None:
    before = remaining()
    dry = retention.purge(timedelta(days=30), dry_run=True, now=NOW)
    assert remaining() == before
    done = retention.purge(timedelta(days=30), now=NOW)
    assert (dry.dry_run, done.dry_run) == (True, False)
    assert (dry.deliveries, dry.events) == (done.deliveries, done.events)


@pytest.mark.django_db
def test_purge_deletes_in_chunks() -> None:
    for _ in range(5):
        delivery(stored_event(OLD), "hackle", Status.DELIVERED, age=OLD)
    with CaptureQueriesContext(connection) as queries:
        result = retention.purge(timedelta(days=30), now=NOW, chunk_size=2)
    assert (result.deliveries_total, result.events) == (5, 5)
    chunk_deletes = [
        query["sql"]
        for query in queries
        if query["sql"].startswith(
            'DELETE FROM "eventtrack_delivery" WHERE ("eventtrack_delivery"."status"'
        )
    ]
    assert len(chunk_deletes) == 3  # 2 + 2 + 1
    assert not Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("aged_outbox")
def test_purge_command_dry_run_and_retention_setting(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    out = StringIO()
    call_command("eventtrack_purge", "--days", "30", "--dry-run", stdout=out)
    assert out.getvalue().strip() == (
        "Would delete 4 deliveries (2 delivered, 1 failed, 1 skipped) and 2 events older than "
        "2026-10-24T12:00:00+00:00 (30 days)."
    )
    assert Delivery.objects.count() == 7

    settings.EVENTTRACK = {"RETENTION_DAYS": 0.5}  # everything finished goes but "pending"
    out = StringIO()
    call_command("eventtrack_purge", stdout=out)
    assert out.getvalue().startswith(
        "Deleted 6 deliveries (3 delivered, 2 failed, 1 skipped) and 4 events"
    )
    assert list(Delivery.objects.values_list("status", flat=True)) == ["pending"]


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "-1", "nan", "inf"])
def test_purge_command_refuses_a_bad_retention(days: str) -> None:
    with pytest.raises(CommandError, match="--days must be more than 0"):
        call_command("eventtrack_purge", "--days", days)


def test_purge_command_reports_a_broken_configuration(settings: Settings) -> None:
    settings.EVENTTRACK = {"RETENTION_DAYS": "a month"}
    with pytest.raises(CommandError, match="RETENTION_DAYS"):
        call_command("eventtrack_purge")
