"""Vendor semantics: what the real vendors accept, and nothing lost to a refusal we could
foresee. Each test runs the library against the strict, stateful sandbox (which knows no
object id, profile or custom action it was not told of), one test or more per item of
issue 14, and the vendors' behaviour is written in docs/vendors/*.md."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.checks import run_checks
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import identify, track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, Identity
from django_eventtrack.delivery import flow
from django_eventtrack.delivery.sender import drain
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery, Event, VendorPause, VendorProfile, VendorSession
from django_eventtrack.outbox import fanout, pausing
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors.hellotext import UNSEEN_SESSION_RETRY, UNSEEN_SESSION_WAIT
from django_eventtrack.vendors.primedata import server_session
from tests.test_admin import _admin_settings  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
Status = Delivery.Status

TEE = {"reference": "TEE-1", "name": "Organic cotton tee", "price": {"amount": 29.9}}
ORDER = {"reference": "ORD-1", "source": "shop", "total": {"amount": 29.9, "currency": "USD"}}


@pytest.fixture(autouse=True)
def _closed_breaker() -> Any:
    flow.breaker.reset()
    yield
    flow.breaker.reset()


@pytest.fixture
def configure(settings: Settings, sandbox: Sandbox) -> Any:
    """All four vendors on the sandbox (sync delivery), with ``vendor_options`` per vendor
    and top-level ``options``."""

    def apply(vendor_options: dict[str, dict[str, Any]] | None = None, **options: Any) -> Sandbox:
        vendor_settings: dict[str, dict[str, Any]] = sandbox.vendor_settings()
        for vendor, extra in (vendor_options or {}).items():
            vendor_settings[vendor].update(extra)
        settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "sync", **options}
        return sandbox

    return apply


@pytest.fixture
def user(django_user_model: type[AbstractBaseUser]) -> Any:
    return django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="ada", email="ada@example.com", password="not-used"
    )


def events_to(sandbox: Sandbox) -> list[Any]:
    """Every request to Hellotext's events endpoint, accepted or not, oldest first."""
    return [r for r in sandbox.requests("hellotext") if r.path.endswith("/v1/attribution/events")]


def delivery(vendor: str, event: Any) -> Delivery:
    return Delivery.objects.get(vendor=vendor, event_id=event.id)


def make_due(*deliveries: Delivery) -> None:
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
        next_attempt_at=timezone.now()
    )


# -- 1. Hellotext objects: our data as object_parameters, never our id as a Hellotext id ---------


def test_product_and_order_reach_a_hellotext_that_knows_no_object_ids(configure: Any) -> None:
    sandbox = configure()
    assert sandbox.state("hellotext").objects == {}
    viewed = track("product.viewed", {"product": TEE}, session="S1", vendors=["hellotext"])
    placed = track("order.placed", {"order": ORDER}, session="S1", vendors=["hellotext"])

    assert [r.status for r in events_to(sandbox)] == [200, 200]
    assert delivery("hellotext", viewed).status == Status.DELIVERED
    assert delivery("hellotext", placed).status == Status.DELIVERED
    body = events_to(sandbox)[0].body
    assert "object" not in body  # the shop's id is a reference, not a Hellotext object id
    assert body["object_parameters"] == {"source": "django", **TEE}
    kinds = {
        (o["type"], o["reference"], o["source"])
        for o in sandbox.state("hellotext").objects.values()
    }
    assert kinds == {("product", "TEE-1", "django"), ("order", "ORD-1", "shop")}


def test_a_product_given_by_our_reference_and_name_reaches_hellotext(configure: Any) -> None:
    """The shape a view naturally writes (the demo's, before): our SKU and the name."""
    sandbox = configure()
    viewed = track("product.viewed", {"product": "TEE-1", "name": "Tee", "size": "M"}, session="S1")
    assert delivery("hellotext", viewed).status == Status.DELIVERED
    (request,) = events_to(sandbox)
    assert request.status == 200
    assert request.body["object_parameters"] == {
        "source": "django",
        "reference": "TEE-1",
        "name": "Tee",
    }
    assert request.body["metadata"] == {"size": "M"}
    assert sandbox.state("hellotext").object_id("product", "TEE-1", "django") is not None


def test_the_same_order_is_the_same_hellotext_object_from_placed_to_shipped(
    configure: Any,
) -> None:
    sandbox = configure()
    track("order.placed", {"order": ORDER}, session="S1", vendors=["hellotext"])
    track("order.shipped", {"order": {**ORDER, "delivery": "deliver"}}, session="S1")
    track("order.delivered", {"order": "ORD-1"}, session="S1", vendors=["hellotext"])

    placed, shipped, delivered = sandbox.state("hellotext").events
    assert (
        placed["object"]
        == shipped["object"]
        == sandbox.state("hellotext").object_id("order", "ORD-1", "shop")
    )
    # A bare reference is matched with our default source: a different object.
    assert delivered["object"] == sandbox.state("hellotext").object_id("order", "ORD-1", "django")
    assert delivered["object"] != placed["object"]


def test_a_built_in_action_without_its_object_is_skipped_not_refused(configure: Any) -> None:
    sandbox = configure()
    event = track("product.viewed", {"name": "Tee"}, session="S1", vendors=["hellotext"])
    skipped = delivery("hellotext", event)
    assert skipped.status == Status.SKIPPED
    assert "product.viewed needs its product" in skipped.last_error
    assert sandbox.requests("hellotext") == []


def test_a_product_hellotext_cannot_create_is_its_refusal_not_a_guess(configure: Any) -> None:
    """A bare reference finds a product Hellotext already has; one it does not have
    needs a name to be created, which only the shop can give."""
    sandbox = configure()
    sandbox.state("hellotext").add_object("product", reference="MUG-1", source="django", name="Mug")
    found = track("product.viewed", {"product": "MUG-1"}, session="S1", vendors=["hellotext"])
    unknown = track("product.viewed", {"product": "CAP-1"}, session="S1", vendors=["hellotext"])
    assert delivery("hellotext", found).status == Status.DELIVERED
    refused = delivery("hellotext", unknown)
    assert (refused.status, refused.last_status) == (Status.FAILED, 422)
    assert "name is required to create a product" in refused.last_error


# -- 2. A browser shared by two users ------------------------------------------------------------


def test_an_order_by_profile_b_with_profile_as_session_still_reaches_hellotext(
    configure: Any,
) -> None:
    sandbox = configure()
    alice = sandbox.state("hellotext").add_profile("PA")
    bob = sandbox.state("hellotext").add_profile("PB")
    assert sandbox.state("hellotext").attach("shared", alice)[0] == 200

    first = track("order.placed", {"order": ORDER}, profile=bob, session="shared")
    assert delivery("hellotext", first).status == Status.DELIVERED
    refused, resent = events_to(sandbox)
    assert refused.status == 422  # identity_assigned
    assert (resent.status, resent.body["profile"]) == (200, bob)
    assert "session" not in resent.body
    assert delivery("hellotext", first).adjustments == [
        "session not sent: Hellotext says it belongs to another profile"
    ]
    assert VendorSession.objects.get(session_id="shared").profile_id == ""  # not Bob's
    assert sandbox.state("hellotext").sessions["shared"] == alice  # never moved

    # Now we know: Bob's next event leaves the session out before sending.
    track("order.shipped", {"order": ORDER}, profile=bob, session="shared")
    assert [r.status for r in events_to(sandbox)] == [422, 200, 200]
    assert "session" not in events_to(sandbox)[-1].body


def test_identify_learns_whose_a_session_is_and_later_events_respect_it(
    configure: Any, user: Any, django_user_model: Any
) -> None:
    sandbox = configure()
    bob = django_user_model.objects.create_user(username="bob", email="bob@example.com")
    identify(bob, identity=Identity(session="shared"), vendors=["hellotext"])
    identify(user, identity=Identity(session="shared"), vendors=["hellotext"])
    bobs_profile = VendorProfile.objects.get(user_id=str(bob.pk)).profile_id
    adas_profile = VendorProfile.objects.get(user_id=str(user.pk)).profile_id
    assert VendorSession.objects.get(session_id="shared").profile_id == bobs_profile

    sent_before = len(events_to(sandbox))
    track("order.placed", {"order": ORDER}, user_id=user.pk, session="shared")
    (order,) = events_to(sandbox)[sent_before:]  # one request: no refusal to learn from
    assert (order.status, order.body["profile"]) == (200, adas_profile)
    assert "session" not in order.body
    # Bob's own events keep the session: it is his.
    track("order.placed", {"order": ORDER}, user_id=bob.pk, session="shared")
    assert events_to(sandbox)[-1].body["session"] == "shared"


# -- 3. Names that are not Hellotext actions ------------------------------------------------------


def test_a_name_that_is_no_hellotext_action_is_skipped_with_how_to_map_it(configure: Any) -> None:
    sandbox = configure()
    event = track("user.signed_up", session="S1")
    skipped = delivery("hellotext", event)
    assert skipped.status == Status.SKIPPED
    assert "'user.signed_up' is not a Hellotext action" in skipped.last_error
    assert 'EVENTTRACK["VENDORS"]["hellotext"]["EVENT_NAMES"]' in skipped.last_error
    assert 'EVENTTRACK["VENDORS"]["hellotext"]["ACTIONS"]' in skipped.last_error
    assert sandbox.requests("hellotext") == []
    assert delivery("hackle", event).status == Status.DELIVERED  # other vendors take any name


def test_declared_custom_actions_and_mapped_names_reach_hellotext(configure: Any) -> None:
    sandbox = configure(
        {
            "hellotext": {
                "ACTIONS": ["account.created"],
                "EVENT_NAMES": {"user.signed_up": "account.created", "basket.add": "cart.added"},
            }
        }
    )
    sandbox.state("hellotext").add_action("account.created")
    signed_up = track("user.signed_up", {"plan": "gold"}, session="S1", vendors=["hellotext"])
    added = track("basket.add", {"cart": {"reference": "C1"}}, session="S1", vendors=["hellotext"])
    generated = track("short_link.clicked", session="S1", vendors=["hellotext"])

    assert delivery("hellotext", signed_up).status == Status.DELIVERED
    assert delivery("hellotext", added).status == Status.DELIVERED
    assert [r.body["action"] for r in events_to(sandbox)] == ["account.created", "cart.added"]
    assert "records itself" in delivery("hellotext", generated).last_error


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        (["Account.Created"], "lowercase noun.verb"),
        (["order.placed"], "one of Hellotext's own actions"),
        ("appointment.booked,short_link.clicked", "one of Hellotext's own actions"),
    ],
)
def test_custom_actions_are_validated(configure: Any, actions: Any, problem: str) -> None:
    configure({"hellotext": {"ACTIONS": actions}})
    with pytest.raises(ConfigurationError, match=problem):
        get_config()


def test_the_system_check_lists_model_events_hellotext_cannot_take(configure: Any) -> None:
    configure(
        {"hellotext": {"EVENT_NAMES": {"order.paid": "order.confirmed"}}},
        MODEL_EVENTS=[
            {"model": "testapp.Order", "on": "create", "event": "order.placed"},
            {"model": "testapp.Order", "on": "create", "event": "user.signed_up"},
            {"model": "testapp.Order", "on": "update", "event": "order.paid"},
            {
                "model": "testapp.Order",
                "on": "delete",
                "event": "order.gone",
                "vendors": ["hackle"],
            },
        ],
    )
    warnings = [m for m in run_checks(tags=["eventtrack"]) if m.id == "eventtrack.W101"]
    assert [w.msg.split(":")[0] for w in warnings] == ['EVENTTRACK["MODEL_EVENTS"][1]']
    assert "Hellotext cannot take this event: 'user.signed_up' is not a Hellotext action" in (
        warnings[0].msg
    )


# -- 4. Hellotext's 404s, told apart by the error body --------------------------------------------


def test_a_profile_hellotext_lost_is_created_again_once_and_the_events_go_on(
    configure: Any, user: Any
) -> None:
    sandbox = configure(DELIVERY="worker")
    VendorProfile.objects.create(vendor="hellotext", user_id=str(user.pk), profile_id="gone")
    first = track("order.placed", {"order": ORDER}, user_id=user.pk, vendors=["hellotext"])
    second = track("order.shipped", {"order": ORDER}, user_id=user.pk, vendors=["hellotext"])
    assert first is not None
    assert first.identity.profile == "gone"  # remembered at track time

    drain(["hellotext"])
    pending = [delivery("hellotext", first), delivery("hellotext", second)]
    assert {(d.status, d.last_status) for d in pending} == {(Status.PENDING, 404)}
    created = [r for r in sandbox.requests("hellotext") if r.path.endswith("/v1/profiles")]
    assert len(created) == 1  # once, though both events found it lost
    new_profile = VendorProfile.objects.get(user_id=str(user.pk)).profile_id
    assert new_profile != "gone"
    assert created[0].body == {"reference": str(user.pk)}

    make_due(*pending)
    drain(["hellotext"])
    assert {delivery("hellotext", e).status for e in (first, second)} == {Status.DELIVERED}
    assert [r.body["profile"] for r in events_to(sandbox) if r.accepted] == [new_profile] * 2


def test_identify_creates_a_lost_profile_again_and_attaches_the_session(
    configure: Any, user: Any
) -> None:
    sandbox = configure()
    VendorProfile.objects.create(vendor="hellotext", user_id=str(user.pk), profile_id="gone")
    identify(user, identity=Identity(session="S1"), vendors=["hellotext"])
    assert Delivery.objects.get(event__kind=IDENTIFY).status == Status.DELIVERED
    new_profile = VendorProfile.objects.get(user_id=str(user.pk)).profile_id
    assert new_profile != "gone"
    assert sandbox.state("hellotext").sessions == {"S1": new_profile}


def test_a_session_hellotext_has_not_seen_yet_is_waited_for(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker")
    sandbox.state("hellotext").forget_session("first-page")
    event = track("order.placed", {"order": ORDER}, session="first-page", vendors=["hellotext"])
    before = timezone.now()
    drain(["hellotext"])
    waiting = delivery("hellotext", event)
    assert (waiting.status, waiting.last_status) == (Status.PENDING, 404)
    assert "has not seen this session yet" in waiting.last_error
    assert waiting.next_attempt_at >= before + timedelta(seconds=UNSEEN_SESSION_RETRY)

    sandbox.state("hellotext").see_session("first-page")  # Hellotext.js reported it meanwhile
    make_due(waiting)
    drain(["hellotext"])
    assert delivery("hellotext", event).status == Status.DELIVERED


def test_past_the_wait_an_unseen_session_is_left_out_or_the_event_fails(configure: Any) -> None:
    sandbox = configure()
    sandbox.state("hellotext").add_profile("P1")
    sandbox.state("hellotext").forget_session("never")
    long_ago = timezone.now() - UNSEEN_SESSION_WAIT - timedelta(seconds=1)
    with_profile = track(
        "order.placed", {"order": ORDER}, profile="P1", session="never", timestamp=long_ago
    )
    alone = track("order.placed", {"order": ORDER}, session="never", timestamp=long_ago)

    sent = delivery("hellotext", with_profile)
    assert sent.status == Status.DELIVERED
    assert sent.adjustments == [
        "session not sent: Hellotext had not seen it 4 minutes after the event"
    ]
    failed = delivery("hellotext", alone)
    assert (failed.status, failed.last_status) == (Status.FAILED, 404)
    assert "never saw this session" in failed.last_error
    assert [r.status for r in events_to(sandbox)] == [404, 200, 404]


# -- 5. PrimeData's processedEvents and registered event types ------------------------------------


def test_a_primedata_batch_of_one_it_did_not_process_is_not_delivered(configure: Any) -> None:
    sandbox = configure()
    sandbox.state("primedata").register("order.placed")  # not "product.viewed"
    event = track("product.viewed", {"product": "TEE-1"}, session="S1", vendors=["primedata"])
    (request,) = sandbox.requests("primedata")
    assert request.status == 200
    failed = delivery("primedata", event)
    assert failed.status == Status.FAILED
    assert "PrimeData processed none of the 1 event(s)" in failed.last_error


def test_a_partly_processed_primedata_batch_is_flagged_and_never_resent(
    configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = configure(DELIVERY="worker")
    sandbox.state("primedata").register("order.placed")
    events = [
        track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"]),
        track("product.viewed", {"product": "B"}, session="S1", vendors=["primedata"]),
        track("order.placed", {"order": "C"}, session="S1", vendors=["primedata"]),
    ]
    with caplog.at_level(logging.WARNING, logger="django_eventtrack"):
        drain(["primedata"])
    (request,) = sandbox.requests("primedata")
    assert (request.event_count, request.body["events"][0]["eventType"]) == (3, "order.placed")
    for event in events:
        flagged = delivery("primedata", event)
        assert flagged.status == Status.DELIVERED
        assert flagged.last_error.startswith("unconfirmed: PrimeData processed 2 of the 3 events")
    assert "processed 2 of 3 events without saying which" in caplog.text
    drain(["primedata"])
    assert len(sandbox.requests("primedata")) == 1  # nothing sent twice


def test_unregistered_primedata_event_types_are_skipped_before_sending(configure: Any) -> None:
    sandbox = configure({"primedata": {"EVENT_TYPES": "order.placed, cart.added"}})
    kept = track("order.placed", {"order": "A"}, session="S1", vendors=["primedata"])
    skipped = track("product.viewed", {"product": "B"}, session="S1", vendors=["primedata"])
    assert delivery("primedata", kept).status == Status.DELIVERED
    reason = delivery("primedata", skipped)
    assert reason.status == Status.SKIPPED
    assert "'product.viewed' is not a registered PrimeData event type" in reason.last_error
    assert 'EVENTTRACK["VENDORS"]["primedata"]["EVENT_TYPES"]' in reason.last_error
    assert len(sandbox.requests("primedata")) == 1


# -- 6. PrimeData's session is never another vendor's profile id ----------------------------------


def test_a_server_event_for_a_user_gets_the_users_primedata_session(
    configure: Any, user: Any
) -> None:
    sandbox = configure()
    identify(user, identity=Identity(session="S1"))
    profile = VendorProfile.objects.get().profile_id
    event = track("order.shipped", {"order": ORDER}, user_id=user.pk)  # no browser at all
    assert event is not None
    assert event.identity.profile == profile  # Hellotext's, kept for it
    sent = sandbox.requests("primedata")[-1].body
    assert sent["sessionId"] == server_session(str(user.pk)) != profile
    # identify() bound that server session to the user, so PrimeData knows whose it is.
    (identified,) = [r.body for r in sandbox.requests("primedata") if "context" in r.path]
    sessions = {e["sessionId"] for e in identified["events"]}
    assert sessions == {"S1", server_session(str(user.pk))}


# -- 7. A 429 with Retry-After pauses the vendor, for every process -------------------------------


def test_retry_after_pauses_the_vendor_for_every_process(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker", CONCURRENCY=1)
    sandbox.inject("hackle", status=429, retry_after=120)
    events = [track("order.placed", {"n": n}, session="S1", vendors=["hackle"]) for n in range(3)]
    before = timezone.now()

    stats = drain(["hackle"])
    assert (stats.retried, stats.requests) == (1, 1)
    assert len(sandbox.requests("hackle")) == 1  # the rest of the claim was not sent...
    rows = [delivery("hackle", event) for event in events]
    assert [(d.status, d.attempts) for d in rows] == [
        (Status.PENDING, 1),
        (Status.PENDING, 0),  # ...but given back, not failed
        (Status.PENDING, 0),
    ]
    assert all(d.claim_token is None for d in rows)
    pause = pausing.paused_vendors()["hackle"]
    assert before + timedelta(seconds=119) < pause.paused_until < before + timedelta(seconds=122)
    assert "429" in pause.reason

    flow.breaker.reset()  # another process: it knows nothing but the database
    assert drain(["hackle"]).paused_vendors == {"hackle"}
    assert len(sandbox.requests("hackle")) == 1
    assert delivery("hackle", events[1]).attempts == 0


def test_a_pause_recorded_by_another_process_stops_claiming(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker")
    VendorPause.objects.create(
        vendor="browsee", paused_until=timezone.now() + timedelta(minutes=1), reason="elsewhere"
    )
    event = track("order.placed", {"order": "A"}, session="S1", vendors=["browsee", "hackle"])
    assert event is not None
    fanout.write_now([event.id])
    before = delivery("browsee", event).next_attempt_at
    stats = drain()
    assert stats.paused_vendors == {"browsee"}
    assert delivery("hackle", event).status == Status.DELIVERED
    untouched = delivery("browsee", event)
    assert (untouched.status, untouched.next_attempt_at) == (Status.PENDING, before)  # unclaimed
    assert sandbox.requests("browsee") == []
    VendorPause.objects.update(paused_until=timezone.now())  # the pause ran out
    drain()
    assert delivery("browsee", event).status == Status.DELIVERED


def test_an_open_circuit_breaker_is_recorded_for_every_process(configure: Any) -> None:
    sandbox = configure(DELIVERY="worker", CIRCUIT_BREAKER_THRESHOLD=2, CONCURRENCY=1)
    sandbox.inject("browsee", status=503, count=10)
    for n in range(3):
        track("order.placed", {"n": n}, session="S1", vendors=["browsee"])
    drain(["browsee"])
    pause = pausing.paused_vendors()["browsee"]
    assert pause.reason == "circuit breaker: 2 retryable failures in a row"
    assert len(sandbox.requests("browsee")) == 2


# -- 8. A 2xx that says it refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "body", "message"),
    [
        (
            "hellotext",
            {"errors": [{"type": "invalid", "message": "bad object", "parameter": "object"}]},
            "invalid: bad object (parameter object)",
        ),
        ("primedata", {"error": {"message": "Item not found"}}, "Item not found"),
    ],
)
def test_a_2xx_with_an_error_body_is_not_delivered(
    configure: Any, vendor: str, body: dict[str, Any], message: str
) -> None:
    sandbox = configure()
    sandbox.inject(vendor, status=200, body=body)
    event = track("order.placed", {"order": "A"}, session="S1", vendors=[vendor])
    failed = delivery(vendor, event)
    assert (failed.status, failed.last_status) == (Status.FAILED, 200)
    assert message in failed.last_error


def test_a_2xx_saying_identity_assigned_is_sent_again_without_the_session(
    configure: Any,
) -> None:
    sandbox = configure()
    sandbox.state("hellotext").add_profile("P1")
    assigned = {"errors": [{"type": "identity_assigned", "message": "taken"}]}
    sandbox.inject("hellotext", status=200, body=assigned)
    event = track("order.placed", {"order": "A"}, profile="P1", session="S1", vendors=["hellotext"])
    assert delivery("hellotext", event).status == Status.DELIVERED
    assert "session" not in events_to(sandbox)[-1].body


# -- 9. Changes made to fit a vendor are recorded, logged once, shown in the admin ----------------


@pytest.mark.usefixtures("_admin_settings")
def test_hackles_fitting_is_recorded_logged_once_and_shown(
    configure: Any, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    configure(DELIVERY="worker")
    properties = {"cart": {"items": ["x" * 1100]}} | {f"p{n:02}": n for n in range(71)}
    event = track("order.placed", properties, session="S1", vendors=["hackle"])
    sandbox = configure(DELIVERY="worker")
    sandbox.inject("hackle", status=503)
    with caplog.at_level(logging.INFO, logger="django_eventtrack"):
        drain(["hackle"])  # a retryable failure...
        make_due(delivery("hackle", event))
        drain(["hackle"])  # ...then delivered: the same changes, not logged again
    fitted = delivery("hackle", event)
    assert fitted.status == Status.DELIVERED
    assert fitted.adjustments == [
        "properties: dropped nested values whose JSON is over 1,024 characters: cart",
        "properties: 72 keys, kept 64 (Hackle takes 64; dropped: p64, p65, p66, p67, p68 "
        "and 2 more)",
    ]
    logged = [r for r in caplog.records if "changed to fit the vendor" in r.getMessage()]
    assert len(logged) == 1
    assert "x" * 100 not in logged[0].getMessage()  # the lines name keys, never values
    page = admin_client.get(f"/admin/django_eventtrack/delivery/{fitted.pk}/change/")
    assert "72 keys, kept 64" in page.content.decode()


# -- 10. Staff are not identified as customers ----------------------------------------------------

LOGIN_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_eventtrack.middleware.EventTrackMiddleware",
]


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
