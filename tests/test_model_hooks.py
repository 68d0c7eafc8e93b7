"""Model-signal hooks: which saves fire which events, transitions, failures, checks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from pytest_django import DjangoAssertNumQueries, Settings

from django_eventtrack import model_hooks
from django_eventtrack.model_hooks import model_event, register
from django_eventtrack.models import Event
from django_eventtrack.sandbox import Sandbox
from tests.testapp.models import Order

SHIPPED = {"model": "testapp.Order", "on": "update", "when": {"status": "shipped"}}


def hooked(settings: Settings, *model_events: dict[str, Any]) -> None:
    """Only write the outbox (no sending) with these MODEL_EVENTS."""
    settings.EVENTTRACK = {"DELIVERY": "worker", "MODEL_EVENTS": list(model_events)}


def tracked(name: str | None = None) -> list[Event]:
    events = Event.objects.order_by("created_at")
    return list(events.filter(name=name) if name else events)


@pytest.fixture
def code_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hooks registered in code during the test are forgotten after it."""
    monkeypatch.setattr(model_hooks, "_declared", [])
    yield
    monkeypatch.undo()
    model_hooks.reconnect()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("on", "fired"),
    [
        ("create", [1, 0, 0, 0]),
        ("update", [0, 1, 1, 0]),
        ("save", [1, 1, 1, 0]),
        ("delete", [0, 0, 0, 1]),
    ],
)
def test_each_kind_fires_on_its_signal(settings: Settings, on: str, fired: list[int]) -> None:
    """Events fired by: create, update, update without changes, delete."""
    hooked(settings, {"model": "testapp.Order", "on": on, "event": "order.changed"})
    counts = []
    order = Order.objects.create(reference="A1")
    pk = order.pk
    counts.append(len(tracked()))
    order.note = "gift"
    order.save()
    counts.append(len(tracked()))
    order.save()
    counts.append(len(tracked()))
    order.delete()
    counts.append(len(tracked()))
    assert [
        after - before for before, after in zip([0, *counts[:-1]], counts, strict=True)
    ] == fired
    assert tracked()[0].properties == {"model": "testapp.Order", "id": str(pk)}


@pytest.mark.django_db
def test_a_transition_fires_once_however_often_the_value_is_saved(settings: Settings) -> None:
    hooked(settings, {**SHIPPED, "event": "order.shipped"})
    order = Order.objects.create(reference="A1")
    order.status = "paid"
    order.save()
    assert tracked() == []
    order.status = "shipped"
    order.save()
    order.save()
    order.note = "left at the door"
    order.save()
    Order.objects.get(pk=order.pk).save()
    assert len(tracked("order.shipped")) == 1
    order.status = "returned"
    order.save()
    order.status = "shipped"
    order.save()
    assert len(tracked("order.shipped")) == 2


@pytest.mark.django_db
def test_when_on_create_and_on_save(settings: Settings) -> None:
    hooked(
        settings,
        {**SHIPPED, "event": "order.shipped"},
        {"model": "testapp.Order", "on": "create", "when": {"paid": True}, "event": "order.paid"},
        {"model": "testapp.Order", "on": "save", "when": {"status": "shipped"}, "event": "any"},
    )
    Order.objects.create(reference="A1")
    Order.objects.create(reference="A2", paid=True, status="shipped")
    assert [event.name for event in tracked()] == ["order.paid", "any"]
    later = Order.objects.create(reference="A3")
    later.paid = True
    later.status = "shipped"
    later.save()
    assert [event.name for event in tracked()] == ["order.paid", "any", "order.shipped", "any"]


@pytest.mark.django_db
def test_every_field_of_when_must_match(settings: Settings) -> None:
    hooked(
        settings,
        {
            "model": "testapp.Order",
            "on": "update",
            "when": {"status": "shipped", "paid": "1"},  # converted as the field does
            "event": "order.shipped",
        },
    )
    order = Order.objects.create(reference="A1", status="shipped")
    order.note = "x"
    order.save()
    assert tracked() == []
    order.paid = True
    order.save()
    order.save()
    assert len(tracked()) == 1


@pytest.mark.django_db
def test_a_save_that_does_not_write_the_watched_field_does_not_fire(settings: Settings) -> None:
    hooked(settings, {**SHIPPED, "event": "order.shipped"})
    order = Order.objects.create(reference="A1")
    order.status = "shipped"
    order.note = "x"
    order.save(update_fields=["note"])
    assert tracked() == []
    order.save(update_fields=["status"])
    order.save(update_fields=["status"])
    assert len(tracked()) == 1


@pytest.mark.django_db
def test_watching_costs_no_query(
    settings: Settings, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    hooked(settings, {**SHIPPED, "event": "order.shipped"})
    Order.objects.create(reference="A1")
    with django_assert_num_queries(2):  # SELECT, UPDATE
        order = Order.objects.get()
        order.status = "paid"
        order.save()


@pytest.mark.django_db
def test_a_deferred_watched_field_is_read_once_when_it_is_saved(
    settings: Settings, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    hooked(settings, {**SHIPPED, "event": "order.shipped"})
    Order.objects.create(reference="A1", status="shipped")
    Order.objects.create(reference="A2")
    with django_assert_num_queries(2):  # SELECT; UPDATE of note only, status untouched
        first = Order.objects.defer("status").get(reference="A1")
        first.note = "x"
        first.save()
    first.status = "shipped"
    with django_assert_num_queries(2):  # the old status, then the UPDATE
        first.save()
    assert tracked() == []  # it was already shipped
    second = Order.objects.only("id").get(reference="A2")
    second.status = "shipped"
    second.save()
    second.save()
    assert len(tracked("order.shipped")) == 1


@pytest.mark.django_db
def test_fixture_loading_fires_nothing(settings: Settings) -> None:
    hooked(settings, {"model": "testapp.Order", "on": "save", "event": "order.saved"})
    Order(reference="A1").save_base(raw=True)
    assert tracked() == []


@pytest.mark.django_db
def test_properties_and_identity_by_dotted_path(settings: Settings) -> None:
    hooked(
        settings,
        {
            "model": "testapp.Order",
            "on": "create",
            "event": "product.purchased",
            "properties": "tests.testapp.tracking.order_properties",
            "identity": "tests.testapp.tracking.order_identity",
        },
        {
            "model": "testapp.Order",
            "on": "delete",
            "event": "order.cancelled",
            "identity": "tests.testapp.tracking.order_identity_mapping",
        },
    )
    order = Order.objects.create(reference="A1", customer_profile="P1")
    Order.objects.create(reference="A2")
    order.delete()
    purchased, anonymous, cancelled = tracked()
    assert purchased.properties == {"reference": "A1", "status": "new"}
    assert purchased.identity == {"profile": "P1"}
    assert anonymous.identity == {}
    assert cancelled.identity == {"user_id": "customer-A1", "profile": "P1"}


@pytest.mark.django_db
@pytest.mark.usefixtures("code_hooks")
def test_hooks_declared_in_code(settings: Settings) -> None:
    hooked(settings)

    @model_event(Order, on="update", when={"status": "shipped"}, event="order.shipped")
    def shipped_properties(order: Order) -> dict[str, str]:
        return {"order": order.reference}

    register("testapp.Order", "create", "order.placed", identity=lambda order: {"profile": "P9"})
    order = Order.objects.create(reference="A1")
    order.status = "shipped"
    order.save()
    order.save()
    placed, shipped = tracked()
    assert (placed.name, placed.identity) == ("order.placed", {"profile": "P9"})
    assert (shipped.name, shipped.properties) == ("order.shipped", {"order": "A1"})
    assert shipped_properties(order) == {"order": "A1"}  # the function is left as it was


@pytest.mark.django_db
def test_reconnecting_never_fires_twice(settings: Settings) -> None:
    hooked(settings, {"model": "testapp.Order", "on": "create", "event": "order.placed"})
    model_hooks.reconnect()
    model_hooks.connect_configured()
    Order.objects.create(reference="A1")
    assert len(tracked()) == 1


@pytest.mark.django_db
def test_changing_settings_replaces_the_hooks(settings: Settings) -> None:
    hooked(settings, {"model": "testapp.Order", "on": "create", "event": "order.placed"})
    hooked(settings)
    Order.objects.create(reference="A1")
    assert tracked() == []


BROKEN = {
    "model": "testapp.Order",
    "on": "create",
    "event": "bad",
    "properties": "tests.testapp.tracking.broken_properties",
}
GOOD = {"model": "testapp.Order", "on": "create", "event": "good"}


@pytest.mark.django_db
def test_a_raising_hook_is_logged_and_the_save_goes_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    hooked(settings, BROKEN, GOOD)
    with caplog.at_level(logging.ERROR, logger="django_eventtrack"), transaction.atomic():
        Order.objects.create(reference="A1")
        assert Order.objects.count() == 1  # the transaction is still usable
    assert [event.name for event in tracked()] == ["good"]
    [failure] = caplog.records
    assert failure.getMessage().startswith(
        "EVENTTRACK[\"MODEL_EVENTS\"][0]: tracking 'bad' for testapp.Order pk="
    )
    assert failure.exc_info is not None
    assert "cannot describe A1" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("raise_on_invalid", [True, False])
def test_an_invalid_event_is_logged_whatever_raise_on_invalid_says(
    settings: Settings, caplog: pytest.LogCaptureFixture, raise_on_invalid: bool
) -> None:
    hooked(settings, {**BROKEN, "properties": "tests.testapp.tracking.unserialisable_properties"})
    settings.EVENTTRACK = {**settings.EVENTTRACK, "RAISE_ON_INVALID": raise_on_invalid}
    with caplog.at_level(logging.ERROR, logger="django_eventtrack"):
        Order.objects.create(reference="A1")
    assert tracked() == []
    [failure] = caplog.records
    assert "'bad'" in failure.getMessage()
    assert "properties.order is a Order, which is not JSON" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_committed_save_is_delivered_and_a_rolled_back_one_sends_nothing(
    settings: Settings, vendors: Sandbox
) -> None:
    settings.EVENTTRACK = {
        **settings.EVENTTRACK,
        "MODEL_EVENTS": [
            {
                **SHIPPED,
                "event": "order.shipped",
                "properties": "tests.testapp.tracking.order_as_object",
                "identity": "tests.testapp.tracking.order_identity",
                "vendors": ["hellotext"],
            }
        ],
    }
    vendors.state("hellotext").add_profile("P1")
    order = Order.objects.create(reference="A1", customer_profile="P1")

    def ship_then_fail() -> None:
        with transaction.atomic():
            order.status = "shipped"
            order.save()
            raise RuntimeError("payment reversed")

    with pytest.raises(RuntimeError):
        ship_then_fail()
    assert tracked() == []
    assert vendors.requests() == []
    order = Order.objects.get()  # Django does not roll the instance back; reload it
    with transaction.atomic():
        order.status = "shipped"
        order.save()
        assert vendors.requests() == []  # nothing leaves before the commit
    [request] = vendors.wait_for(1, "hellotext")
    assert request.accepted
    assert len(tracked("order.shipped")) == 1


# -- declarations the system check refuses -----------------------------------------------

VALID = {"model": "testapp.Order", "on": "create", "event": "order.placed"}


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"on": "create", "event": "x"}, '["model"]: must be "app_label.ModelName"'),
        ({**VALID, "model": "shop.Order"}, '["model"]: names no installed model'),
        ({**VALID, "model": "Order"}, '["model"]: names no installed model'),
        ({**VALID, "on": "saved"}, '["on"]: must be one of create, update, save, delete'),
        ({**VALID, "event": None}, '["event"]: is required'),
        ({**VALID, "event": "order placed"}, "[\"event\"]: event name 'order placed' may only"),
        ({**VALID, "when": {"colour": "red"}}, "[\"when\"]: testapp.Order has no field 'colour'"),
        (
            {**VALID, "when": {"paid": "maybe"}},
            "[\"when\"]: 'maybe' is not a valid testapp.Order.paid",
        ),
        ({**VALID, "when": {}}, '["when"]: must be a non-empty dict'),
        ({**VALID, "on": "delete", "when": {"paid": True}}, '["when"]: is not supported'),
        (
            {**VALID, "properties": "tests.testapp.tracking.nothing"},
            '["properties"]: cannot import',
        ),
        (
            {**VALID, "properties": "tests.testapp.tracking.NOT_CALLABLE"},
            "is a int, not a callable",
        ),
        ({**VALID, "identity": 3}, '["identity"]: must be a callable or a dotted path'),
        ({**VALID, "vendors": ["segment"]}, "[\"vendors\"]: names unknown vendors ['segment']"),
        ({**VALID, "evnt": "x"}, "[1] has unknown keys ['evnt']"),
    ],
)
@pytest.mark.django_db
def test_a_bad_declaration_is_a_check_error_and_is_skipped(
    settings: Settings, declaration: dict[str, Any], message: str
) -> None:
    hooked(settings, VALID, declaration)
    errors = model_hooks.check_model_events()
    assert len(errors) == 1, errors
    assert errors[0].id == "eventtrack.E101"
    assert errors[0].msg.startswith('EVENTTRACK["MODEL_EVENTS"][1]')
    assert message in errors[0].msg
    Order.objects.create(reference="A1").delete()
    assert [event.name for event in tracked()] == ["order.placed"]


@pytest.mark.usefixtures("code_hooks")
def test_a_bad_declaration_in_code_is_reported_where_it_was_made(settings: Settings) -> None:
    hooked(settings)

    @model_event("testapp.Order", on="update", when={"colour": "red"}, event="order.shipped")
    def shipped(order: Order) -> dict[str, str]:
        return {}

    register("testapp.Order", "created", "order.placed")
    messages = [error.msg for error in model_hooks.check_model_events()]
    assert messages == [
        "@model_event on tests.test_model_hooks.test_a_bad_declaration_in_code_is_reported_"
        "where_it_was_made.<locals>.shipped, argument when: testapp.Order has no field 'colour'",
        "register('testapp.Order', on='created', event='order.placed'), argument on: must be one "
        "of create, update, save, delete; got 'created'",
    ]


def test_a_broken_eventtrack_setting_is_left_to_the_configuration_check(
    settings: Settings,
) -> None:
    settings.EVENTTRACK = {"MODEL_EVENTS": "testapp.Order"}
    assert model_hooks.check_model_events() == []


def test_the_first_import_path_still_serves_register_and_model_event() -> None:
    """Projects declare hooks with ``from django_eventtrack.hooks import ...`` (the
    documented path before the module was named for what it holds)."""
    from django_eventtrack import hooks

    assert (hooks.register, hooks.model_event) == (register, model_event)
