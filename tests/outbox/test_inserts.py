"""``outbox.inserts``: what ``track()`` stores (or refuses to), in one INSERT in the caller's
transaction."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.models import CharField, DateTimeField, Field, JSONField, UUIDField
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils.safestring import SafeString
from pytest_django import DjangoAssertNumQueries, Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import inserts, leases
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS, rows_unlike_the_orms


@pytest.mark.django_db
def test_track_stores_one_row_in_one_query_and_a_sender_writes_a_delivery_per_vendor(
    worker_mode: Sandbox, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    get_config()  # settings resolution is cached; only the outbox writes are counted
    with transaction.atomic(), django_assert_num_queries(1):
        purchase = {"product": "vxqQJ3Yg", "name": "Tee"}
        event = track("product.purchased", purchase, profile="P1", user_id=7)
    assert event is not None
    stored = Event.objects.get(pk=event.id)
    assert stored.identity == {"user_id": "7", "profile": "P1"}
    assert stored.properties == purchase
    assert stored.routes == dict.fromkeys(VENDORS)
    assert not stored.deliveries.exists()
    claim = leases.claim_due(dict.fromkeys(VENDORS, 10), timedelta(minutes=1))
    assert sorted(d.vendor for d in claim.deliveries) == sorted(VENDORS)
    assert {d.event_id for d in claim.deliveries} == {event.id}
    assert Event.objects.get(pk=event.id).routes is None  # routed, in the claim's transaction
    assert worker_mode.requests() == []


@pytest.mark.django_db
def test_track_writes_the_rows_the_orm_would_field_by_field(worker_mode: Sandbox) -> None:
    pending = track("order.placed", {"order": "O1"}, session="S1")
    skipped = track("user.signed_up", user_id=7)  # Hellotext skips it, with the reason
    assert pending is not None
    assert skipped is not None
    assert rows_unlike_the_orms(pending.id) == {}
    assert rows_unlike_the_orms(skipped.id) == {}


@pytest.mark.django_db
def test_track_writes_every_column_so_a_new_field_gets_its_default(
    worker_mode: Sandbox,
) -> None:
    """The INSERT's columns come from the model: a field added to ``Event`` is written
    with its default, as the ORM writes it, instead of being left to the database."""
    with CaptureQueriesContext(connection) as queries:
        track("order.placed", {"order": "O1"}, session="S1")
    (insert,) = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert insert.startswith('INSERT INTO "eventtrack_event"')
    columns = insert.split("(", 1)[1].split(")", 1)[0]
    written = {name.strip().strip('"') for name in columns.split(",")}
    assert written == {field.column for field in Event._meta.concrete_fields}


@pytest.mark.django_db
def test_track_with_no_vendor_configured_stores_the_event(settings: Settings) -> None:
    settings.EVENTTRACK = {"DELIVERY": "worker"}
    event = track("product.purchased", profile="P1")
    assert event is not None
    assert Event.objects.filter(pk=event.id).exists()
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_rollback_leaves_nothing_and_sends_nothing(vendors: Sandbox) -> None:
    def place_order_that_fails() -> None:
        with transaction.atomic():
            track("product.purchased", profile="P1")
            raise RuntimeError("the order failed")

    with pytest.raises(RuntimeError):
        place_order_that_fails()
    assert not Event.objects.exists()
    assert vendors.requests() == []


@pytest.mark.django_db
def test_stored_event_round_trips_to_the_normalised_event(worker_mode: Sandbox) -> None:
    original = TrackedEvent.create(
        "order.placed",
        {"order": {"reference": "R1"}, "amount": 10},
        identity=Identity(user_id="7", session="S1"),
        vendor_extra={"hackle": {"event": {"value": 1}}},
        event_id=uuid.uuid4(),
    )
    inserts.record(original)
    restored = Event.objects.get(pk=original.id).to_normalised()
    assert restored == original


@pytest.mark.django_db
def test_invalid_event_raises_or_logs(
    settings: Settings, worker_mode: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidEvent, match=r"properties\.price"):
        track("product.purchased", {"price": object()}, profile="P1")
    settings.EVENTTRACK = {**settings.EVENTTRACK, "RAISE_ON_INVALID": False}
    assert track("product purchased", profile="P1") is None
    assert "refused" in caplog.text
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_identity_comes_from_the_request_user(worker_mode: Sandbox) -> None:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    anonymous = track("page.viewed", request=request, anonymous_id="a-1")
    assert anonymous is not None
    assert anonymous.identity == Identity(anonymous_id="a-1")

    class User:
        pk = 42
        is_authenticated = True

    request.user = User()  # type: ignore[assignment]
    logged_in = track("page.viewed", request=request)
    assert logged_in is not None
    assert logged_in.identity.user_id == "42"


@pytest.mark.django_db
@pytest.mark.parametrize("use_tz", [True, False])
def test_each_column_is_adapted_as_its_field_would_for_the_database(
    settings: Settings, use_tz: bool
) -> None:
    """track() adapts each value for the database without the field's steps that leave it
    unchanged; whatever the value, the parameter is the one ``get_db_prep_save`` gives."""
    settings.USE_TZ = use_tz
    aware = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    samples: dict[type[Field[Any, Any]], list[Any]] = {
        JSONField: [{"a": [1, 2.5, None]}, [1, "two"], {}, None, "text", 3, True],
        DateTimeField: [None, aware, aware.astimezone(timezone(timedelta(hours=-5)))],
        CharField: ["order.placed", SafeString("kept"), 7, None],
        UUIDField: [uuid.uuid4(), str(uuid.uuid4()), None],
    }
    naive = datetime(2026, 5, 4, 3, 2, 1)  # made aware with a warning under USE_TZ
    if use_tz:
        samples[DateTimeField].append(naive)
    else:  # SQLite refuses an aware one without USE_TZ, as the ORM would
        samples[DateTimeField] = [None, naive]
    for column in inserts._columns():
        kind = next(kind for kind in samples if isinstance(column.field, kind))
        for value in samples[kind]:
            with warnings.catch_warnings(record=True):
                expected = column.field.get_db_prep_save(value, connection)
                adapted = column.adapt(value, connection)
            assert adapted == expected, (column.field.name, value)
        if column.constant is not None:
            default = column.field.get_db_prep_save(column.field.get_default(), connection)
            assert column.constant == (default,)
