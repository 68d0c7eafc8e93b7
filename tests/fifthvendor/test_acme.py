"""Acme, the test-only fifth vendor, through the whole library: every part learns of it
from the registry alone (``EVENTTRACK["ADAPTERS"]`` in the test settings).

track() -> outbox -> sender -> sandbox with its browser id as a keyword, from its cookie
through the middleware and from the snippet's ids cookie; ``send_event``'s option; its own
setting resolved and checked like any other; the admin's search; the sandbox's validator.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.template import Context, Engine
from django.test import Client
from pytest_django import Settings

from django_eventtrack import conf, track
from django_eventtrack.conf import get_config
from django_eventtrack.delivery import sender
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.web.identity import restore, snapshot
from tests.fifthvendor.adapter import VISITOR_ID, AcmeAdapter
from tests.test_admin import EVENTS, _admin_settings  # noqa: F401  (templates for the admin)

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]


def acme_events(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.events("acme")


def test_the_registry_lists_acme_after_the_built_in_vendors() -> None:
    config = get_config()
    assert list(config.adapters)[-1] == "acme"
    assert config.adapters["acme"] is AcmeAdapter
    assert VISITOR_ID in config.vendor_id_names


@pytest.mark.django_db(transaction=True)
def test_track_reaches_acme_through_the_outbox_and_the_sender(
    settings: Settings, vendors: Sandbox
) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    event = track("order.placed", {"n": 1}, user_id=7, acme_visitor_id="av-1")
    assert event is not None
    stored = Event.objects.get(pk=event.id)
    assert stored.identity == {"user_id": "7", VISITOR_ID: "av-1"}
    assert "acme" in (stored.routes or {})  # its delivery is written by the first sender to look
    assert acme_events(vendors) == []

    stats = sender.drain(["acme"])

    assert stats.delivered == 1
    assert Delivery.objects.get(event_id=event.id, vendor="acme").status == "delivered"
    (sent,) = acme_events(vendors)
    assert sent["type"] == "order.placed"
    assert (sent["visitor"], sent["user"], sent["properties"]) == ("av-1", "7", {"n": 1})
    (request,) = vendors.requests("acme")
    assert request.body["channel"] == "web"  # its own setting, at its default


def test_an_unknown_id_keyword_is_refused_like_a_python_keyword() -> None:
    with pytest.raises(TypeError, match=r"'acme_visitor'.* acme_visitor_id"):
        track("order.placed", acme_visitor="av-1")


def test_its_id_survives_a_snapshot_and_a_restore() -> None:
    kept = snapshot(restore({"user_id": "7", VISITOR_ID: "av-1"}))
    assert kept == {"user_id": "7", VISITOR_ID: "av-1"}


@pytest.mark.django_db(transaction=True)
def test_the_middleware_reads_its_cookie_and_the_snippets_ids_cookie(
    settings: Settings, vendors: Sandbox
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE
    client = Client()
    client.cookies["acme_vid"] = "from-the-cookie"
    response = client.get("/identity/tracked/")
    assert response.json()["identity"][VISITOR_ID] == "from-the-cookie"
    assert acme_events(vendors)[0]["visitor"] == "from-the-cookie"

    other = Client()
    other.cookies["eventtrack_ids"] = quote(json.dumps({VISITOR_ID: "from-the-snippet"}))
    assert other.get("/identity/whoami/").json()["current"][VISITOR_ID] == "from-the-snippet"


def test_the_snippet_reads_its_id_with_its_getter(settings: Settings) -> None:
    settings.STATIC_URL = "/static/"
    html = Engine(libraries={"eventtrack": "django_eventtrack.templatetags.eventtrack"})
    rendered = html.from_string("{% load eventtrack %}{% eventtrack_script %}").render(Context())
    assert f'key: "{VISITOR_ID}", read: function () {{ return window.acme.visitorId(); }}' in (
        rendered
    )


@pytest.mark.django_db
def test_send_event_takes_its_id_as_an_option(vendors: Sandbox) -> None:
    out = io.StringIO()
    call_command(
        "send_event",
        "order.placed",
        "--acme-visitor-id",
        "av-9",
        "--vendor",
        "acme",
        "--sync",
        stdout=out,
        no_color=True,
    )
    assert out.getvalue().splitlines() == ["acme: delivered (HTTP 200)"]
    assert acme_events(vendors)[0]["visitor"] == "av-9"


def test_its_settings_come_from_the_environment_and_are_checked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVENTTRACK = {}
    monkeypatch.setenv("EVENTTRACK_ACME_API_KEY", "k")
    monkeypatch.setenv("EVENTTRACK_ACME_CHANNEL", "mobile")
    conf.reload()
    acme = get_config().vendors["acme"]
    assert (acme.active, acme.options["CHANNEL"]) == (True, "mobile")
    monkeypatch.setenv("EVENTTRACK_ACME_CHANNEL", "not a channel")
    conf.reload()
    with pytest.raises(ConfigurationError, match=r'EVENTTRACK\["VENDORS"\]\["acme"\]\["CHANNEL"\]'):
        get_config()


@pytest.mark.django_db
def test_the_admin_finds_an_event_by_its_id(admin_client: Client, vendors: Sandbox) -> None:
    track("order.placed", acme_visitor_id="needle-7")
    track("order.placed", acme_visitor_id="other")
    response = admin_client.get(EVENTS, {"q": "needle-7"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_the_sandbox_validates_acme_with_the_validator_its_adapter_names(
    sandbox: Sandbox,
) -> None:
    import requests

    url = sandbox.api_url("acme") + "/v1/events"
    body = {"channel": "web", "events": [{"type": "x", "at": "2026-01-01T00:00:00Z"}]}
    refused = requests.post(url, json=body, headers={"X-Acme-Key": "sandbox-acme-key"}, timeout=5)
    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "events[0] needs a visitor or a user"},
    )
    wrong_key = requests.post(url, json=body, headers={"X-Acme-Key": "nope"}, timeout=5)
    assert wrong_key.status_code == 401
