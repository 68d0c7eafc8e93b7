"""Hellotext: the request its adapter builds and what it skips (docs/vendors/hellotext.md),
its identify flow without a network, what the sandbox accepts and refuses as Hellotext, and
the library against the sandbox's Hellotext, which knows no object id, profile, session or
custom action it was not told of (items 1 to 4 of issue 14)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.checks import run_checks
from django.utils import timezone

from django_eventtrack import identify, track
from django_eventtrack.conf import get_config
from django_eventtrack.core.event import IDENTIFY, Identity, TrackedEvent
from django_eventtrack.delivery.http import Attempt
from django_eventtrack.delivery.sender import drain
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery, VendorProfile, VendorSession
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import OutcomeKind, VendorRequest, VendorResponse
from django_eventtrack.vendors.hellotext import UNSEEN_SESSION_RETRY, UNSEEN_SESSION_WAIT
from tests.sandbox.helpers import AUTH_HEADERS, MISSING, hellotext_event
from tests.vendors.helpers import ORDER, VISITOR, WHEN_TEXT, Status, body_for, delivery, make_due

TEE = {"reference": "TEE-1", "name": "Organic cotton tee", "price": {"amount": 29.9}}


def events_to(sandbox: Sandbox) -> list[Any]:
    """Every request to Hellotext's events endpoint, accepted or not, oldest first."""
    return [r for r in sandbox.requests("hellotext") if r.path.endswith("/v1/attribution/events")]


# -- the request ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "properties", "expected"),
    [
        pytest.param(
            "product.purchased",
            {"currency": "USD", "color": "red"},
            {"metadata": {"color": "red"}},
            id="currency-dropped-without-amount",
        ),
        pytest.param(
            "product.purchased",
            {"amount": "89.90", "currency": "EUR"},
            {"amount": 89.9, "currency": "EUR"},
            id="numeric-string-amount",
        ),
        pytest.param(
            "product.purchased",
            {"amount": 12},
            {"amount": 12},
            id="amount-without-currency",
        ),
        pytest.param(
            "product.purchased",
            {"amount": "cheap", "currency": "USD"},
            {"metadata": {"amount": "cheap"}},
            id="non-numeric-amount-stays-metadata",
        ),
        pytest.param(
            "product.purchased",
            {"amount": True},
            {"metadata": {"amount": True}},
            id="boolean-is-not-an-amount",
        ),
        pytest.param(
            "order.placed",
            {"order": {"reference": "A-1", "source": "shop"}},
            {"object_parameters": {"reference": "A-1", "source": "shop"}},
            id="noun-dict-is-object-parameters",
        ),
        pytest.param(
            "order.shipped",
            {"order": {"reference": "A-1", "total": {"amount": 5, "currency": "EUR"}}},
            {
                "object_parameters": {
                    "source": "django",
                    "reference": "A-1",
                    "total": {"amount": 5, "currency": "EUR"},
                }
            },
            id="our-source-added-to-match-on",
        ),
        pytest.param(
            "order.placed",
            {"order": "A-1"},
            {"object_parameters": {"source": "django", "reference": "A-1"}},
            id="noun-string-is-our-reference-not-a-hellotext-id",
        ),
        pytest.param(
            "product.viewed",
            {"object": "explicit", "product": "noun", "object_type": "product"},
            {"object": "explicit", "object_type": "product", "metadata": {"product": "noun"}},
            id="explicit-object-wins",
        ),
        pytest.param(
            "product.viewed",
            {"object_parameters": {"name": "Shoe"}, "product": "noun"},
            {
                "object_parameters": {"source": "django", "name": "Shoe"},
                "metadata": {"product": "noun"},
            },
            id="explicit-object-parameters-wins",
        ),
        pytest.param(
            "product.viewed",
            {"product": 123},
            {"object_parameters": {"source": "django", "reference": "123"}},
            id="noun-integer-is-a-reference",
        ),
        pytest.param(
            "product.viewed",
            {"product": 1.5, "object": "ht-id-1"},
            {"object": "ht-id-1", "metadata": {"product": 1.5}},
            id="explicit-object-is-a-hellotext-id",
        ),
        pytest.param(
            "page.viewed",
            {"url": "https://shop.example/", "title": "Home"},
            {"url": "https://shop.example/", "metadata": {"title": "Home"}},
            id="url-promoted",
        ),
        pytest.param(
            "product.purchased",
            {"amount": 5, "currency": "usd"},
            {"amount": 5, "currency": "USD"},
            id="currency-upper-case",
        ),
        pytest.param(
            "order.placed",
            {
                "order": {
                    "reference": "A-1",
                    "total": {"amount": 5, "currency": "eur"},
                    "items": [
                        {"product": "P", "price": {"amount": 5, "currency": " eur"}},
                        {"product": {"name": "Tee", "price": {"amount": 1, "currency": "Eur"}}},
                    ],
                }
            },
            {
                "object_parameters": {
                    "source": "django",
                    "reference": "A-1",
                    "total": {"amount": 5, "currency": "EUR"},
                    "items": [
                        {"product": "P", "price": {"amount": 5, "currency": "EUR"}},
                        {"product": {"name": "Tee", "price": {"amount": 1, "currency": "EUR"}}},
                    ],
                }
            },
            id="object-currencies-upper-case",
        ),
    ],
)
def test_hellotext_body_fields(make_adapter, make_event, name, properties, expected):
    body = body_for(make_adapter("hellotext"), make_event(name, properties))
    fixed = {"action": name, "profile": "prof-1", "session": "sess-1", "tracked_at": WHEN_TEXT}
    assert body == fixed | expected


@pytest.mark.parametrize(
    "identity",
    [VISITOR, Identity(profile="p"), Identity(session="s")],
    ids=["everything", "profile", "session"],
)
def test_hellotext_never_sends_legacy_identity_keys(make_adapter, make_event, identity):
    body = body_for(make_adapter("hellotext"), make_event(identity=identity))
    assert not {"profile_id", "session_id", "product_id"} & body.keys()


@pytest.mark.parametrize(
    ("name", "properties", "reason"),
    [
        ("user.signed_up", {}, "'user.signed_up' is not a Hellotext action"),
        ("short_link.clicked", {}, "records itself"),
        ("order.placed", {}, "order.placed needs its order"),
        ("order.placed", {"order": {"reference": "A"}}, None),
        ("subscribed", {}, None),
        ("product.viewed", {"product": "TEE-1"}, "the product 'TEE-1' has no name"),
        ("product.viewed", {"product": {"reference": "TEE-1", "name": ""}}, "has no name"),
        ("product.purchased", {"object_parameters": {"sku": "T1"}}, "the product has no name"),
        ("product.viewed", {"product": "TEE-1", "name": "Tee"}, None),
        ("product.viewed", {"product": {"reference": "TEE-1", "name": "Tee"}}, None),
        ("product.viewed", {"object": "ht-product-1"}, None),
        ("order.placed", {"order": "A-1"}, None),  # an order needs no name
        ("order.placed", {"order": "A", "amount": 5, "currency": "usd"}, None),
        (
            "order.placed",
            {"order": "A", "amount": 5, "currency": "dollars"},
            "the event's currency 'dollars' is not an ISO 4217 currency code",
        ),
        (
            "order.placed",
            {"order": {"reference": "A", "total": {"amount": 5, "currency": "EURO"}}},
            "object_parameters.total.currency 'EURO' is not an ISO 4217",
        ),
        (
            "order.placed",
            {"order": {"reference": "A", "items": [{"product": "P", "price": {"currency": 1}}]}},
            "object_parameters.items[0].price.currency 1 is not",
        ),
    ],
)
def test_hellotext_skips_what_it_would_refuse(make_adapter, make_event, name, properties, reason):
    skip = make_adapter("hellotext").skip_reason(make_event(name, properties))
    assert skip is None if reason is None else reason in skip


def test_a_nameless_product_names_the_setting_for_a_synced_catalogue(make_adapter, make_event):
    event = make_event("product.viewed", {"product": "TEE-1"})
    reason = make_adapter("hellotext").skip_reason(event)
    assert "give the event a 'name' property" in reason
    assert 'EVENTTRACK["VENDORS"]["hellotext"]["PRODUCTS_SYNCED"] = True' in reason
    synced = make_adapter("hellotext", options={"PRODUCTS_SYNCED": True, "ACTIONS": frozenset()})
    assert synced.skip_reason(event) is None


def test_hellotext_notes_revenue_it_cannot_send(make_adapter, make_event):
    request = make_adapter("hellotext").build_request(
        [make_event(properties={"product": "p", "amount": "cheap", "currency": "USD"})]
    )
    (notes,) = request.notes.values()
    assert notes == (
        "amount is not a number: sent in metadata, not as revenue",
        "currency not sent: Hellotext refuses a currency without amount",
    )


def test_hellotext_notes_currencies_it_upper_cases(make_adapter, make_event):
    order = {"reference": "A", "total": {"amount": 5, "currency": "eur"}}
    event = make_event("order.placed", {"order": order, "amount": 5, "currency": "eur"})
    request = make_adapter("hellotext").build_request([event])
    assert request.notes[str(event.id)] == (
        "object_parameters.total.currency: 'eur' sent as 'EUR' (ISO 4217)",
        "currency: 'eur' sent as 'EUR' (ISO 4217)",
    )
    assert event.properties["order"]["total"]["currency"] == "eur"  # the event is untouched


# -- identify() without a network (the adapter is pure) ---------------------------------


class DictProfiles:
    def __init__(self, **known: str) -> None:
        self.known = dict(known)
        self.sessions: dict[str, str] = {}

    def get(self, vendor: str, user_id: str) -> str | None:
        return self.known.get(user_id)

    def remember(self, vendor: str, user_id: str, profile_id: str) -> str:
        return self.known.setdefault(user_id, profile_id)

    def forget(self, vendor: str, profile_id: str) -> None:
        self.known = {user: kept for user, kept in self.known.items() if kept != profile_id}

    def remember_session(self, vendor: str, session: str, profile_id: str) -> None:
        self.sessions[session] = profile_id


def answer(status: int, body: bytes) -> Any:
    """A fake ``send`` that answers every request with ``status`` and ``body``."""
    sent: list[VendorRequest] = []

    def send(request: VendorRequest) -> Attempt:
        sent.append(request)
        response = VendorResponse(status, {}, body)
        return Attempt(
            get_config().adapters["hellotext"](config()).classify(response), response, 0.0
        )

    send.sent = sent  # type: ignore[attr-defined]
    return send


def config() -> Any:
    from django.test import override_settings

    with override_settings(EVENTTRACK={"VENDORS": {"hellotext": {"API_TOKEN": "t"}}}):
        return get_config().vendors["hellotext"]


def hellotext_identify(session: str | None = "S1") -> TrackedEvent:
    return TrackedEvent.create(
        "identify",
        {"email": "a@b.c"},
        identity=Identity(user_id="7", session=session),
        kind=IDENTIFY,
    )


def test_hellotext_attaches_to_the_remembered_profile_without_creating_one() -> None:
    adapter = get_config().adapters["hellotext"](config())
    send = answer(200, b'{"id":"S1","type":"session","profile":"P7"}')
    profiles = DictProfiles(**{"7": "P7"})
    outcome = adapter.send_identify(hellotext_identify(), send, profiles)
    assert outcome.kind is OutcomeKind.DELIVERED
    assert profiles.sessions == {"S1": "P7"}
    (request,) = send.sent
    assert (request.method, request.url, request.body) == (
        "PATCH",
        "https://api.hellotext.com/v1/sessions/S1",
        {"profile": "P7"},
    )


def test_hellotext_profile_creation_problems_are_reported() -> None:
    adapter = get_config().adapters["hellotext"](config())
    no_id = adapter.send_identify(hellotext_identify(), answer(201, b"{}"), DictProfiles())
    assert no_id.kind is OutcomeKind.FAILED
    assert "no id" in no_id.message
    refused = adapter.send_identify(
        hellotext_identify(), answer(422, b'{"errors":[{"message":"bad email"}]}'), DictProfiles()
    )
    assert refused.kind is OutcomeKind.FAILED
    assert "bad email" in refused.message
    down = adapter.send_identify(hellotext_identify(), answer(503, b""), DictProfiles())
    assert down.kind is OutcomeKind.RETRY


def test_hellotext_without_a_session_only_creates_the_profile() -> None:
    adapter = get_config().adapters["hellotext"](config())
    profiles = DictProfiles()
    send = answer(201, b'{"id":"P9","type":"profile"}')
    outcome = adapter.send_identify(hellotext_identify(session=None), send, profiles)
    assert outcome.kind is OutcomeKind.DELIVERED
    assert profiles.known == {"7": "P9"}
    assert [request.method for request in send.sent] == ["POST"]


# --- the sandbox: Hellotext's rules ------------------------------------------------------------


def test_hellotext_token_check_endpoint(sandbox, client):
    url = sandbox.api_url("hellotext") + "/v1/profiles"

    good = client.get(url, headers=AUTH_HEADERS["hellotext"], timeout=2)
    bad = client.get(url, headers={"Authorization": "Bearer nope"}, timeout=2)

    assert (good.status_code, good.json()) == (200, {"data": []})
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("body", "error_type", "parameter"),
    [
        ({"profile": "P"}, "parameter_missing", "action"),
        (hellotext_event(action=""), "parameter_missing", "action"),
        (hellotext_event(action=5), "invalid", "action"),
        ({"action": "product.viewed", "object": "O"}, "parameter_missing", "profile"),
        (hellotext_event(profile=""), "invalid", "profile"),
        (hellotext_event(session=7), "invalid", "session"),
        (hellotext_event(profile_id="P"), "invalid", "profile_id"),
        (hellotext_event(session_id="S"), "invalid", "session_id"),
        (hellotext_event(product="O"), "invalid", "product"),
        (hellotext_event(product_id="O"), "invalid", "product_id"),
        (hellotext_event(currency="USD"), "parameter_missing", "amount"),
        (hellotext_event(amount="89.90"), "invalid", "amount"),
        (hellotext_event(amount=True), "invalid", "amount"),
        (hellotext_event(tracked_at="2026-08-07T12:30:00"), "invalid", "tracked_at"),
        (hellotext_event(tracked_at="yesterday"), "invalid", "tracked_at"),
        (hellotext_event(tracked_at=1786104000.5), "invalid", "tracked_at"),
        (hellotext_event(tracked_at=None), "invalid", "tracked_at"),
        (hellotext_event(metadata=["a"]), "invalid", "metadata"),
        (hellotext_event(object_parameters="x"), "invalid", "object_parameters"),
        (hellotext_event(object=1), "invalid", "object"),
        (hellotext_event(object_type=1), "invalid", "object_type"),
        (hellotext_event(url=1), "invalid", "url"),
        (hellotext_event(page={"url": "x"}), "invalid", "page"),
        ({"action": "page.viewed", "session": "S"}, "parameter_missing", "url"),
        (hellotext_event(amount=5, currency="usd"), "invalid", "currency"),
        (hellotext_event(amount=5, currency="DOLLARS"), "invalid", "currency"),
        (hellotext_event(amount=5, currency="ABC"), "invalid", "currency"),
        (hellotext_event(tracked_at=1786104000000), "invalid", "tracked_at"),
    ],
)
def test_hellotext_rejects_with_422(send, body, error_type, parameter):
    response = send("hellotext", body)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["type"], error["parameter"]) == (error_type, parameter)
    assert error["message"]


# --- the sandbox: what Hellotext knows decides what it accepts ----------------------------


def hellotext_error(response: requests.Response) -> tuple[int, str, str | None]:
    [error] = response.json()["errors"]
    assert error["message"]
    return response.status_code, error["type"], error.get("parameter")


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (hellotext_event(action="signed.up"), (404, "not_found", "action")),
        (hellotext_event(action="short_link.clicked"), (404, "not_found", "action")),
        (hellotext_event(object="UNKNOWN"), (404, "not_found", "object")),
        (hellotext_event(profile="UNKNOWN"), (404, "not_found", "profile")),
        (hellotext_event(object=MISSING), (422, "parameter_missing", "object")),
        (
            hellotext_event(object=MISSING, object_parameters={"reference": "TEE-9"}),
            (422, "parameter_missing", "object_parameters.name"),
        ),
        (
            hellotext_event(object=MISSING, object_parameters={"name": "Tee", "price": 29.9}),
            (422, "object_invalid", "object_parameters.price"),
        ),
        (
            hellotext_event(object=MISSING, object_parameters={"name": "Tee", "items": [1]}),
            (422, "object_invalid", "object_parameters.items"),
        ),
        (
            hellotext_event(
                object=MISSING,
                object_parameters={"name": "Tee", "price": {"amount": 1, "currency": "usd"}},
            ),
            (422, "object_invalid", "object_parameters.price"),
        ),
        (
            {
                "action": "order.placed",
                "profile": "PROFILE_ID",
                "object_parameters": {"reference": ""},
            },
            (422, "object_invalid", "object_parameters.reference"),
        ),
    ],
)
def test_hellotext_refuses_what_it_does_not_know(send, body, answer):
    assert hellotext_error(send("hellotext", body)) == answer


def test_hellotext_finds_or_creates_objects_by_reference_and_source(sandbox, send):
    product = {"reference": "TEE-9", "source": "shop", "name": "Tee"}
    for name in ("Tee", "Tee, renamed"):
        body = hellotext_event(object=MISSING, object_parameters={**product, "name": name})
        assert send("hellotext", body).status_code == 200
    assert (
        send(
            "hellotext",
            hellotext_event(
                object=MISSING, object_parameters={"reference": "TEE-9", "source": "shop"}
            ),
        ).status_code
        == 200
    )  # found: no name needed
    found = sandbox.state("hellotext").object_id("product", "TEE-9", "shop")
    assert found is not None
    assert [event["object"] for event in sandbox.state("hellotext").events] == [found] * 3
    assert send("hellotext", hellotext_event(object=found)).status_code == 200


def test_hellotext_refuses_a_session_that_belongs_to_another_profile(sandbox, send):
    other = sandbox.state("hellotext").add_profile()
    assert sandbox.state("hellotext").attach("S-shared", other)[0] == 200
    mine = hellotext_event(session="S-shared")
    assert hellotext_error(send("hellotext", mine)) == (422, "identity_assigned", "session")
    assert send("hellotext", hellotext_event(session="S-shared", profile=other)).status_code == 200
    assert (
        send("hellotext", hellotext_event(profile=MISSING, session="S-shared")).status_code == 200
    )


def test_hellotext_has_not_seen_a_session_until_the_browser_brings_it(sandbox, send):
    sandbox.state("hellotext").forget_session("S-new")
    body = hellotext_event(profile=MISSING, session="S-new")
    assert hellotext_error(send("hellotext", body)) == (404, "not_found", "session")
    sandbox.state("hellotext").see_session("S-new")
    assert send("hellotext", body).status_code == 200


def test_unseen_hellotext_sessions_are_seeded_over_http(sandbox, send, client):
    seed = f"{sandbox.url}/_sandbox/seed"
    answer = client.post(seed, json={"vendor": "hellotext", "unseen_sessions": ["S-1"]}, timeout=2)
    assert answer.json() == {"ok": True}
    body = hellotext_event(profile=MISSING, session="S-1")
    assert hellotext_error(send("hellotext", body)) == (404, "not_found", "session")
    client.post(seed, json={"vendor": "hellotext", "seen_sessions": ["S-1"]}, timeout=2)
    assert send("hellotext", body).status_code == 200
    client.post(seed, json={"vendor": "hellotext", "unseen_sessions": ["S-2"]}, timeout=2)
    sandbox.reset()  # seeded, not an option the sandbox started with: forgotten
    assert "S-2" not in sandbox.state("hellotext").unseen


def test_unseen_hellotext_sessions_given_when_started_outlast_a_reset() -> None:
    with Sandbox(options={"hellotext": {"unseen_sessions": ["S-1"]}}) as box:
        box.reset()
        assert box.state("hellotext").unseen == {"S-1"}


def test_hellotext_custom_actions_exist_once_created(sandbox, send):
    body = hellotext_event(action="appointment.booked", object=MISSING)
    assert hellotext_error(send("hellotext", body)) == (404, "not_found", "action")
    sandbox.state("hellotext").add_action("appointment.booked")
    assert send("hellotext", body).status_code == 200  # custom actions need no object
    with pytest.raises(ValueError, match="own actions"):
        sandbox.state("hellotext").add_action("order.placed")
    with pytest.raises(ValueError, match=r"noun\.verb"):
        sandbox.state("hellotext").add_action("Booked")


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


def test_a_nameless_product_never_reaches_hellotext(configure: Any) -> None:
    """Hellotext can create a product it does not know only with a name, which only the
    shop can give: a product described without one is skipped, saying which property."""
    sandbox = configure()
    unknown = track("product.viewed", {"product": "CAP-1"}, session="S1", vendors=["hellotext"])
    skipped = delivery("hellotext", unknown)
    assert skipped.status == Status.SKIPPED
    assert "has no name" in skipped.last_error
    assert "'name' property" in skipped.last_error
    assert sandbox.requests("hellotext") == []


def test_a_synced_catalogue_sends_products_by_reference_alone(configure: Any) -> None:
    """With PRODUCTS_SYNCED the shop says Hellotext has every product: a bare reference
    finds it; one Hellotext does not have after all is Hellotext's own refusal."""
    sandbox = configure({"hellotext": {"PRODUCTS_SYNCED": True}})
    sandbox.state("hellotext").add_object("product", reference="MUG-1", source="django", name="Mug")
    found = track("product.viewed", {"product": "MUG-1"}, session="S1", vendors=["hellotext"])
    unknown = track("product.viewed", {"product": "CAP-1"}, session="S1", vendors=["hellotext"])
    assert delivery("hellotext", found).status == Status.DELIVERED
    refused = delivery("hellotext", unknown)
    assert (refused.status, refused.last_status) == (Status.FAILED, 422)
    assert "name is required to create a product" in refused.last_error


def test_a_lower_case_currency_reaches_hellotext_as_its_iso_code(configure: Any) -> None:
    sandbox = configure()
    order = {"reference": "A-1", "total": {"amount": 29.9, "currency": "usd"}}
    event = track(
        "order.placed",
        {"order": order, "amount": 29.9, "currency": "usd"},
        session="S1",
        vendors=["hellotext"],
    )
    sent = delivery("hellotext", event)
    assert sent.status == Status.DELIVERED
    (request,) = sandbox.requests("hellotext")
    assert request.body["currency"] == "USD"
    assert request.body["object_parameters"]["total"]["currency"] == "USD"
    assert "usd" not in request.raw
    assert "currency: 'usd' sent as 'USD' (ISO 4217)" in sent.adjustments


def test_a_currency_that_is_no_iso_code_never_reaches_hellotext(configure: Any) -> None:
    sandbox = configure()
    event = track(
        "order.placed",
        {"order": "A-1", "amount": 29.9, "currency": "dollars"},
        session="S1",
        vendors=["hellotext"],
    )
    skipped = delivery("hellotext", event)
    assert skipped.status == Status.SKIPPED
    assert "'dollars' is not an ISO 4217 currency code" in skipped.last_error
    assert sandbox.requests("hellotext") == []


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
            {"model": "testapp.Order", "on": "create", "event": "order.placed", **WITH_ORDER},
            {"model": "testapp.Order", "on": "create", "event": "user.signed_up"},
            {"model": "testapp.Order", "on": "update", "event": "order.paid", **WITH_ORDER},
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
    assert (
        "Hellotext will skip every one of these events: 'user.signed_up' is not a Hellotext action"
        in warnings[0].msg
    )


#: Properties naming the order, which Hellotext's order actions need as their object.
WITH_ORDER = {"properties": "tests.testapp.tracking.order_as_object"}


def test_the_system_check_warns_of_a_hook_whose_default_properties_hellotext_skips(
    configure: Any,
) -> None:
    """The documented ``order.shipped`` hook without properties sends ``model`` and ``id``:
    no order, so Hellotext skips every one; with its properties, no warning."""
    hook = {"model": "testapp.Order", "on": "update", "when": {"status": "shipped"}}
    configure(MODEL_EVENTS=[{**hook, "event": "order.shipped"}])
    (warning,) = [m for m in run_checks(tags=["eventtrack"]) if m.id == "eventtrack.W101"]
    assert warning.msg.startswith(
        'EVENTTRACK["MODEL_EVENTS"][0]: Hellotext will skip every one of these events: '
        "Hellotext's order.shipped needs its order: give the event the property 'order'"
    )
    assert '"properties"' in (warning.hint or "")

    configure(MODEL_EVENTS=[{**hook, "event": "order.shipped", **WITH_ORDER}])
    assert not [m for m in run_checks(tags=["eventtrack"]) if m.id == "eventtrack.W101"]


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


# -- 8. A 2xx that says it refused ----------------------------------------------------------------


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
