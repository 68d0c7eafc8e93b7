"""identify(): each vendor's identify call, Hellotext's profile flow, the login hook."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import identify, track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, Identity
from django_eventtrack.delivery.sender import drain
from django_eventtrack.errors import InvalidEvent, StorageError
from django_eventtrack.models import Delivery, Event, VendorProfile, VendorSession
from django_eventtrack.sandbox import Sandbox, registry_specs
from django_eventtrack.sandbox.spec import Incoming
from django_eventtrack.vendors.primedata import server_session
from tests.processes.helpers import VENDORS
from tests.test_admin import _admin_settings  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

IDENTIFY_PATHS = {
    "hellotext": "/v1/profiles",
    "hackle": "/v1/properties",
    "browsee": "/api/v1/identify",
    "primedata": "/powehi/context",
}


@pytest.fixture
def user(django_user_model: type[AbstractBaseUser]) -> Any:
    return django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="ada",
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        password="not-used",
    )


def calls(sandbox: Sandbox, vendor: str, path: str) -> list[Any]:
    """The bodies of the accepted requests to ``path`` (prefix) at ``vendor``."""
    return [
        r.body
        for r in sandbox.requests(vendor)
        if r.accepted and r.path.startswith(f"/{vendor}{path}")
    ]


def identify_delivery(vendor: str) -> Delivery:
    return Delivery.objects.get(event__kind=IDENTIFY, vendor=vendor)


# -- what each vendor receives -------------------------------------------------------------


def test_identify_reaches_every_vendor_with_its_own_call(vendors: Sandbox, user: Any) -> None:
    event = identify(user, identity=Identity(session="S1", anonymous_id="a" * 32))
    assert event is not None
    assert event.kind == IDENTIFY

    (profile,) = calls(vendors, "hellotext", "/v1/profiles")
    assert profile == {
        "reference": str(user.pk),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
    }
    (attach,) = [r for r in vendors.requests("hellotext") if r.method == "PATCH"]
    assert attach.path == "/hellotext/v1/sessions/S1"
    assert attach.accepted
    assert vendors.state("hellotext").sessions == {"S1": attach.body["profile"]}

    (hackle,) = calls(vendors, "hackle", "/v1/properties")
    assert hackle["userId"] == str(user.pk)
    assert hackle["operations"]["$set"]["email"] == "ada@example.com"

    (browsee,) = calls(vendors, "browsee", "/api/v1/identify")
    assert browsee["userId"] == str(user.pk)
    assert browsee["anonymousId"] == "S1"
    assert browsee["traits"]["name"] == "Ada Lovelace"

    # PrimeData binds the browser's session and the user's server session to the user.
    (primedata,) = calls(vendors, "primedata", "/powehi/context")
    assert [e["sessionId"] for e in primedata["events"]] == ["S1", server_session(str(user.pk))]
    for pd_event in primedata["events"]:
        assert pd_event["eventType"] == "identify"
        assert pd_event["target"]["itemType"] == "analyticsUser"
        assert pd_event["target"]["properties"]["id"] == str(user.pk)
        assert pd_event["target"]["properties"]["email"] == "ada@example.com"

    statuses = set(Delivery.objects.filter(event__kind=IDENTIFY).values_list("status", flat=True))
    assert statuses == {Delivery.Status.DELIVERED}


def test_the_hellotext_profile_is_created_once_and_later_events_carry_it(
    vendors: Sandbox, user: Any
) -> None:
    identify(user, identity=Identity(session="S1"))
    profile_id = VendorProfile.objects.get(vendor="hellotext", user_id=str(user.pk)).profile_id

    # The same user on another device: no second profile, the new session joins it.
    identify(user, identity=Identity(session="S2"))
    assert len(calls(vendors, "hellotext", "/v1/profiles")) == 1
    assert vendors.state("hellotext").sessions == {"S1": profile_id, "S2": profile_id}

    # Later events for the user carry the profile: with a session (added when sent)...
    track("order.shipped", {"order": "O-1"}, user_id=user.pk, session="S3")
    # ...and with no browser id at all (which Hellotext would otherwise skip).
    track("order.delivered", {"order": "O-1"}, user_id=user.pk)
    shipped, delivered = calls(vendors, "hellotext", "/v1/attribution/events")
    assert shipped["profile"] == profile_id
    assert shipped["session"] == "S3"
    assert delivered["profile"] == profile_id
    assert "session" not in delivered


def test_a_session_hellotext_has_not_seen_is_retried_then_attached(
    vendors: Sandbox, user: Any
) -> None:
    vendors.state("hellotext").forget_session("S-new")
    identify(user, identity=Identity(session="S-new"), vendors=["hellotext"])
    delivery = identify_delivery("hellotext")
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.last_status == 404
    assert "has not seen this session yet" in delivery.last_error
    assert VendorProfile.objects.filter(user_id=str(user.pk)).exists()

    vendors.state("hellotext").see_session("S-new")
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    drain(["hellotext"])
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DELIVERED
    # The retry did not create a second profile: it used the one remembered.
    assert len(calls(vendors, "hellotext", "/v1/profiles")) == 1
    assert vendors.state("hellotext").sessions["S-new"] == VendorProfile.objects.get().profile_id


def test_an_unseen_session_is_given_up_after_max_attempts(
    settings: Settings, sandbox: Sandbox, user: Any
) -> None:
    vendor_settings = sandbox.vendor_settings()
    vendor_settings["hellotext"]["MAX_ATTEMPTS"] = "2"
    settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "sync"}
    sandbox.state("hellotext").forget_session("S-never")
    identify(user, identity=Identity(session="S-never"), vendors=["hellotext"])
    delivery = identify_delivery("hellotext")
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    drain(["hellotext"])
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 2
    assert "has not seen this session yet" in delivery.last_error


def test_a_session_of_another_profile_is_never_moved_and_is_remembered_as_theirs(
    vendors: Sandbox, user: Any
) -> None:
    # Attached at Hellotext by someone else (Hellotext.js's own identify, another shop
    # integration): we learn it from Hellotext's answer.
    directory = vendors.state("hellotext")
    bobs_profile = directory.add_profile(email="bob@example.com")
    directory.attach("shared-computer", bobs_profile)

    identify(user, identity=Identity(session="shared-computer"), vendors=["hellotext"])
    delivery = Delivery.objects.get(event__identity__user_id=str(user.pk), vendor="hellotext")
    # Ada's profile exists; the session stays Bob's, and we know it is his.
    assert delivery.status == Delivery.Status.DELIVERED
    assert "belongs to another Hellotext profile and stays with it" in delivery.last_error
    assert directory.sessions["shared-computer"] == bobs_profile
    assert VendorSession.objects.get(session_id="shared-computer").profile_id == bobs_profile


def test_a_session_we_know_is_another_users_is_never_sent_as_theirs(
    vendors: Sandbox, user: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user(username="bob", email="bob@example.com")
    identify(other, identity=Identity(session="shared-computer"), vendors=["hellotext"])
    bobs_profile = vendors.state("hellotext").sessions["shared-computer"]

    identify(user, identity=Identity(session="shared-computer"), vendors=["hellotext"])
    delivery = Delivery.objects.get(event__identity__user_id=str(user.pk), vendor="hellotext")
    # Ada gets her own profile; the session is not even offered to it.
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.adjustments == ["session left out: it belongs to another user of this browser"]
    assert not [r for r in vendors.requests("hellotext") if r.path.endswith("/shared-computer")][1:]
    assert vendors.state("hellotext").sessions == {"shared-computer": bobs_profile}


# -- a visitor's identify goes before their later events ----------------------------------------


def hellotext_calls(sandbox: Sandbox) -> list[tuple[str, Any]]:
    """What Hellotext accepted, in order: the endpoint and the body."""
    return [
        (r.path.removeprefix("/hellotext"), r.body)
        for r in sandbox.requests("hellotext")
        if r.accepted
    ]


def test_events_after_identify_reach_hellotext_after_it_with_the_profile(
    settings: Settings, sandbox: Sandbox, user: Any
) -> None:
    """Tracked together, the identify goes first, in the same drain: the events after it
    name the profile it created (they used to leave first, with the session alone)."""
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "worker"}
    with transaction.atomic():
        identify(user, identity=Identity(session="S1"))
        cart = {"cart": {"items": [{"product": "TEE-1", "quantity": 1}]}}
        track("cart.added", cart, user_id=user.pk, session="S1")
        track("order.placed", {"order": "O-1"}, user_id=user.pk, session="S1")
    drain()
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    profile = VendorProfile.objects.get(vendor="hellotext").profile_id
    sent = [
        (path, body.get("action"), body.get("profile")) for path, body in hellotext_calls(sandbox)
    ]
    assert sent[:2] == [("/v1/profiles", None, None), ("/v1/sessions/S1", None, profile)]
    assert sorted(sent[2:]) == [  # sent side by side, in either order
        ("/v1/attribution/events", "cart.added", profile),
        ("/v1/attribution/events", "order.placed", profile),
    ]
    # Every vendor got the identify first.
    for vendor, path in IDENTIFY_PATHS.items():
        first = sandbox.requests(vendor)[0]
        assert first.path.startswith(f"/{vendor}{path}"), vendor


def test_a_users_events_wait_for_their_delayed_identify(
    settings: Settings, sandbox: Sandbox, user: Any
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": sandbox.vendor_settings(),
        "DELIVERY": "worker",
        "RETRY_BACKOFF_BASE": 0.01,
    }
    sandbox.inject("hellotext", status=503, count=2)  # Hellotext is down at first
    identify(user, identity=Identity(session="S1"), vendors=["hellotext"])
    order = track("order.placed", {"order": "O-1"}, user_id=user.pk, session="S1")
    assert order is not None
    drain(["hellotext"])
    waiting = Delivery.objects.get(event_id=order.id, vendor="hellotext")
    assert (waiting.status, waiting.attempts) == (Delivery.Status.PENDING, 0)  # never sent
    assert [r.status for r in sandbox.requests("hellotext")] == [503]

    Delivery.objects.update(next_attempt_at=timezone.now())
    drain(["hellotext"])
    Delivery.objects.update(next_attempt_at=timezone.now())
    drain(["hellotext"])
    waiting.refresh_from_db()
    assert waiting.status == Delivery.Status.DELIVERED
    (path, body) = hellotext_calls(sandbox)[-1]
    assert (path, body["profile"]) == (
        "/v1/attribution/events",
        VendorProfile.objects.get().profile_id,
    )


def test_a_users_event_without_any_hellotext_id_gets_the_profile_identify_makes(
    settings: Settings, sandbox: Sandbox, user: Any
) -> None:
    """No session, no profile yet when tracked: routed anyway, it waits for the
    identify and carries its profile; with no identify at all it is skipped, saying why."""
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "worker"}
    identify(user, identity=Identity(), vendors=["hellotext"])
    order = track("order.placed", {"order": "O-1"}, user_id=user.pk, vendors=["hellotext"])
    stranger = track("order.placed", {"order": "O-2"}, user_id="never-identified")
    assert order is not None
    assert stranger is not None
    drain(["hellotext"])
    assert Delivery.objects.get(event_id=order.id).status == Delivery.Status.DELIVERED
    assert hellotext_calls(sandbox)[-1][1]["profile"] == VendorProfile.objects.get().profile_id
    skipped = Delivery.objects.get(event_id=stranger.id, vendor="hellotext")
    assert (skipped.status, skipped.attempts) == (Delivery.Status.SKIPPED, 0)
    assert "Hellotext needs a profile or session" in skipped.last_error


def test_a_rolled_back_login_identifies_nobody(vendors: Sandbox, user: Any) -> None:
    def log_in_then_fail() -> None:
        with transaction.atomic():
            identify(user, identity=Identity(session="S1"))
            raise RuntimeError("login failed after all")

    with pytest.raises(RuntimeError):
        log_in_then_fail()
    assert not Event.objects.exists()
    assert vendors.requests() == []


def test_identify_obeys_the_vendor_switch_and_binds_primedatas_server_session(
    settings: Settings, sandbox: Sandbox, user: Any
) -> None:
    vendor_settings: dict[str, dict[str, Any]] = sandbox.vendor_settings()
    vendor_settings["browsee"]["IDENTIFY"] = False
    settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "sync"}
    identify(user, identity=Identity())  # no browser id at all
    assert set(Delivery.objects.values_list("vendor", "status")) == {
        (vendor, Delivery.Status.DELIVERED) for vendor in VENDORS if vendor != "browsee"
    }
    (primedata,) = calls(sandbox, "primedata", "/powehi/context")
    assert primedata["sessionId"] == server_session(str(user.pk))


def test_traits_default_to_the_configured_user_fields_and_can_be_given(
    settings: Settings, vendors: Sandbox, user: Any
) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTIFY_TRAITS": ["email", "get_username"]}
    identify(user, identity=Identity(session="S1"), vendors=["hackle"])
    identify(
        user_id="42", traits={"plan": "gold"}, identity=Identity(session="S1"), vendors=["hackle"]
    )
    first, second = calls(vendors, "hackle", "/v1/properties")
    assert first["operations"]["$set"] == {"email": "ada@example.com", "get_username": "ada"}
    assert second == {"userId": "42", "operations": {"$set": {"plan": "gold"}}}


def test_bad_calls_are_refused_with_the_field_named(vendors: Sandbox) -> None:
    with pytest.raises(InvalidEvent) as no_user:
        identify(traits={"plan": "gold"})
    assert no_user.value.field == "user_id"
    with pytest.raises(InvalidEvent) as bad_traits:
        identify(user_id="42", traits={"when": object()})
    assert bad_traits.value.field == "properties.when"
    with pytest.raises(InvalidEvent) as bad_id:
        identify(user_id="has space")
    assert bad_id.value.field == "identity.user_id"
    assert not Event.objects.exists()


# -- the login hook --------------------------------------------------------------------------

LOGIN_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]


def test_login_identifies_only_when_turned_on(
    settings: Settings, vendors: Sandbox, user: Any, client: Client
) -> None:
    settings.MIDDLEWARE = LOGIN_MIDDLEWARE
    assert client.get("/identity/login/?username=ada&hello_session=S1").status_code == 200
    assert not Event.objects.filter(kind=IDENTIFY).exists()

    settings.EVENTTRACK = {**settings.EVENTTRACK, "IDENTIFY_ON_LOGIN": True}
    client.logout()
    assert client.get("/identity/login/?username=ada&hello_session=S1").status_code == 200
    event = Event.objects.get(kind=IDENTIFY)
    assert event.identity["user_id"] == str(user.pk)
    assert event.identity["session"] == "S1"
    assert event.properties == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    assert vendors.state("hellotext").sessions == {"S1": VendorProfile.objects.get().profile_id}


def test_a_failing_identify_never_breaks_the_login(
    settings: Settings, vendors: Sandbox, user: Any, client: Client
) -> None:
    settings.MIDDLEWARE = LOGIN_MIDDLEWARE
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "IDENTIFY_ON_LOGIN": True,
        "IDENTIFY_TRAITS": ["check_password"],  # a method that needs an argument
    }
    response = client.get("/identity/login/?username=ada")
    assert response.status_code == 200
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize(("identify_staff", "identified"), [(None, False), (True, True)])
def test_staff_signing_in_are_not_identified_unless_asked(
    configure: Any,
    settings: Settings,
    user: Any,
    client: Client,
    identify_staff: bool | None,
    identified: bool,
) -> None:
    options = {} if identify_staff is None else {"IDENTIFY_STAFF": identify_staff}
    configure(IDENTIFY_ON_LOGIN=True, **options)
    settings.MIDDLEWARE = LOGIN_MIDDLEWARE
    user.is_staff = True
    user.save()
    assert client.get("/identity/login/?username=ada&hello_session=S1").status_code == 200
    assert Event.objects.filter(kind=IDENTIFY).exists() is identified
    assert (VendorSession.objects.filter(session_id="S1").exists()) is identified


def test_identify_settings_are_validated(settings: Settings) -> None:
    from django_eventtrack.errors import ConfigurationError

    settings.EVENTTRACK = {"IDENTIFY_TRAITS": ["email", "not a name"]}
    with pytest.raises(ConfigurationError, match="IDENTIFY_TRAITS"):
        get_config()


# -- the sandbox speaks the identify endpoints as documented ----------------------------------


@pytest.mark.parametrize(
    ("vendor", "path", "body", "problem"),
    [
        ("hellotext", "/v1/profiles", {"nickname": "x", "email": "a@b.c"}, "unknown profile field"),
        ("hellotext", "/v1/profiles", {"first_name": "Ada"}, "email, phone or reference"),
        ("hackle", "/v1/properties", {"operations": {"$set": {"a": 1}}}, "userId or deviceId"),
        ("hackle", "/v1/properties", {"userId": "7", "operations": {"$add": {}}}, "unknown op"),
        ("hackle", "/v1/properties", {"userId": "7", "operations": {"$set": {"a": {}}}}, "$set.a"),
        ("browsee", "/api/v1/identify", {"traits": {}}, "userId or anonymousId"),
        ("browsee", "/api/v1/identify", {"userId": "7", "traits": []}, "traits must be"),
    ],
)
def test_the_sandbox_refuses_malformed_identify_calls(
    sandbox: Sandbox, vendor: str, path: str, body: dict[str, Any], problem: str
) -> None:
    credentials = sandbox.credentials[vendor]
    headers = {
        "authorization": f"Bearer {credentials.get('API_TOKEN')}",
        "x-hackle-api-key": credentials.get("API_KEY", ""),
    }
    if vendor == "browsee":
        body = {"apiKey": credentials["API_KEY"], **body}
    (spec,) = [spec for spec in registry_specs() if spec.name == vendor]
    (endpoint,) = [e for e in spec.endpoints if e.path == path and e.method == "POST"]
    rejection = endpoint.validate(Incoming(headers, body, None), credentials)
    assert rejection is not None
    assert problem in str(rejection[1])


@pytest.mark.usefixtures("_admin_settings")
def test_remembered_profiles_are_listed_read_only_in_the_admin(
    vendors: Sandbox, user: Any, admin_client: Client
) -> None:
    identify(user, identity=Identity(session="S1"), vendors=["hellotext"])
    profile = VendorProfile.objects.get()
    page = admin_client.get("/admin/django_eventtrack/vendorprofile/")
    assert page.status_code == 200
    assert profile.profile_id in page.content.decode()
    assert admin_client.get("/admin/django_eventtrack/vendorprofile/add/").status_code == 403
    events = admin_client.get("/admin/django_eventtrack/event/?kind=identify")
    assert events.status_code == 200
    assert "identify" in events.content.decode()


def test_remembered_profiles_cost_one_query_per_claim(
    settings: Settings, vendors: Sandbox, user: Any
) -> None:
    identify(user, identity=Identity(session="S1"), vendors=["hellotext"])
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    for n in range(5):
        track("order.shipped", {"order": f"O-{n}"}, user_id=user.pk, session=f"S-{n}")
    with CaptureQueriesContext(connection) as queries:
        drain(["hellotext"])
    lookups = [q["sql"] for q in queries if "eventtrack_vendor_profile" in q["sql"]]
    assert len(lookups) == 1, lookups
    profile = VendorProfile.objects.get().profile_id
    shipped = calls(vendors, "hellotext", "/v1/attribution/events")
    assert [body["profile"] for body in shipped] == [profile] * 5


def test_a_refused_write_follows_the_storage_error_setting_as_for_track(
    settings: Settings, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.EVENTTRACK = {"VENDORS": {}, "DELIVERY": "worker"}
    connection.ensure_connection()
    connection.connection.execute("PRAGMA query_only = ON")
    try:
        with pytest.raises(StorageError, match=r"'identify' .* could not be stored"):
            identify(user)
        settings.EVENTTRACK = {**settings.EVENTTRACK, "RAISE_ON_STORAGE_ERROR": False}
        assert identify(user) is None
    finally:
        connection.connection.execute("PRAGMA query_only = OFF")
    assert "identify() not stored: event 'identify'" in caplog.text
    assert not Event.objects.exists()
