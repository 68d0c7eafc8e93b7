"""The consent signals read from a request (``web.consent``) and what they do to track()."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client, RequestFactory
from pytest_django import Settings

from django_eventtrack.conf import get_config
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.outbox import routing
from django_eventtrack.web import consent
from django_eventtrack.web.identity import capture
from tests.test_tcf import IAB_EXAMPLE, IAB_VENDORS

factory = RequestFactory()


def visitor_consent(settings: Settings, identity: dict[str, Any], **request: Any) -> Any:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTITY": identity}
    visitor = capture(factory.get("/", **request))
    return "opted out" if visitor.opted_out else visitor.consent


def test_nothing_configured_grants_every_purpose(settings: Settings) -> None:
    assert visitor_consent(settings, {}) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (True, None),
        (False, "opted out"),
        (["analytics"], frozenset({"analytics"})),
        ([], "opted out"),
        ("not a list", "opted out"),  # logged: counts as no consent
    ],
)
def test_the_consent_function_may_return_purposes(
    settings: Settings, answer: Any, expected: Any
) -> None:
    def check(request: HttpRequest) -> Any:
        return answer

    assert visitor_consent(settings, {"CONSENT": check}) == expected


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (None, "opted out"),  # the banner not answered yet: nothing granted
        ("analytics", frozenset({"analytics"})),
        ("analytics,marketing", frozenset({"analytics", "marketing"})),
        ("analytics%2Cmarketing", frozenset({"analytics", "marketing"})),
        (" marketing , Bad<Name ", frozenset({"marketing"})),
        ("", "opted out"),
    ],
)
def test_the_banner_cookie(settings: Settings, cookie: str | None, expected: Any) -> None:
    cookies = {} if cookie is None else {"HTTP_COOKIE": f"shop_consent={cookie}"}
    assert visitor_consent(settings, {"CONSENT_COOKIE": "shop_consent"}, **cookies) == expected


TCF_MAPPING = {"analytics": [2, 10], "marketing": [3, 4]}


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (IAB_EXAMPLE, frozenset({"analytics"})),  # consents to purposes 2 and 10
        (IAB_VENDORS, frozenset({"marketing"})),  # to 3 to 9
        ("COtybn4PA_zT4K", "opted out"),  # cut short: not read
        (None, "opted out"),
    ],
)
def test_the_tcf_string_maps_to_our_purposes(
    settings: Settings, cookie: str | None, expected: Any
) -> None:
    cookies = {} if cookie is None else {"HTTP_COOKIE": f"euconsent-v2={cookie}"}
    assert visitor_consent(settings, {"TCF_PURPOSES": TCF_MAPPING}, **cookies) == expected


def test_the_tcf_cookie_name_is_a_setting(settings: Settings) -> None:
    identity = {"TCF_PURPOSES": TCF_MAPPING, "TCF_COOKIE": "tcf"}
    assert visitor_consent(settings, identity, HTTP_COOKIE=f"tcf={IAB_EXAMPLE}") == {"analytics"}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ([1, 2], "must be a dict like"),
        ({"analytics": []}, "not a list of TCF purpose numbers from 1 to 24"),
        ({"analytics": [25]}, "not a list of TCF purpose numbers from 1 to 24"),
        ({"Analytics": [1]}, "is not a purpose name"),
    ],
)
def test_a_bad_tcf_mapping_is_named(settings: Settings, mapping: Any, message: str) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTITY": {"TCF_PURPOSES": mapping}}
    with pytest.raises(ConfigurationError, match=message):
        get_config()


def test_gpc_denies_every_purpose_by_default(settings: Settings) -> None:
    identity = {"RESPECT_GPC": True}
    assert visitor_consent(settings, identity, HTTP_SEC_GPC="1") == "opted out"
    assert visitor_consent(settings, identity) is None


def test_gpc_denies_the_purposes_set(settings: Settings) -> None:
    identity = {"RESPECT_GPC": True, "GPC_PURPOSES": ["marketing"]}
    everything = get_config().purposes
    assert visitor_consent(settings, identity, HTTP_SEC_GPC="1") == everything - {"marketing"}


def test_signals_grant_what_they_all_grant(settings: Settings) -> None:
    identity = {
        "CONSENT_COOKIE": "shop_consent",
        "TCF_PURPOSES": TCF_MAPPING,
        "RESPECT_GPC": True,
        "GPC_PURPOSES": ["marketing"],
    }
    cookies = f"shop_consent=analytics,marketing; euconsent-v2={IAB_EXAMPLE}"
    assert visitor_consent(settings, identity, HTTP_COOKIE=cookies) == {"analytics"}
    assert visitor_consent(settings, identity, HTTP_COOKIE=cookies, HTTP_SEC_GPC="1") == {
        "analytics"
    }


@pytest.mark.django_db
def test_a_middleware_visitor_with_analytics_only(vendors: Any, settings: Settings) -> None:
    """The cookie's consent reaches track() through the middleware, and the routes say why."""
    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTITY": {"CONSENT_COOKIE": "c"}}
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_eventtrack.middleware.EventTrackMiddleware",
    ]
    from django_eventtrack.models import Event

    client = Client()
    client.cookies["c"] = "analytics"
    client.get("/identity/tracked/", {"hello_session": "S1"})
    event = Event.objects.get()
    assert event.identity["consent"] == ["analytics"]
    assert (event.routes or {})["hellotext"] == routing.no_consent(["marketing"])


def test_gpc_json(client: Client, settings: Settings) -> None:
    assert client.get("/.well-known/gpc.json").json() == {"gpc": False}
    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTITY": {"RESPECT_GPC": True}}
    assert client.get("/.well-known/gpc.json").json() == {"gpc": True}


def test_sends_gpc() -> None:
    assert consent.sends_gpc(factory.get("/", HTTP_SEC_GPC="1"))
    assert consent.sends_gpc(factory.get("/", HTTP_DNT="1"))
    assert not consent.sends_gpc(factory.get("/", HTTP_SEC_GPC="0"))
