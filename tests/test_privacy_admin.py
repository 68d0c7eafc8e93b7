"""The admin's privacy pages: the consent stored on each event, erasure requests and their
tasks (marked done by staff), and retries that leave privacy skips alone."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

import django_eventtrack
from django_eventtrack.models import Delivery, ErasureTask, Event
from django_eventtrack.outbox import manual
from tests.test_admin import _admin_settings, stored  # noqa: F401 - the admin's fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(settings: Settings, vendors: object) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}


def test_the_event_page_shows_its_consent(admin_client: Client, configured: None) -> None:
    event = django_eventtrack.track("order.placed", user_id="U-a", consent=["analytics"])
    assert event is not None

    page = admin_client.get(reverse("admin:django_eventtrack_event_change", args=[event.id]))
    text = html.unescape(page.content.decode())
    assert "analytics" in text
    assert "no consent for marketing" in text  # the routes say why Hellotext is skipped
    listing = html.unescape(
        admin_client.get(reverse("admin:django_eventtrack_event_changelist")).content.decode()
    )
    assert "analytics" in listing


def test_erasure_request_and_its_tasks(admin_client: Client, configured: None) -> None:
    request = django_eventtrack.forget(user_id="U-e", source="support ticket 42")

    page = admin_client.get(
        reverse("admin:django_eventtrack_erasurerequest_change", args=[request.pk])
    )
    text = html.unescape(page.content.decode())
    assert "support ticket 42" in text
    assert "documents no deletion API" in text
    assert "user_id U-e" in text
    listing = admin_client.get(reverse("admin:django_eventtrack_erasuretask_changelist"))
    assert listing.status_code == 200


def test_staff_mark_tasks_done(admin_client: Client, configured: None) -> None:
    request = django_eventtrack.forget(user_id="U-d")
    tasks = list(request.tasks.values_list("pk", flat=True))

    response = admin_client.post(
        reverse("admin:django_eventtrack_erasuretask_changelist"),
        {"action": "mark_done", "_selected_action": tasks},
        follow=True,
    )

    assert f"{len(tasks)} erasure tasks marked done" in response.content.decode()
    for task in ErasureTask.objects.all():
        assert (task.status, task.instructions, task.done_by) == ("done", "", "admin")
        assert task.done_at is not None


def test_marking_done_needs_the_change_permission(client: Client, configured: None) -> None:
    request = django_eventtrack.forget(user_id="U-v")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_erasuretask"))
    client.force_login(viewer)

    client.post(
        reverse("admin:django_eventtrack_erasuretask_changelist"),
        {"action": "mark_done", "_selected_action": [request.tasks.get(vendor="hackle").pk]},
    )

    assert set(ErasureTask.objects.values_list("status", flat=True)) == {"todo"}


def test_an_overdue_task_says_so(admin_client: Client, configured: None) -> None:
    request = django_eventtrack.forget(user_id="U-late")
    request.tasks.update(due_at=timezone.now() - timedelta(days=1))

    listing = admin_client.get(reverse("admin:django_eventtrack_erasuretask_changelist"))
    assert "(overdue)" in listing.content.decode()


def test_a_retry_leaves_privacy_skips_alone(configured: None) -> None:
    event = stored(hackle="failed")
    for vendor, reason in (
        ("hellotext", "no consent for marketing"),
        ("primedata", "consent withdrawn for marketing"),
        ("browsee", "erased"),
    ):
        Delivery.objects.create(event=event, vendor=vendor, status="skipped", last_error=reason)

    retried = manual.retry_deliveries(Delivery.objects.all())

    assert (retried.due, retried.private) == (1, 3)
    assert set(Delivery.objects.filter(status="pending").values_list("vendor", flat=True)) == {
        "hackle"
    }
    assert Event.objects.count() == 1
