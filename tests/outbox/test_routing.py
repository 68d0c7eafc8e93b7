"""``outbox.routing``: which vendors get an event, and why not the others."""

from __future__ import annotations

import pytest
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.errors import ConfigurationError
from django_eventtrack.models import Delivery
from django_eventtrack.outbox import fanout
from django_eventtrack.sandbox import Sandbox
from tests.processes.helpers import VENDORS

Status = Delivery.Status


@pytest.mark.django_db
def test_a_vendor_that_cannot_take_the_event_gets_a_skipped_row(worker_mode: Sandbox) -> None:
    event = track("user.signed_up", user_id=7)
    assert event is not None
    assert fanout.write_now([event.id]) == 1
    hellotext = Delivery.objects.get(event_id=event.id, vendor="hellotext")
    assert hellotext.status == Status.SKIPPED
    assert "Hellotext needs a profile or session" in hellotext.last_error
    pending = Delivery.objects.filter(event_id=event.id, status=Status.PENDING)
    assert pending.count() == len(VENDORS) - 1


@pytest.mark.django_db
def test_events_filter_and_explicit_vendors(settings: Settings, sandbox: Sandbox) -> None:
    vendor_settings = sandbox.vendor_settings()
    vendor_settings["hackle"]["EVENTS"] = ["order.shipped"]  # type: ignore[assignment]
    settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "worker"}
    event = track("product.purchased", profile="P1")
    assert event is not None
    only = track("product.purchased", profile="P1", vendors=["browsee"])
    assert only is not None
    assert fanout.write_now([event.id, only.id]) == 2
    assert "hackle" not in set(
        Delivery.objects.filter(event_id=event.id).values_list("vendor", flat=True)
    )
    assert list(Delivery.objects.filter(event_id=only.id).values_list("vendor", flat=True)) == [
        "browsee"
    ]
    with pytest.raises(ConfigurationError, match="unknown vendor segment"):
        track("product.purchased", profile="P1", vendors=["segment"])


@pytest.mark.django_db
def test_one_vendor_named_as_a_string_is_that_vendor(worker_mode: Sandbox) -> None:
    only = track("product.purchased", profile="P1", vendors="hackle")
    assert only is not None
    fanout.write_now([only.id])
    assert list(Delivery.objects.values_list("vendor", flat=True)) == ["hackle"]
    with pytest.raises(ConfigurationError) as caught:
        track("product.purchased", profile="P1", vendors="hackel")
    assert str(caught.value).startswith(
        "unknown vendor hackel; the vendors are acme, browsee, hackle, hellotext, primedata"
    )
