"""EventTrackMiddleware through the real test client: capture, cookies, session, opt-out."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import django
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponseBase
from django.template import Context, Engine
from django.test import AsyncClient, Client
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.conf import get_config
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import fanout
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.templatetags.eventtrack import sources_script
from django_eventtrack.web import identity
from tests.processes.helpers import VENDORS
from tests.views import hashed_email

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]
HOSTILE = [
    "x" * 129,
    "S1\r\nSet-Cookie: evil=1",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
]
IDS = {
    "hackle_device_id": "5a1f0c4e-9b7d-4c1e-8f3a-2d6b7e8f9a01",
    "browsee_anonymous_id": "br.8f3a2d6b",
    "primedata_session_id": "pd-1700000000000",
}


@pytest.fixture(autouse=True)
def _middleware(settings: Settings) -> None:
    settings.MIDDLEWARE = MIDDLEWARE


@pytest.fixture
def user(django_user_model: type[AbstractBaseUser]) -> AbstractBaseUser:
    return django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="ada", email="ada@example.com", password="not-used"
    )


def ids_cookie(ids: Any) -> str:
    return quote(json.dumps(ids))


def whoami(client: Client, query: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    url = "/identity/whoami/" + (f"?{urlencode(query)}" if query else "")
    response = client.get(url, **extra)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    assert data["current"] == data["request"]
    return data["current"]


def headers_of(response: HttpResponseBase) -> str:
    return "\n".join([*(f"{k}: {v}" for k, v in response.items()), response.cookies.output()])


# -- Hellotext session ----------------------------------------------------------------------


@pytest.mark.django_db
def test_hello_session_from_the_cookie(client: Client) -> None:
    client.cookies["hello_session"] = "3f2b1c9e-7d4a-4b8e-9c1f-0a2b3c4d5e6f"
    assert whoami(client)["session"] == "3f2b1c9e-7d4a-4b8e-9c1f-0a2b3c4d5e6f"


@pytest.mark.django_db
def test_hello_session_from_the_query_string(client: Client) -> None:
    assert whoami(client, {"hello_session": "WBAkaqNz"})["session"] == "WBAkaqNz"


@pytest.mark.django_db
def test_the_query_string_wins_over_the_cookie(client: Client) -> None:
    client.cookies["hello_session"] = "from-cookie"
    assert whoami(client, {"hello_session": "from-link"})["session"] == "from-link"


@pytest.mark.django_db
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_are_ignored_and_never_echoed(
    client: Client, hostile: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_eventtrack")
    client.cookies["XSessionId"] = hostile
    client.cookies["eventtrack_ids"] = ids_cookie({**IDS, "hackle_device_id": hostile})
    response = client.get("/identity/whoami/?" + urlencode({"hello_session": hostile}))
    captured = response.json()["current"]
    assert set(captured) == {"anonymous_id"}  # nothing but the id we minted
    assert hostile not in headers_of(response)
    assert hostile not in response.content.decode()
    assert hostile not in caplog.text
    assert "ignored the hello_session query parameter" in caplog.text


@pytest.mark.django_db
def test_a_bad_query_value_falls_back_to_the_cookie(client: Client) -> None:
    client.cookies["hello_session"] = "from-cookie"
    assert whoami(client, {"hello_session": "<script>"})["session"] == "from-cookie"


@pytest.mark.django_db(transaction=True)
def test_only_validated_ids_reach_the_vendors(client: Client, vendors: Sandbox) -> None:
    client.cookies["eventtrack_ids"] = ids_cookie(IDS)
    response = client.get("/identity/tracked/?" + urlencode({"hello_session": "S1"}))
    assert response.status_code == 200
    assert vendors.events("hellotext")[0]["session"] == "S1"
    assert vendors.events("hackle")[0]["user"]["deviceId"] == IDS["hackle_device_id"]
    assert vendors.events("browsee")[0]["anonymousId"] == IDS["browsee_anonymous_id"]
    assert vendors.events("primedata")[0]["sessionId"] == IDS["primedata_session_id"]

    vendors.reset()
    hostile = "' OR 1=1 --"
    hostile_client = Client()
    hostile_client.cookies["eventtrack_ids"] = ids_cookie({**IDS, "browsee_anonymous_id": hostile})
    hostile_client.get("/identity/tracked/?" + urlencode({"hello_session": hostile}))
    sent = [record.raw + json.dumps(record.headers) for record in vendors.requests()]
    assert len(sent) == len(VENDORS) - 1  # Hellotext is skipped: no valid session
    assert not any(hostile in text or IDS["hackle_device_id"] in text for text in sent)


# -- the anonymous id cookie ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_anonymous_cookie_is_issued_once(client: Client) -> None:
    first = client.get("/identity/whoami/")
    cookie = first.cookies["eventtrack_aid"]
    assert cookie.value == first.json()["current"]["anonymous_id"]
    assert len(cookie.value) == 32
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == 34560000
    assert not cookie["secure"]
    assert not cookie["domain"]

    second = client.get("/identity/whoami/")
    assert "eventtrack_aid" not in second.cookies
    assert second.json()["current"]["anonymous_id"] == cookie.value


@pytest.mark.django_db
def test_the_anonymous_cookie_is_secure_over_https_and_follows_settings(
    client: Client, settings: Settings
) -> None:
    settings.EVENTTRACK = {
        "IDENTITY": {
            "ANONYMOUS_COOKIE": "aid",
            "COOKIE_MAX_AGE": 3600,
            "COOKIE_DOMAIN": ".example.com",
        }
    }
    cookie = client.get("/identity/whoami/", secure=True).cookies["aid"]
    assert cookie["secure"] is True
    assert cookie["max-age"] == 3600
    assert cookie["domain"] == ".example.com"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["not-hex", "A" * 32, "0" * 31, HOSTILE[1]])
def test_an_invalid_anonymous_cookie_is_replaced(client: Client, value: str) -> None:
    client.cookies["eventtrack_aid"] = value
    response = client.get("/identity/whoami/")
    issued = response.cookies["eventtrack_aid"].value
    assert issued != value
    assert response.json()["current"]["anonymous_id"] == issued


@pytest.mark.django_db
def test_a_view_setting_the_cookie_itself_is_not_overridden(client: Client) -> None:
    response = client.get("/identity/own-cookie/")
    assert response.cookies["eventtrack_aid"].value == "0" * 32


# -- the Django session ---------------------------------------------------------------------


@pytest.mark.django_db
def test_ids_are_remembered_in_the_session(client: Client) -> None:
    client.cookies["eventtrack_ids"] = ids_cookie(IDS)
    landing = client.get("/identity/whoami/?hello_session=S1")
    assert "sessionid" in landing.cookies
    del client.cookies["eventtrack_ids"]

    later = client.get("/identity/whoami/")
    captured = later.json()["current"]
    assert captured["session"] == "S1"
    assert captured["device_id"] == IDS["hackle_device_id"]
    assert captured["browsee_anonymous_id"] == IDS["browsee_anonymous_id"]
    assert captured["primedata_session_id"] == IDS["primedata_session_id"]
    assert "sessionid" not in later.cookies  # nothing changed: no session save
    stored = client.session[identity.SESSION_KEY]
    assert "user_id" not in stored
    assert stored["anonymous_id"] == captured["anonymous_id"]

    newer = client.get("/identity/whoami/?hello_session=S2")
    assert newer.json()["current"]["session"] == "S2"
    assert client.session[identity.SESSION_KEY]["session"] == "S2"


@pytest.mark.django_db
def test_no_session_is_created_just_for_the_anonymous_id(client: Client) -> None:
    response = client.get("/identity/whoami/")
    assert "sessionid" not in response.cookies


@pytest.mark.django_db
def test_the_anonymous_id_comes_back_from_the_session_when_its_cookie_is_lost(
    client: Client,
) -> None:
    first = client.get("/identity/whoami/?hello_session=S1")
    anonymous_id = first.cookies["eventtrack_aid"].value
    del client.cookies["eventtrack_aid"]
    second = client.get("/identity/whoami/")
    assert second.json()["current"]["anonymous_id"] == anonymous_id
    assert second.cookies["eventtrack_aid"].value == anonymous_id  # issued again


@pytest.mark.django_db
def test_hostile_values_in_the_session_are_ignored(client: Client) -> None:
    session = client.session
    session[identity.SESSION_KEY] = {"session": HOSTILE[1], "device_id": "D1", "user_id": "1"}
    session.save()
    captured = whoami(client)
    assert captured.get("session") is None
    assert captured["device_id"] == "D1"
    assert "user_id" not in captured


# -- the user id ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, "pk"),
        ("pk", "pk"),
        ("username", "ada"),
        ("tests.views.hashed_email", "hash"),
    ],
)
def test_the_user_id_comes_from_request_user(
    client: Client, settings: Settings, user: Any, setting: str | None, expected: str
) -> None:
    settings.EVENTTRACK = {"IDENTITY": {"USER_ID": setting}}
    client.force_login(user)
    values = {"pk": str(user.pk), "ada": "ada", "hash": hashed_email(user)}
    assert whoami(client)["user_id"] == values[expected]


@pytest.mark.django_db
def test_a_forged_cookie_cannot_set_the_user_id(client: Client, user: Any) -> None:
    client.cookies["eventtrack_ids"] = ids_cookie({**IDS, "user_id": str(user.pk)})
    client.cookies["user_id"] = str(user.pk)
    captured = whoami(client, {"user_id": str(user.pk)})
    assert "user_id" not in captured
    assert captured["device_id"] == IDS["hackle_device_id"]


@pytest.mark.django_db
def test_an_unusable_user_id_is_dropped_with_a_warning(
    client: Client, settings: Settings, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user.first_name = "Ada Lovelace"
    user.save()
    settings.EVENTTRACK = {"IDENTITY": {"USER_ID": "first_name"}}
    client.force_login(user)
    assert "user_id" not in whoami(client)
    assert "not a usable id" in caplog.text


# -- the ids cookie and PrimeData's XSessionId ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        quote("[1, 2]"),
        quote('"a string"'),
        ids_cookie({**IDS, "primedata_session_id": 7}),
        ids_cookie({**IDS, "browsee_anonymous_id": "<b>"}),
        ids_cookie({**IDS, "hackle_device_id": "d" * 129}),
        quote("[" * 1000 + "]" * 1000),
        "%ZZ%7B",
    ],
)
def test_a_bad_ids_cookie_is_ignored_entirely(client: Client, value: str) -> None:
    client.cookies["eventtrack_ids"] = value
    captured = whoami(client)
    assert set(captured) == {"anonymous_id"}


@pytest.mark.django_db
def test_the_ids_cookie_tolerates_unknown_keys_and_empty_values(client: Client) -> None:
    client.cookies["eventtrack_ids"] = ids_cookie(
        {"hackle_device_id": "D1", "browsee_anonymous_id": None, "later": "x"}
    )
    captured = whoami(client)
    assert captured["device_id"] == "D1"
    assert "browsee_anonymous_id" not in captured


@pytest.mark.django_db
def test_primedata_xsessionid_cookie(client: Client) -> None:
    client.cookies["XSessionId"] = "a1b2c3d4-0000-4000-8000-000000000001"
    assert whoami(client)["primedata_session_id"] == "a1b2c3d4-0000-4000-8000-000000000001"
    client.cookies["eventtrack_ids"] = ids_cookie(IDS)
    assert whoami(client)["primedata_session_id"] == "a1b2c3d4-0000-4000-8000-000000000001"


@pytest.mark.django_db
def test_the_ids_cookie_name_is_configurable(client: Client, settings: Settings) -> None:
    settings.EVENTTRACK = {"IDENTITY": {"IDS_COOKIE": "vendor_ids"}}
    client.cookies["vendor_ids"] = ids_cookie(IDS)
    assert whoami(client)["device_id"] == IDS["hackle_device_id"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run eventtrack.js")
@pytest.mark.django_db
def test_the_snippet_writes_the_cookie_the_middleware_reads(client: Client) -> None:
    cookie = _run_snippet(
        """
        const hackleClient = { getDeviceId: () => "5a1f0c4e-9b7d-4c1e-8f3a-2d6b7e8f9a01" };
        window._browsee = { user: { getId: () => "br.8f3a2d6b" } };
        window.cxs = { sessionId: "<script>" };
        """
    )
    assert "; path=/;" in cookie
    assert "SameSite=Lax" in cookie
    name, _, rest = cookie.partition("=")
    client.cookies[name] = rest.split(";")[0]
    captured = whoami(client)
    assert captured["device_id"] == "5a1f0c4e-9b7d-4c1e-8f3a-2d6b7e8f9a01"
    assert captured["browsee_anonymous_id"] == "br.8f3a2d6b"
    assert "primedata_session_id" not in captured  # the unsafe value was never written


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run eventtrack.js")
def test_the_snippet_on_its_own_keeps_the_cookie_as_long_as_browsers_allow() -> None:
    cookie = _run_snippet(
        'const hackleClient = { getDeviceId: () => "d1" };', dataset='{ cookie: "ids" }'
    )
    assert f"; max-age={conf.MAX_COOKIE_AGE};" in cookie
    assert conf.MAX_COOKIE_AGE == 400 * 24 * 3600


def _run_snippet(
    vendors_js: str, dataset: str = '{ cookie: "eventtrack_ids", maxAge: "60" }'
) -> str:
    source = (
        Path(identity.__file__).parent.parent / "static" / "django_eventtrack" / "eventtrack.js"
    )
    harness = f"""
    const window = globalThis;
    const cookies = [];
    globalThis.location = {{ protocol: "http:" }};
    globalThis.document = {{
        currentScript: {{ dataset: {dataset} }},
        get cookie() {{ return ""; }},
        set cookie(value) {{ cookies.push(value); }},
        addEventListener() {{}},
    }};
    globalThis.addEventListener = () => {{}};
    {vendors_js}
    {sources_script(get_config().browser_ids)}
    {source.read_text()}
    console.log(cookies[cookies.length - 1]);
    """
    result = subprocess.run(  # noqa: S603
        ["node", "-e", harness],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


# -- opt-out --------------------------------------------------------------------------------


@pytest.fixture
def consent_required(settings: Settings, vendors: Sandbox) -> Sandbox:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "IDENTITY": {"CONSENT": "tests.views.consent_cookie", "RESPECT_GPC": True},
    }
    return vendors


def _statuses(response: Any) -> dict[str, tuple[str, str]]:
    event_id = json.loads(response.content)["event"]
    fanout.write_now([event_id])  # when no sender has written them yet
    return {
        delivery.vendor: (delivery.status, delivery.last_error)
        for delivery in Delivery.objects.filter(event_id=event_id)
    }


@pytest.mark.django_db(transaction=True)
def test_without_consent_deliveries_are_skipped_and_no_cookie_is_set(
    client: Client, consent_required: Sandbox
) -> None:
    client.cookies["hello_session"] = "S1"
    response = client.get("/identity/tracked/")
    assert "eventtrack_aid" not in response.cookies
    assert "sessionid" not in response.cookies
    assert response.json()["identity"] == {"opted_out": True}
    statuses = _statuses(response)
    assert set(statuses) == set(VENDORS)
    assert set(statuses.values()) == {("skipped", "visitor opted out of tracking")}
    assert consent_required.requests() == []


@pytest.mark.django_db
def test_withdrawing_consent_forgets_the_remembered_ids(
    client: Client, consent_required: Sandbox
) -> None:
    client.cookies["consent"] = "yes"
    client.get("/identity/whoami/?hello_session=S1")
    assert identity.SESSION_KEY in client.session
    client.cookies["consent"] = "no"
    assert whoami(client) == {"opted_out": True}
    assert identity.SESSION_KEY not in client.session


@pytest.mark.django_db(transaction=True)
def test_with_consent_events_are_delivered(client: Client, consent_required: Sandbox) -> None:
    client.cookies["consent"] = "yes"
    client.cookies["hello_session"] = "S1"
    response = client.get("/identity/tracked/")
    assert "eventtrack_aid" in response.cookies
    assert {status for status, _ in _statuses(response).values()} == {"delivered"}


@pytest.mark.django_db
@pytest.mark.parametrize("header", [{"Sec-GPC": "1"}, {"DNT": "1"}])
def test_global_privacy_control_opts_out(
    client: Client, consent_required: Sandbox, header: dict[str, str]
) -> None:
    client.cookies["consent"] = "yes"
    response = client.get("/identity/tracked/", headers=header)
    assert "eventtrack_aid" not in response.cookies
    assert {error for _, error in _statuses(response).values()} == {"visitor opted out of tracking"}


@pytest.mark.django_db
def test_gpc_is_ignored_unless_respected(client: Client) -> None:
    response = client.get("/identity/whoami/", headers={"Sec-GPC": "1"})
    assert "eventtrack_aid" in response.cookies
    assert "opted_out" not in response.json()["current"]


# -- the current identity -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_track_inside_a_view_gets_the_identity_without_the_request(
    client: Client, vendors: Sandbox, user: Any
) -> None:
    client.force_login(user)
    response = client.get("/identity/tracked/?hello_session=S1")
    tracked = response.json()["identity"]
    assert tracked == {
        "user_id": str(user.pk),
        "anonymous_id": response.cookies["eventtrack_aid"].value,
        "session": "S1",
    }
    assert vendors.events("hellotext")[0]["session"] == "S1"
    assert vendors.events("browsee")[0]["userId"] == str(user.pk)
    assert identity.current() is None


@pytest.mark.django_db
def test_the_current_identity_does_not_leak_to_the_next_request(client: Client) -> None:
    first = whoami(client, {"hello_session": "S1"})
    assert identity.current() is None
    second = whoami(Client())
    assert second["anonymous_id"] != first["anonymous_id"]
    assert "session" not in second


@pytest.mark.django_db
def test_a_streaming_body_sees_the_identity_and_then_it_is_reset(client: Client) -> None:
    response = client.get("/identity/streaming/")
    assert b"".join(response.streaming_content) == b"[true]"  # type: ignore[attr-defined]
    assert identity.current() is None


@pytest.mark.django_db
def test_the_async_path(async_client: AsyncClient) -> None:
    async def visit() -> tuple[dict[str, Any], str, bytes]:
        whoami = await async_client.get("/identity/async/whoami/?hello_session=S1")
        again = await async_client.get("/identity/async/whoami/")
        streaming = await async_client.get("/identity/async/streaming/")
        content = streaming.streaming_content  # type: ignore[attr-defined]
        body = b"".join([chunk async for chunk in content])
        assert "eventtrack_aid" not in again.cookies
        sync_view = await async_client.get("/identity/whoami/")  # adapted to the async chain
        assert sync_view.json()["current"]["session"] == "S1"
        return whoami.json()["current"], whoami.cookies["eventtrack_aid"].value, body

    captured, cookie, body = async_to_sync(visit)()
    assert captured["session"] == "S1"
    assert captured["anonymous_id"] == cookie
    assert body == b"[true]"
    assert identity.current() is None


@pytest.mark.django_db(transaction=True)
def test_track_from_an_async_view(async_client: AsyncClient, vendors: Sandbox) -> None:
    response = async_to_sync(async_client.get)("/identity/async/tracked/?hello_session=S1")
    assert response.json()["identity"]["session"] == "S1"
    assert vendors.events("hellotext")[0]["session"] == "S1"


# -- the template tag -----------------------------------------------------------------------


def render(source: str, **context: Any) -> str:
    engine = Engine(libraries={"eventtrack": "django_eventtrack.templatetags.eventtrack"})
    return engine.from_string("{% load eventtrack %}" + source).render(Context(context))


def test_the_tag_renders_the_script(settings: Settings) -> None:
    settings.STATIC_URL = "/static/"
    settings.EVENTTRACK = {"IDENTITY": {"IDS_COOKIE": "ids", "COOKIE_DOMAIN": ".example.com"}}
    html = render("{% eventtrack_script %}")
    assert html.startswith('<script src="/static/django_eventtrack/eventtrack.js"')
    assert 'data-cookie="ids"' in html
    assert 'data-domain=".example.com"' in html
    assert 'data-max-age="34560000"' in html
    assert "nonce" not in html


def test_the_tag_lists_every_registered_browser_script_and_the_file_names_no_vendor(
    settings: Settings,
) -> None:
    """The vendors' getters come from the registry, in an inline script carrying the nonce;
    the static file itself knows no vendor."""
    settings.STATIC_URL = "/static/"
    html = render('{% eventtrack_script nonce="n1" %}')
    head, _, sources = html.partition("</script>")
    assert 'nonce="n1"' in head
    assert sources.startswith('<script nonce="n1">(window.eventtrack')
    scripted = [bid for bid in get_config().browser_ids if bid.script]
    assert scripted
    for browser_id in scripted:
        assert f'key: "{browser_id.script_key}"' in sources
        assert str(browser_id.script) in sources
    source = (
        Path(identity.__file__).parent.parent / "static" / "django_eventtrack" / "eventtrack.js"
    )
    code = source.read_text().lower()
    for vendor in get_config().adapters:
        assert vendor not in code


def test_the_tag_takes_a_nonce_and_renders_inline(settings: Settings) -> None:
    settings.STATIC_URL = "/static/"
    html = render('{% eventtrack_script nonce="r4nd0m" %}')
    assert 'nonce="r4nd0m"' in html
    inline = render("{% eventtrack_script nonce=csp_nonce inline=True %}", csp_nonce='n"><x')
    assert 'nonce="n&quot;&gt;&lt;x"' in inline
    assert "hackleClient" in inline
    assert inline.endswith("</script>")
    assert "src=" not in inline


def test_the_tag_uses_the_templates_csp_nonce(settings: Settings) -> None:
    settings.STATIC_URL = "/static/"
    assert 'nonce="from-context"' in render("{% eventtrack_script %}", csp_nonce="from-context")


@pytest.mark.skipif(django.VERSION < (6, 0), reason="Django 6.0 added CSP nonces")
def test_the_tag_uses_djangos_lazy_csp_nonce(settings: Settings) -> None:
    from django.utils.csp import LazyNonce

    settings.STATIC_URL = "/static/"
    nonce = LazyNonce()  # falsy until generated; the tag generates it
    html = render("{% eventtrack_script %}", csp_nonce=nonce)
    assert nonce
    assert f'nonce="{nonce}"' in html


def test_the_tag_renders_nothing_for_an_opted_out_visitor() -> None:
    with identity.use({"opted_out": True}):
        assert render("{% eventtrack_script %}") == ""
