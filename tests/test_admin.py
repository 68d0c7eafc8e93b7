"""The admin: read-only lists and pages, filters, search, the two actions, and no secrets."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import constants as levels
from django.contrib.messages.storage.base import Message
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.models import Delivery, Event, VendorPause, VendorSession
from django_eventtrack.sandbox import Sandbox

Status = Delivery.Status
SECRET = "hk-secret-value"
EVENTS = reverse("admin:django_eventtrack_event_changelist")
DELIVERIES = reverse("admin:django_eventtrack_delivery_changelist")


@pytest.fixture(autouse=True)
def _admin_settings(settings: Settings) -> None:
    """What the admin needs and the rest of the suite does not."""
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ]
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]


def stored(
    name: str = "order.placed", identity: dict[str, str] | None = None, **statuses: str
) -> Event:
    event = Event.objects.create(
        name=name, identity=identity or {}, timestamp=timezone.now(), properties={"total": 10}
    )
    for vendor, status in statuses.items():
        Delivery.objects.create(event=event, vendor=vendor, status=status)
    return event


def midnight(days: int = 0) -> str:
    """A date filter's bound, as the admin's own filter links spell it."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return str(today + timedelta(days=days))


def listed(client: Client, url: str, **params: Any) -> list[Any]:
    response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


@pytest.fixture
def outbox() -> dict[str, Event]:
    return {
        "placed": stored(
            "order.placed", {"user_id": "U-17", "profile": "P1"}, hackle=Status.FAILED
        ),
        "shipped": stored(
            "order.shipped",
            {"anonymous_id": "anon-9"},
            hackle=Status.DELIVERED,
            browsee=Status.FAILED,
        ),
        "purchased": stored("product.purchased", {"device_id": "D-1"}, hellotext=Status.PENDING),
    }


@pytest.mark.django_db
def test_event_list_filters_and_search(admin_client: Client, outbox: dict[str, Event]) -> None:
    def names(**params: Any) -> set[str]:
        return {event.name for event in listed(admin_client, EVENTS, **params)}

    assert names() == {"order.placed", "order.shipped", "product.purchased"}
    assert names(vendor="hackle") == {"order.placed", "order.shipped"}
    assert names(status="failed") == {"order.placed", "order.shipped"}
    assert names(status="pending") == {"product.purchased"}
    assert len(names(created_at__gte=midnight())) == 3
    assert names(q="shipped") == {"order.shipped"}
    assert names(q="u-17") == {"order.placed"}  # identity values match whole, any case
    assert names(q="anon") == set()
    assert names(q="P1") == {"order.placed"}
    assert names(q="profile") == set()  # a key name is not a value
    assert names(q=str(outbox["purchased"].id)) == {"product.purchased"}
    assert names(q=outbox["purchased"].id.hex) == {"product.purchased"}


@pytest.mark.django_db
def test_an_event_no_sender_has_routed_yet_is_listed_and_filtered_by_its_routes(
    admin_client: Client, outbox: dict[str, Event]
) -> None:
    waiting = Event.objects.create(
        name="order.refunded",
        timestamp=timezone.now(),
        routes={"hackle": None, "hellotext": "Hellotext needs a profile or session"},
    )

    def names(**params: Any) -> set[str]:
        return {event.name for event in listed(admin_client, EVENTS, **params)}

    assert names(vendor="hackle") == {"order.placed", "order.shipped", "order.refunded"}
    assert names(vendor="browsee") == {"order.shipped"}
    assert names(status="pending") == {"product.purchased", "order.refunded"}
    assert names(status="failed") == {"order.placed", "order.shipped"}
    content = admin_client.get(EVENTS, {"q": str(waiting.id)}).content.decode()
    assert cells(content, "deliveries_column") == ["hackle: pending, hellotext: skipped"]


@pytest.mark.django_db
def test_delivery_list_filters_and_search(admin_client: Client, outbox: dict[str, Event]) -> None:
    def rows(**params: Any) -> set[tuple[str, str]]:
        return {(d.event.name, d.vendor) for d in listed(admin_client, DELIVERIES, **params)}

    assert len(rows()) == 4
    assert rows(vendor="hackle", status="failed") == {("order.placed", "hackle")}
    assert rows(status="failed") == {("order.placed", "hackle"), ("order.shipped", "browsee")}
    assert rows(next_attempt_at__gte=midnight(days=1)) == set()
    assert len(rows(created_at__gte=midnight())) == 4
    assert rows(q="anon-9") == {("order.shipped", "hackle"), ("order.shipped", "browsee")}
    assert rows(q=str(outbox["placed"].id)) == {("order.placed", "hackle")}
    assert rows(q="product.purch") == {("product.purchased", "hellotext")}
    content = admin_client.get(DELIVERIES).content.decode()
    assert "Retry now" in content
    assert "Mark skipped" in content
    assert "Delete selected" not in content


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(admin_client: Client) -> None:
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    stored(hackle=Status.FAILED, browsee=Status.DELIVERED)
    few = queries(EVENTS), queries(DELIVERIES)
    for _ in range(20):
        stored(hackle=Status.FAILED, browsee=Status.DELIVERED)
    assert (queries(EVENTS), queries(DELIVERIES)) == few


def act(client: Client, action: str, deliveries: list[Delivery], query: str = "") -> str:
    return " ".join(str(message) for message in acted(client, action, deliveries, query))


def acted(
    client: Client, action: str, deliveries: list[Delivery], query: str = ""
) -> list[Message]:
    """The messages an action left, posted from the list filtered by ``query``."""
    response = client.post(
        f"{DELIVERIES}{query}",
        {"action": action, "_selected_action": [d.pk for d in deliveries]},
        follow=True,
    )
    assert response.status_code == 200
    return list(response.context["messages"])


@pytest.mark.django_db
def test_retry_now_makes_deliveries_due_and_leaves_in_flight_ones_alone(
    admin_client: Client,
) -> None:
    later = timezone.now() + timedelta(hours=1)
    event = stored()
    failed = Delivery.objects.create(
        event=event, vendor="hackle", status=Status.FAILED, attempts=10, last_error="HTTP 500"
    )
    skipped = Delivery.objects.create(event=event, vendor="hellotext", status=Status.SKIPPED)
    stale_claim = Delivery.objects.create(
        event=event,
        vendor="primedata",
        next_attempt_at=later,
        claim_token="00000000-0000-0000-0000-000000000001",
        claimed_until=timezone.now() - timedelta(minutes=1),
    )
    in_flight = Delivery.objects.create(
        event=event,
        vendor="browsee",
        next_attempt_at=later,
        claim_token="00000000-0000-0000-0000-000000000002",
        claimed_until=later,
    )
    before = timezone.now()
    message = act(admin_client, "retry_now", [failed, skipped, stale_claim, in_flight])
    assert message == "3 deliveries due now. 1 being sent right now, left alone."
    for delivery in (failed, skipped, stale_claim):
        delivery.refresh_from_db()
        assert delivery.status == Status.PENDING
        assert before <= delivery.next_attempt_at <= timezone.now()
        assert (delivery.claim_token, delivery.claimed_until) == (None, None)
    assert failed.attempts == 10  # kept: MAX_ATTEMPTS still counts them
    in_flight.refresh_from_db()
    assert (in_flight.next_attempt_at, in_flight.claimed_until) == (later, later)


@pytest.mark.django_db
def test_mark_skipped_names_the_user_and_keeps_delivered_rows(admin_client: Client) -> None:
    event = stored()
    pending = Delivery.objects.create(event=event, vendor="hackle")
    failed = Delivery.objects.create(event=event, vendor="browsee", status=Status.FAILED)
    delivered = Delivery.objects.create(event=event, vendor="primedata", status=Status.DELIVERED)
    assert act(admin_client, "mark_skipped", [pending, failed, delivered]) == (
        "2 deliveries skipped. 1 already delivered, left alone."
    )
    assert dict(Delivery.objects.values_list("vendor", "status")) == {
        "hackle": "skipped",
        "browsee": "skipped",
        "primedata": "delivered",
    }
    pending.refresh_from_db()
    assert pending.last_error == "skipped by admin in admin"


@pytest.mark.django_db
def test_view_permission_alone_shows_no_actions(client: Client) -> None:
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(codename__in=["view_event", "view_delivery"])
    )
    client.force_login(viewer)
    pending = Delivery.objects.create(event=stored(), vendor="hackle")
    assert listed(client, DELIVERIES) == [pending]
    assert "Retry now" not in client.get(DELIVERIES).content.decode()
    client.post(DELIVERIES, {"action": "mark_skipped", "_selected_action": [pending.pk]})
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_nothing_can_be_added_edited_or_deleted(admin_client: Client) -> None:
    delivery = Delivery.objects.create(event=stored(), vendor="hackle")
    for model, pk in (("event", delivery.event_id), ("delivery", delivery.pk)):
        assert admin_client.get(reverse(f"admin:django_eventtrack_{model}_add")).status_code == 403
        change = reverse(f"admin:django_eventtrack_{model}_change", args=[pk])
        page = admin_client.get(change).content.decode()
        assert 'name="_save"' not in page
        assert "<textarea" not in page
        assert admin_client.post(change, {"vendor": "browsee"}).status_code == 403
        delete = reverse(f"admin:django_eventtrack_{model}_delete", args=[pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.vendor == "hackle"


@pytest.mark.django_db(transaction=True)
def test_no_configured_secret_appears_on_any_admin_page(
    admin_client: Client, settings: Settings, sandbox: Sandbox
) -> None:
    vendors = sandbox.vendor_settings()
    vendors["hackle"]["API_KEY"] = SECRET  # the sandbox refuses it: Hackle is paused
    settings.EVENTTRACK = {"VENDORS": vendors, "DELIVERY": "sync"}
    with transaction.atomic():
        event = track("order.placed", {"order": "O-1"}, user_id="U-17", profile="P1")
    assert event is not None
    hackle = Delivery.objects.get(event_id=event.id, vendor="hackle")
    assert (hackle.status, hackle.last_status) == (Status.PENDING, 401)
    assert VendorPause.objects.get(vendor="hackle").credentials
    secrets = [value for credentials in vendors.values() for value in credentials.values()]
    secrets = [value for value in secrets if not value.startswith("http")]
    pages = [
        EVENTS,
        DELIVERIES,
        reverse("admin:django_eventtrack_event_change", args=[event.id]),
        *(
            reverse("admin:django_eventtrack_delivery_change", args=[pk])
            for pk in Delivery.objects.values_list("pk", flat=True)
        ),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200
        content = response.content.decode()
        assert "order.placed" in content
        for secret in secrets:
            assert secret not in content, (page, secret)
    for page in (
        reverse("admin:eventtrack_dashboard"),
        reverse("admin:django_eventtrack_vendorpause_changelist"),
    ):
        content = admin_client.get(page).content.decode()
        assert "EVENTTRACK_HACKLE_API_KEY" in content  # what to fix, never its value
        for secret in secrets:
            assert secret not in content, (page, secret)


@pytest.mark.django_db(transaction=True)
def test_retry_now_wakes_the_delivery_backend(admin_client: Client, vendors: Sandbox) -> None:
    event = stored(identity={"device_id": "D-1"})
    failed = Delivery.objects.create(
        event=event, vendor="hackle", status=Status.FAILED, attempts=1, last_error="HTTP 500"
    )
    assert act(admin_client, "retry_now", [failed]) == "1 delivery due now."
    failed.refresh_from_db()  # DELIVERY is "sync": sent before the response
    assert (failed.status, failed.attempts, failed.last_status) == (Status.DELIVERED, 2, 200)
    assert len(vendors.requests("hackle")) == 1


@pytest.mark.django_db
def test_a_scrubbed_event_is_not_resent_and_mark_skipped_scrubs(
    admin_client: Client, settings: Settings
) -> None:
    settings.EVENTTRACK = settings.EVENTTRACK | {"SCRUB_DELIVERED": True}
    scrubbed = stored()
    scrubbed_failure = Delivery.objects.create(event=scrubbed, vendor="hackle", status="failed")
    Event.objects.filter(pk=scrubbed.pk).update(properties={}, scrubbed_at=timezone.now())
    message = act(admin_client, "retry_now", [scrubbed_failure])
    assert "1 not retried: their event's properties were scrubbed" in message
    scrubbed_failure.refresh_from_db()
    assert scrubbed_failure.status == Status.FAILED

    kept = stored()
    pending = Delivery.objects.create(event=kept, vendor="hackle")
    assert kept.properties
    act(admin_client, "mark_skipped", [pending])
    kept.refresh_from_db()
    assert kept.properties == {}
    assert kept.scrubbed_at is not None


@pytest.mark.django_db
def test_actions_on_a_filtered_list_count_what_they_did(admin_client: Client) -> None:
    """The list filtered to failed rows: an action that changes their status must not
    count the filtered list again afterwards ("-5 being sent right now")."""
    failed = [
        Delivery.objects.create(event=stored(), vendor="hackle", status=Status.FAILED)
        for _ in range(5)
    ]
    (message,) = acted(admin_client, "retry_now", failed, "?status=failed")
    assert (str(message), message.level) == ("5 deliveries due now.", levels.SUCCESS)

    Delivery.objects.filter(pk__in=[d.pk for d in failed[:2]]).update(status=Status.DELIVERED)
    (message,) = acted(admin_client, "mark_skipped", failed, "?status=pending&status=delivered")
    assert str(message) == "3 deliveries skipped. 2 already delivered, left alone."
    assert message.level == levels.WARNING  # not everything selected was skipped


@pytest.mark.django_db
def test_a_retry_that_leaves_deliveries_alone_is_a_warning(admin_client: Client) -> None:
    later = timezone.now() + timedelta(hours=1)
    in_flight = Delivery.objects.create(
        event=stored(), vendor="browsee", claim_token=uuid.uuid4(), claimed_until=later
    )
    (message,) = acted(admin_client, "retry_now", [in_flight])
    assert str(message) == "0 deliveries due now. 1 being sent right now, left alone."
    assert message.level == levels.WARNING


def cells(content: str, column: str) -> list[str]:
    """The text of one column of a changelist, row by row (HTML tags dropped)."""
    found = re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', content, re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found]


@pytest.mark.django_db
def test_delivery_list_shows_the_reason_and_no_next_attempt_on_final_rows(
    admin_client: Client,
) -> None:
    long_reason = "HTTP 422: " + "the visitor's profile is missing; " * 10
    event = stored()
    for vendor, status, error in [
        ("hackle", Status.FAILED, long_reason),
        ("browsee", Status.SKIPPED, "visitor opted out of tracking"),
        ("primedata", Status.DELIVERED, ""),
        ("hellotext", Status.PENDING, "HTTP 503: try later"),
    ]:
        Delivery.objects.create(event=event, vendor=vendor, status=status, last_error=error)
    content = admin_client.get(DELIVERIES).content.decode()
    vendors = cells(content, "vendor")
    reasons = dict(zip(vendors, cells(content, "reason"), strict=True))
    assert reasons["hackle"] == long_reason[:89] + "…"
    assert f'title="{html.escape(long_reason)}"' in content  # the whole text on hover
    assert reasons["browsee"] == "visitor opted out of tracking"
    assert reasons["primedata"] == "-"
    assert reasons["hellotext"] == "HTTP 503: try later"
    next_attempts = dict(zip(vendors, cells(content, "next_attempt"), strict=True))
    assert next_attempts["hackle"] == next_attempts["browsee"] == next_attempts["primedata"] == "-"
    assert next_attempts["hellotext"] != "-"

    failed = Delivery.objects.get(vendor="hackle")
    page = admin_client.get(reverse("admin:django_eventtrack_delivery_change", args=[failed.pk]))
    assert readonly(page.content.decode(), "next_attempt") == "-"


def readonly(content: str, field: str) -> str:
    """The value a change page shows for ``field``."""
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', content, re.DOTALL)
    assert match, field
    return html.unescape(match[1]).strip()


@pytest.mark.django_db
def test_a_failed_identify_does_not_read_as_a_success(admin_client: Client) -> None:
    """A vendor can answer 2xx and still refuse (Hellotext's ``errors`` in a 200 body):
    the delivery is failed with a 200 as its last HTTP status, which must not read as
    a success."""
    first = stored("identify", {"user_id": "U-1"})
    Delivery.objects.create(
        event=first, vendor="hellotext", status=Status.DELIVERED, last_status=200
    )
    second = Delivery.objects.create(
        event=stored("identify", {"user_id": "U-2"}),
        vendor="hellotext",
        status=Status.FAILED,
        last_status=200,
        last_error="the session already belongs to another profile",
    )
    content = admin_client.get(DELIVERIES, {"vendor": "hellotext"}).content.decode()
    answers = cells(content, "last_answer")
    assert answers == ["200, but failed", "200"]  # newest first
    assert cells(content, "reason")[0].startswith("the session already belongs to another")
    page = admin_client.get(reverse("admin:django_eventtrack_delivery_change", args=[second.pk]))
    assert readonly(page.content.decode(), "last_answer") == "200, but failed"


@pytest.mark.django_db
def test_a_delivery_shows_what_was_changed_to_fit_the_vendor(admin_client: Client) -> None:
    event = stored()
    fitted = Delivery.objects.create(
        event=event,
        vendor="hackle",
        status=Status.DELIVERED,
        adjustments=["properties: 70 keys, kept 64", "note: <dropped>, over 1,024 characters"],
    )
    untouched = Delivery.objects.create(event=event, vendor="browsee", status=Status.DELIVERED)

    def shown(delivery: Delivery) -> str:
        url = reverse("admin:django_eventtrack_delivery_change", args=[delivery.pk])
        return admin_client.get(url).content.decode()

    content = shown(fitted)
    assert "<p>properties: 70 keys, kept 64</p>" in content
    assert "<p>note: &lt;dropped&gt;, over 1,024 characters</p>" in content  # escaped
    assert readonly(shown(untouched), "changed_to_fit") == "-"


@pytest.mark.django_db
def test_session_owners_are_listed_and_read_only(admin_client: Client) -> None:
    owner = VendorSession.objects.create(vendor="hellotext", session_id="S1", profile_id="P1")
    listing = reverse("admin:django_eventtrack_vendorsession_changelist")
    page = admin_client.get(listing, {"q": "S1"}).content.decode()
    assert "S1" in page
    assert "P1" in page
    assert admin_client.get(reverse("admin:django_eventtrack_vendorsession_add")).status_code == 403
    change = reverse("admin:django_eventtrack_vendorsession_change", args=[owner.pk])
    assert admin_client.post(change, {"profile_id": "P2"}).status_code == 403
    owner.refresh_from_db()
    assert owner.profile_id == "P1"


@pytest.mark.django_db
def test_a_pause_is_listed_and_deleting_it_resumes_sending(admin_client: Client) -> None:
    from django_eventtrack.outbox import pausing

    pausing.pause_vendor("hackle", 600, "429 Too Many Requests (Retry-After: 600)")
    assert set(pausing.paused_vendors()) == {"hackle"}
    listing = reverse("admin:django_eventtrack_vendorpause_changelist")
    assert "Retry-After: 600" in admin_client.get(listing).content.decode()
    pause = VendorPause.objects.get(vendor="hackle")
    change = reverse("admin:django_eventtrack_vendorpause_change", args=[pause.pk])
    assert admin_client.post(change, {"reason": "x"}).status_code == 403
    assert admin_client.get(reverse("admin:django_eventtrack_vendorpause_add")).status_code == 403
    delete = reverse("admin:django_eventtrack_vendorpause_delete", args=[pause.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert pausing.paused_vendors() == {}
