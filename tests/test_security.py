"""Security: secrets never leak (logs at every level, errors, ``--dry-run``, the admin,
stored errors) after a full fault run; vendor URLs come only from settings and need
https off loopback; and the identity cookie cannot impersonate a user. (Personal data
leaving the outbox once every delivery is final is ``tests/outbox/test_retention.py``.)
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.conf import get_config, is_loopback_url
from django_eventtrack.core.redaction import MASK
from django_eventtrack.delivery import flow, http, worker
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox.routing import render_requests
from django_eventtrack.sandbox import Sandbox
from tests.delivery.test_worker import drain_until_settled
from tests.processes.helpers import VENDORS
from tests.test_admin import _admin_settings  # noqa: F401  (templates for the admin pages)

Status = Delivery.Status
#: Distinctive credentials: any occurrence of one of these anywhere is a leak.
SECRETS = {
    **{
        name: {key: f"{name.upper()}-{key}-SECRET-7f3b" for key in adapter.credential_settings}
        for name, adapter in get_config().adapters.items()
    },
    "hellotext": {"API_TOKEN": "HT-SECRET-3c9f1a7e"},
    "hackle": {"API_KEY": "HK-SECRET-8b2d4e6f"},
    "browsee": {"API_KEY": "BR-SECRET-5a7c9e1b"},
    "primedata": {"CLIENT_ID": "pd-client-4d6f", "ACCESS_TOKEN": "PD-SECRET-2e4a6c8d"},
}
SECRET_VALUES = [SECRETS[v][k] for v in SECRETS for k in SECRETS[v] if "SECRET" in SECRETS[v][k]]


@pytest.fixture
def secret_sandbox(settings: Settings) -> Iterator[Sandbox]:
    """A sandbox of our own with the distinctive credentials, configured as the vendors."""
    with Sandbox(credentials=SECRETS) as server:
        settings.EVENTTRACK = {
            "VENDORS": {
                name: values | {"TIMEOUT": 0.3, "MAX_ATTEMPTS": 3}
                for name, values in server.vendor_settings().items()
            },
            "DELIVERY": "worker",
            "RETRY_BACKOFF_BASE": 0.01,
            "RETRY_BACKOFF_MAX": 0.02,
            "CIRCUIT_BREAKER_THRESHOLD": 100,
        }
        yield server
    http.close_sessions()


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRET_VALUES:
        assert secret not in text, f"{secret} leaked into {where}"


@pytest.mark.django_db(transaction=True)
def test_no_secret_anywhere_after_a_full_fault_run(
    secret_sandbox: Sandbox,
    admin_client: Client,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 and requests included
    flow.breaker.reset()
    for vendor, credentials in SECRETS.items():
        echo = " ".join(credentials.values())  # a hostile vendor echoing our credentials
        body = {"message": echo, "errors": [{"message": echo}], "error": {"message": echo}}
        secret_sandbox.inject(vendor, status=503, body=body, retry_after="0")
        secret_sandbox.inject(vendor, drop=True)
        secret_sandbox.inject(vendor, truncate=True, status=500, body=body)
        secret_sandbox.inject(vendor, delay=0.5, drop=True)  # a read timeout
        secret_sandbox.inject(vendor, status=401, body=body, count=10)  # refused for good
    for n in range(3):
        track("order.placed", {"n": n, "order": f"O{n}"}, session=f"S{n}")
    drain_until_settled(worker.Worker(), timeout=15)
    statuses = set(Delivery.objects.values_list("status", flat=True))
    assert statuses == {Status.FAILED}  # every vendor ended on its 401s
    errors = "\n".join(Delivery.objects.values_list("last_error", flat=True))
    assert MASK in errors  # the echoed credentials were there, and masked

    out = io.StringIO()
    order = ["order.placed", "--profile", "P9", "--property", "order=O9"]
    call_command("send_event", *order, "--dry-run", stdout=out)
    assert "Bearer " + MASK in out.getvalue()
    sync = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("send_event", *order, "--sync", stdout=sync)

    attempt = http.send(
        get_config().adapter("hackle"),
        get_config()
        .adapter("hackle")
        .build_request(
            [Event.objects.first().to_normalised()]  # type: ignore[union-attr]
        ),
    )
    with pytest.raises(Exception) as raised:  # noqa: PT011 (any error: its text is checked)
        attempt.raise_for_outcome("hackle")

    pages = [reverse("admin:django_eventtrack_event_changelist")]
    pages.append(reverse("admin:django_eventtrack_delivery_changelist"))
    for event in Event.objects.all():
        pages.append(reverse("admin:django_eventtrack_event_change", args=[event.pk]))
    for delivery in Delivery.objects.all():
        pages.append(reverse("admin:django_eventtrack_delivery_change", args=[delivery.pk]))
    html = []
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        html.append(response.content.decode())

    captured = capsys.readouterr()
    for text, where in [
        (caplog.text, "the logs"),
        (errors, "Delivery.last_error"),
        (out.getvalue(), "--dry-run output"),
        (sync.getvalue() + str(refused.value), "--sync output"),
        (str(raised.value) + repr(raised.value.args), "an exception"),
        ("\n".join(html), "the admin pages"),
        (captured.out + captured.err, "stdout/stderr"),
        (repr(get_config()), "the configuration's repr"),
    ]:
        assert_no_secret(text, where)
    print(f"SECRETS: {len(secret_sandbox.requests())} requests, {len(pages)} admin pages checked")


# -- vendor URLs: settings only, https off loopback ------------------------------------------


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost.evil.example", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://0x7f000001", False),
        ("http://[::1]:8900", True),
        ("http://127.0.0.2:8900", True),
    ],
)
def test_loopback_means_this_machine_only(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_plain_http_to_a_look_alike_host_fails_the_check(settings: Settings) -> None:
    settings.DEBUG = False
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": {"API_KEY": "k", "API_URL": "http://127.0.0.1.nip.io"}}
    }
    ids = [message.id for message in run_checks(tags=["eventtrack"])]
    assert "eventtrack.E003" in ids
    settings.DEBUG = True
    assert "eventtrack.E003" not in [m.id for m in run_checks(tags=["eventtrack"])]


@pytest.mark.django_db
def test_no_event_data_can_redirect_a_request(settings: Settings) -> None:
    """The URL comes from settings; properties and vendor_extra only shape the body."""
    settings.EVENTTRACK = {
        "VENDORS": {
            name: {**{key: "x-credential" for key in adapter.credential_settings}}
            for name, adapter in get_config().adapters.items()
        },
        "DELIVERY": "worker",
    }
    hostile = "https://evil.example/collect"
    event = track(
        "page.viewed",
        {"url": hostile, "API_URL": hostile},
        profile="P1",
        session="S1",
        vendor_extra={vendor: {"url": hostile, "API_URL": hostile} for vendor in VENDORS},
    )
    assert event is not None
    for target, request in render_requests(event):
        assert request is not None
        assert request.url == target.adapter.url
        assert request.url.startswith(get_config().adapters[target.vendor].default_api_url)


# -- the identity cookie cannot impersonate a user -------------------------------------------


@pytest.mark.django_db
def test_another_visitors_cookies_never_change_the_logged_in_user(
    settings: Settings, django_user_model: Any
) -> None:
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_eventtrack.middleware.EventTrackMiddleware",
    ]
    ada = django_user_model.objects.create_user(username="ada", password="x")
    bob = django_user_model.objects.create_user(username="bob", password="x")
    bobs_browser = Client()
    bobs_browser.force_login(bob)
    bobs_cookie = bobs_browser.get("/identity/whoami/").cookies["eventtrack_aid"].value

    client = Client()
    client.force_login(ada)
    client.cookies["eventtrack_aid"] = bobs_cookie  # stolen or copied
    client.cookies["eventtrack_ids"] = f'{{"user_id": "{bob.pk}"}}'
    current = client.get(f"/identity/whoami/?user_id={bob.pk}").json()["current"]
    assert current["user_id"] == str(ada.pk)
    client.logout()
    anonymous = client.get(f"/identity/whoami/?user_id={bob.pk}").json()["current"]
    assert "user_id" not in anonymous
