"""The outbox in one process: what track() stores, how claims and outcomes behave."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from django_eventtrack import signals, track
from django_eventtrack.conf import DeliveryOptions, get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.errors import ConfigurationError, InvalidEvent
from django_eventtrack.models import Delivery, Event, VendorProfile
from django_eventtrack.outbox import fanout, group_commit, inserts, leases, outcomes
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import Outcome, OutcomeKind
from tests.processes.helpers import VENDORS, rows_unlike_the_orms, wait_until

Status = Delivery.Status


@pytest.fixture
def worker_mode(settings: Settings, vendors: Sandbox) -> Sandbox:
    """Vendors configured, but nothing sent on commit: tests drive the outbox by hand."""
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    return vendors


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
def test_two_senders_routing_the_same_events_write_each_delivery_once(
    worker_mode: Sandbox,
) -> None:
    events = [track("order.placed", {"n": n}, session=f"S{n}") for n in range(3)]
    first, second = fanout.pending(), fanout.pending()  # both read before either writes
    assert len(first.deliveries) == len(second.deliveries) == 3 * len(VENDORS)
    assert first.write() == 3
    assert second.write() == 0  # ignored: the first sender's rows stand
    assert Delivery.objects.count() == 3 * len(VENDORS)
    assert not fanout.unrouted().exists()
    stored = {event.id: Event.objects.get(pk=event.id).created_at for event in events if event}
    for delivery in Delivery.objects.all():  # due, and aged, from when track() stored it
        assert delivery.created_at == delivery.next_attempt_at == stored[delivery.event_id]


@pytest.mark.django_db
def test_routes_that_are_not_a_mapping_are_logged_not_sent(
    worker_mode: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    event = Event.objects.create(name="a.b", timestamp=timezone.now(), routes=["hackle"])
    assert fanout.route([event.pk]) == 1
    assert not Delivery.objects.exists()
    assert f"event={event.pk}: its routes are 'list', not a mapping" in caplog.text


@pytest.mark.django_db
def test_a_user_id_alone_looks_up_a_remembered_profile_once_per_process(
    worker_mode: Sandbox, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    """The lookup cost more than storing the event; a profile found is kept, a missing
    one is looked up again, so the first event after ``identify()`` carries it."""
    get_config()
    statuses = []
    for profile, queries in ((None, 2), ("P7", 2), ("P7", 1)):
        if profile:
            VendorProfile.objects.get_or_create(vendor="hellotext", user_id="7", profile_id=profile)
        with transaction.atomic(), django_assert_num_queries(queries):
            event = track("order.shipped", {"order": "O1"}, user_id=7)
        assert event is not None
        assert event.identity.profile == profile
        fanout.route([event.id])
        statuses.append(Delivery.objects.get(event_id=event.id, vendor="hellotext").status)
    assert statuses == [Status.SKIPPED, Status.PENDING, Status.PENDING]


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
def test_a_vendor_that_cannot_take_the_event_gets_a_skipped_row(worker_mode: Sandbox) -> None:
    event = track("user.signed_up", user_id=7)
    assert event is not None
    assert fanout.route([event.id]) == 1
    hellotext = Delivery.objects.get(event_id=event.id, vendor="hellotext")
    assert hellotext.status == Status.SKIPPED
    assert "Hellotext needs a profile or session" in hellotext.last_error
    pending = Delivery.objects.filter(event_id=event.id, status=Status.PENDING)
    assert pending.count() == len(VENDORS) - 1


@pytest.mark.django_db
def test_events_filter_and_explicit_vendors(settings: Settings, sandbox: Sandbox) -> None:
    vendor_settings = sandbox.vendor_settings()
    vendor_settings["hackle"]["EVENTS"] = ["order.shipped"]  # type: ignore[assignment]
    settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "worker"}
    event = track("product.purchased", profile="P1")
    assert event is not None
    only = track("product.purchased", profile="P1", vendors=["browsee"])
    assert only is not None
    assert fanout.route([event.id, only.id]) == 2
    assert "hackle" not in set(
        Delivery.objects.filter(event_id=event.id).values_list("vendor", flat=True)
    )
    assert list(Delivery.objects.filter(event_id=only.id).values_list("vendor", flat=True)) == [
        "browsee"
    ]
    with pytest.raises(ConfigurationError, match="unknown vendor segment"):
        track("product.purchased", profile="P1", vendors=["segment"])


@pytest.mark.django_db
def test_track_with_no_vendor_configured_stores_the_event(settings: Settings) -> None:
    settings.EVENTTRACK = {"DELIVERY": "worker"}
    event = track("product.purchased", profile="P1")
    assert event is not None
    assert Event.objects.filter(pk=event.id).exists()
    assert not Delivery.objects.exists()


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
def test_rollback_leaves_nothing_and_sends_nothing(vendors: Sandbox) -> None:
    def place_order_that_fails() -> None:
        with transaction.atomic():
            track("product.purchased", profile="P1")
            raise RuntimeError("the order failed")

    with pytest.raises(RuntimeError):
        place_order_that_fails()
    assert not Event.objects.exists()
    assert vendors.requests() == []


def _claim(vendor: str = "hackle", lease: float = 60) -> leases.Claim:
    return leases.claim_due_deliveries(vendor, 10, timedelta(seconds=lease))


@pytest.mark.django_db
def test_a_claim_is_exclusive_until_its_lease_ends(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    first = _claim()
    assert len(first.deliveries) == 1
    assert _claim().deliveries == []  # leased to the first sender
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    second = _claim()  # the first sender "died": its lease is over
    assert [d.pk for d in second.deliveries] == [d.pk for d in first.deliveries]
    assert second.token != first.token


@pytest.mark.django_db
def test_a_stale_claim_cannot_overwrite_a_newer_result(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    config = get_config()
    stale = _claim()
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    fresh = _claim()
    ok = Outcome(OutcomeKind.DELIVERED, 200)
    outcomes.record_outcome(fresh, fresh.deliveries, ok, config.vendors["hackle"], config.options)
    failed = Outcome(OutcomeKind.FAILED, 400, "HTTP 400")
    outcomes.record_outcome(
        stale, stale.deliveries, failed, config.vendors["hackle"], config.options
    )
    delivery = Delivery.objects.get(vendor="hackle")
    assert (delivery.status, delivery.attempts, delivery.claim_token) == (Status.DELIVERED, 1, None)


@pytest.mark.django_db
def test_release_makes_deliveries_due_again(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    claim = _claim()
    leases.release(claim, claim.deliveries)
    assert len(_claim().deliveries) == 1


@pytest.mark.django_db
def test_retry_reschedules_with_backoff_and_retry_after(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    config = get_config()
    claim = _claim()
    before = timezone.now()
    outcome = Outcome(OutcomeKind.RETRY, 429, "HTTP 429", retry_after=30)
    outcomes.record_outcome(
        claim, claim.deliveries, outcome, config.vendors["hackle"], config.options
    )
    delivery = Delivery.objects.get(vendor="hackle")
    assert delivery.status == Status.PENDING
    assert delivery.attempts == 1
    assert delivery.last_status == 429
    assert delivery.next_attempt_at >= before + timedelta(seconds=30)
    assert delivery.claim_token is None


@pytest.mark.parametrize("attempts", [1, 2, 5, 12, 40])
def test_backoff_is_full_jitter_below_a_capped_exponential(attempts: int) -> None:
    options = DeliveryOptions(retry_backoff_base=2.0, retry_backoff_max=60.0)
    ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
    waits = [outcomes.backoff(attempts, options) for _ in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling / 2  # spread, not a constant


@pytest.mark.django_db
def test_signals_fire_for_success_and_final_failure(worker_mode: Sandbox) -> None:
    seen: list[tuple[str, str, Any]] = []

    def on_success(delivery: Delivery, outcome: Outcome, **kwargs: Any) -> None:
        seen.append(("succeeded", delivery.vendor, outcome.http_status))

    def on_failure(delivery: Delivery, outcome: Outcome, **kwargs: Any) -> None:
        seen.append(("failed", delivery.vendor, outcome.message))

    def broken(**kwargs: Any) -> None:
        raise ValueError("a receiver bug must not stop delivery")

    signals.delivery_succeeded.connect(on_success, weak=False)
    signals.delivery_failed.connect(on_failure, weak=False)
    signals.delivery_succeeded.connect(broken, weak=False)
    try:
        track("a.b", user_id=1)
        config = get_config()
        claim = _claim()
        outcomes.record_outcome(
            claim,
            claim.deliveries,
            Outcome(OutcomeKind.DELIVERED, 200),
            config.vendors["hackle"],
            config.options,
        )
        claim = _claim("browsee")
        outcomes.record_outcome(
            claim,
            claim.deliveries,
            Outcome(OutcomeKind.FAILED, 401, "HTTP 401: bad key"),
            config.vendors["browsee"],
            config.options,
        )
    finally:
        signals.delivery_succeeded.disconnect(on_success)
        signals.delivery_failed.disconnect(on_failure)
        signals.delivery_succeeded.disconnect(broken)
    assert seen == [("succeeded", "hackle", 200), ("failed", "browsee", "HTTP 401: bad key")]
    assert Delivery.objects.get(vendor="hackle").status == Status.DELIVERED


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


@pytest.mark.django_db(transaction=True)
def test_deliveries_older_than_max_age_are_failed_unsent(
    settings: Settings, sandbox: Sandbox
) -> None:
    from django_eventtrack.delivery import sender

    browsee = sandbox.vendor_settings()["browsee"] | {"MAX_AGE": 6 * 3600}
    settings.EVENTTRACK = {"VENDORS": {"browsee": browsee}, "DELIVERY": "worker"}
    assert get_config().vendors["browsee"].max_age == 6 * 3600
    stale = track("a.b", user_id=1)
    fresh = track("a.b", user_id=2)
    assert stale is not None
    assert fresh is not None
    Event.objects.filter(pk=stale.id).update(created_at=timezone.now() - timedelta(hours=7))
    stats = sender.drain()
    assert (stats.delivered, stats.failed) == (1, 1)
    old = Delivery.objects.get(event_id=stale.id)
    assert old.status == Status.FAILED
    assert "older than MAX_AGE" in old.last_error
    assert len(sandbox.requests("browsee")) == 1


@pytest.mark.django_db(transaction=True)
def test_sender_writes_queued_meanwhile_share_one_transaction_and_fail_alone(
    worker_mode: Sandbox,
) -> None:
    group = group_commit._GroupCommit()
    events = [Event.objects.create(name=f"e{n}", timestamp=timezone.now()) for n in range(4)]
    first_running, release = threading.Event(), threading.Event()
    ran_in: dict[int, int] = {}
    results: dict[int, object] = {}

    def write(n: int) -> Callable[[], int]:
        def run() -> int:
            ran_in[n] = threading.get_ident()
            updated = Event.objects.filter(pk=events[n].pk).update(name=f"written {n}")
            if n == 0:
                first_running.set()
                release.wait(5)
            if n == 2:
                raise DatabaseError("this write fails")
            return updated

        return run

    def writer(n: int) -> None:
        try:
            results[n] = group.write("default", write(n))
        except DatabaseError as exc:
            results[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads[0].start()
    assert first_running.wait(5)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(group._queued) == 3, what="three writes queued behind the first")
    release.set()
    for thread in threads:
        thread.join(5)

    assert [results[0], results[1], results[3]] == [1, 1, 1]
    assert isinstance(results[2], DatabaseError)
    # The three queued meanwhile went in one transaction, run by one thread.
    assert len({ran_in[1], ran_in[2], ran_in[3]}) == 1
    names = dict(Event.objects.values_list("pk", "name"))
    assert [names[event.pk] for event in events] == ["written 0", "written 1", "e2", "written 3"]
