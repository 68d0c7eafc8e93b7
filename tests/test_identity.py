"""Identity settings, snapshots kept on models, and which identity track() uses."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from pytest_django import Settings

from django_eventtrack import conf, track
from django_eventtrack.core.event import Identity
from django_eventtrack.errors import ConfigurationError, InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import fanout
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.web import identity
from tests.processes.helpers import VENDORS

# -- settings -------------------------------------------------------------------------------


def test_defaults(settings: Settings) -> None:
    settings.EVENTTRACK = {}
    parsed = identity.get_settings()
    assert parsed == conf.IdentitySettings()
    assert (parsed.anonymous_cookie, parsed.ids_cookie) == ("eventtrack_aid", "eventtrack_ids")
    assert parsed.cookie_max_age == 34560000
    assert parsed.cookie_domain is None
    assert parsed.user_id is None
    assert parsed.consent is None
    assert parsed.respect_gpc is False


def test_cookies_live_at_most_the_400_days_browsers_keep() -> None:
    assert conf.parse_identity({}).cookie_max_age == 400 * 24 * 3600
    assert conf.parse_identity({"COOKIE_MAX_AGE": 400 * 24 * 3600}).cookie_max_age == 34560000


def test_settings_are_parsed_once_per_configuration(settings: Settings) -> None:
    settings.EVENTTRACK = {"IDENTITY": {"COOKIE_MAX_AGE": 60}}
    assert identity.get_settings() is identity.get_settings()
    settings.EVENTTRACK = {"IDENTITY": {"COOKIE_MAX_AGE": 120}}
    assert identity.get_settings().cookie_max_age == 120


def test_user_id_and_consent_accept_dotted_paths_and_callables() -> None:
    parsed = conf.parse_identity(
        {"USER_ID": "tests.views.hashed_email", "CONSENT": "tests.views.consent_cookie"}
    )
    from tests.views import consent_cookie, hashed_email

    assert parsed.user_id is hashed_email
    assert parsed.consent is consent_cookie
    assert conf.parse_identity({"CONSENT": consent_cookie}).consent is consent_cookie


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"COOKIE_NAME": "x"}, r'EVENTTRACK\["IDENTITY"\] has unknown keys \[\'COOKIE_NAME\'\]'),
        ({"ANONYMOUS_COOKIE": "a b"}, r'\["ANONYMOUS_COOKIE"\] must be a cookie name'),
        ({"IDS_COOKIE": ""}, r'\["IDS_COOKIE"\] must be a cookie name'),
        ({"ANONYMOUS_COOKIE": "same", "IDS_COOKIE": "same"}, "must name different cookies"),
        ({"COOKIE_MAX_AGE": "2y"}, r'\["COOKIE_MAX_AGE"\] must be a positive whole number'),
        ({"COOKIE_MAX_AGE": 0}, r'\["COOKIE_MAX_AGE"\] must be a positive whole number'),
        ({"COOKIE_MAX_AGE": True}, r'\["COOKIE_MAX_AGE"\] must be a positive whole number'),
        ({"COOKIE_MAX_AGE": 400 * 86400 + 1}, r'\["COOKIE_MAX_AGE"\] must be at most 34560000'),
        ({"COOKIE_DOMAIN": "https://example.com"}, r'\["COOKIE_DOMAIN"\] must be None or a'),
        ({"USER_ID": "user id"}, r'\["USER_ID"\] must be \'pk\', another attribute'),
        ({"USER_ID": "tests.views.missing"}, r'\["USER_ID"\]: cannot import'),
        ({"USER_ID": "tests.test_identity.NOT_CALLABLE"}, r"not a callable"),
        ({"CONSENT": True}, r'\["CONSENT"\] must be None or a dotted path'),
        ({"CONSENT": "nowhere.at.all"}, r'\["CONSENT"\]: cannot import'),
        ({"RESPECT_GPC": "sometimes"}, r'\["RESPECT_GPC"\] must be true or false'),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        conf.parse_identity(raw)


NOT_CALLABLE = 42


@pytest.mark.parametrize(
    ("value", "parsed"), [(True, True), ("yes", True), ("Off", False), (0, False)]
)
def test_respect_gpc_reads_a_boolean_like_every_other_setting(value: object, parsed: bool) -> None:
    """One boolean rule for every setting: the top level's, a vendor's and the identity's."""
    assert conf.parse_identity({"RESPECT_GPC": value}).respect_gpc is parsed


def test_the_middleware_refuses_to_start_misconfigured(settings: Settings) -> None:
    from django_eventtrack.web.middleware import EventTrackMiddleware

    settings.EVENTTRACK = {"IDENTITY": {"RESPECT_GPC": "sometimes"}}
    with pytest.raises(ConfigurationError, match="RESPECT_GPC"):
        EventTrackMiddleware(lambda request: None)  # type: ignore[arg-type]


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_and_restore_round_trip_through_json() -> None:
    visitor = Identity(user_id="7", anonymous_id="a" * 32, session="S1", device_id="D1")
    stored = json.loads(json.dumps(identity.snapshot(visitor)))
    assert stored == {"user_id": "7", "anonymous_id": "a" * 32, "session": "S1", "device_id": "D1"}
    assert identity.restore(stored) == visitor
    opted_out = Identity(user_id="7", opted_out=True)
    assert identity.snapshot(opted_out) == {"user_id": "7", "opted_out": True}
    assert identity.restore(identity.snapshot(opted_out)) == opted_out
    assert identity.restore(None) == Identity() == identity.restore({})
    assert identity.restore(visitor) is visitor


def test_snapshot_of_a_request_without_the_middleware_reads_what_it_carries() -> None:
    request = RequestFactory().get("/?hello_session=S1", headers={"cookie": "XSessionId=PD1"})
    request.user = AnonymousUser()
    assert identity.snapshot(request) == {"session": "S1", "primedata_session_id": "PD1"}
    assert identity.snapshot() == {}  # no current request


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"userid": "7"}, "unknown keys"),
        ({"session": "a b"}, "printable ASCII"),
        ({"opted_out": "no"}, "must be true or false"),
        (["user_id", "7"], "must be a mapping"),
    ],
)
def test_restore_refuses_bad_snapshots(data: Any, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        identity.restore(data)


def test_use_sets_and_resets_the_current_identity() -> None:
    assert identity.current() is None
    with identity.use({"user_id": "7"}) as visitor:
        assert identity.current() == visitor == Identity(user_id="7")
        with identity.use(Identity(session="S1")):
            assert identity.current() == Identity(session="S1")
        assert identity.current() == visitor
    assert identity.current() is None


# -- which identity track() uses ------------------------------------------------------------


@pytest.fixture
def worker_mode(settings: Settings, vendors: Sandbox) -> Sandbox:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    return vendors


@pytest.mark.django_db
def test_track_with_a_stored_snapshot_outside_any_request(worker_mode: Sandbox) -> None:
    kept = {"user_id": "7", "session": "S1", "anonymous_id": "a" * 32}  # Order.tracking_identity
    event = track("order.shipped", {"order": "O-1"}, identity=kept)
    assert event is not None
    assert event.identity == Identity(user_id="7", session="S1", anonymous_id="a" * 32)
    assert Event.objects.get(pk=event.id).identity == kept


@pytest.mark.django_db
def test_explicit_keywords_win_over_identity(worker_mode: Sandbox) -> None:
    event = track("order.shipped", identity={"user_id": "7", "session": "S1"}, session="S2")
    assert event is not None
    assert (event.identity.user_id, event.identity.session) == ("7", "S2")


@pytest.mark.django_db
def test_identity_replaces_the_current_visitor_instead_of_mixing(worker_mode: Sandbox) -> None:
    staff = Identity(user_id="1", anonymous_id="b" * 32, session="STAFF", device_id="D-STAFF")
    with identity.use(staff):
        shipped = track("order.shipped", identity={"user_id": "7"})
        viewed = track("page.viewed", user_id="7")
    assert shipped is not None
    assert viewed is not None
    assert shipped.identity == Identity(user_id="7")
    # Keywords alone fill in from the current visitor (here: the staff member's browser).
    assert viewed.identity == Identity(
        user_id="7", anonymous_id="b" * 32, session="STAFF", device_id="D-STAFF"
    )


@pytest.mark.django_db
def test_request_identity_wins_over_the_current_one(worker_mode: Sandbox) -> None:
    request = RequestFactory().get("/", headers={"cookie": "hello_session=FROM-REQUEST"})
    with identity.use({"session": "CURRENT"}):
        event = track("page.viewed", request=request)
    assert event is not None
    assert event.identity.session == "FROM-REQUEST"


@pytest.mark.django_db
def test_a_bad_identity_is_a_programming_error(worker_mode: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="unknown keys"):
        track("order.shipped", identity={"email": "ada@example.com"})


@pytest.mark.django_db
def test_an_opted_out_identity_is_stored_with_every_delivery_skipped(worker_mode: Sandbox) -> None:
    event = track("order.shipped", identity={"user_id": "7", "opted_out": True}, session="S1")
    assert event is not None
    assert event.identity.opted_out
    assert Event.objects.get(pk=event.id).to_normalised().identity == event.identity
    assert fanout.write_now([event.id]) == 1
    deliveries = Delivery.objects.filter(event_id=event.id)
    assert deliveries.count() == len(VENDORS)
    assert set(deliveries.values_list("status", "last_error")) == {
        ("skipped", "visitor opted out of tracking")
    }


def test_merging_keeps_an_opt_out() -> None:
    assert Identity(user_id="7").merged(Identity(opted_out=True)).opted_out
    assert Identity(opted_out=True).merged(Identity(user_id="7")).opted_out
    assert not Identity(user_id="7").merged(Identity(session="S1")).opted_out


def test_consent_without_the_middleware(settings: Settings) -> None:
    settings.EVENTTRACK = {"IDENTITY": {"CONSENT": "tests.views.consent_cookie"}}
    request = RequestFactory().get("/", headers={"cookie": "hello_session=S1"})
    assert identity.from_request(request) == Identity(opted_out=True)
    request = RequestFactory().get("/", headers={"cookie": "hello_session=S1; consent=yes"})
    assert identity.from_request(request) == Identity(session="S1")


def test_a_uuid_primary_key_is_a_user_id() -> None:
    class User:
        pk = uuid.UUID("5a1f0c4e-9b7d-4c1e-8f3a-2d6b7e8f9a01")
        is_authenticated = True

    request = RequestFactory().get("/")
    request.user = User()  # type: ignore[assignment]
    assert identity.user_id_of(request) == "5a1f0c4e-9b7d-4c1e-8f3a-2d6b7e8f9a01"
