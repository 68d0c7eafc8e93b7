"""atrack() and aidentify(): the async forms, with track()'s and identify()'s guarantees,
from plain asyncio code (a real ASGI server is in tests/test_servers.py)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from pytest_django import Settings

import django_eventtrack
from django_eventtrack import aidentify, atrack
from django_eventtrack.core.event import IDENTIFY
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import Delivery, Event
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.web import identity

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_async_forms_are_exported_and_awaitable() -> None:
    assert {"atrack", "aidentify"} <= set(django_eventtrack.__all__)
    assert inspect.iscoroutinefunction(django_eventtrack.atrack)
    assert inspect.iscoroutinefunction(django_eventtrack.aidentify)
    from django_eventtrack import api

    assert inspect.iscoroutinefunction(api.atrack)
    assert inspect.signature(api.atrack) == inspect.signature(api.track)


def test_atrack_stores_and_sends_for_the_current_visitor(vendors: Sandbox) -> None:
    with identity.use({"session": "S1", "anonymous_id": "a" * 32}):
        event = asyncio.run(atrack("order.placed", {"amount": 10, "order": "O1"}, user_id="U1"))
    assert event is not None
    stored = Event.objects.get(pk=event.id)
    assert stored.identity == {"user_id": "U1", "session": "S1", "anonymous_id": "a" * 32}
    assert set(stored.deliveries.values_list("status", flat=True)) == {"delivered"}
    assert vendors.events("hellotext")[0]["session"] == "S1"


def test_atrack_follows_tracks_error_policy(settings: Settings, vendors: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="may only contain"):
        asyncio.run(atrack("order placed"))
    settings.EVENTTRACK = {**settings.EVENTTRACK, "RAISE_ON_INVALID": False}
    assert asyncio.run(atrack("order placed")) is None
    assert not Event.objects.exists()


def test_aidentify_sends_the_identify_call(
    settings: Settings, sandbox: Sandbox, django_user_model: type[AbstractBaseUser]
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": sandbox.vendor_settings()["hackle"]},
        "DELIVERY": "sync",
    }
    user: Any = django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="ada", email="ada@example.com", password="not-used"
    )
    event = asyncio.run(aidentify(user, identity={"device_id": "D1"}))
    assert event is not None
    assert event.kind == IDENTIFY
    assert Delivery.objects.get(event_id=event.id).status == Delivery.Status.DELIVERED
    [request] = sandbox.requests("hackle")
    assert request.path == "/hackle/v1/properties"
