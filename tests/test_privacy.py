"""Privacy as data, end to end through the sandbox: consent per purpose, withdrawal, erasure."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import transaction
from pytest_django import Settings

import django_eventtrack
from django_eventtrack import track
from django_eventtrack.core.event import TrackedEvent
from django_eventtrack.delivery import sender
from django_eventtrack.errors import InvalidEvent
from django_eventtrack.models import (
    Delivery,
    ErasureRequest,
    ErasureTask,
    Event,
    PrivacySubject,
    VendorProfile,
    VendorSession,
)
from django_eventtrack.sandbox import Sandbox

BUILT_IN = ("hellotext", "hackle", "browsee", "primedata")
ANALYTICS = ("hackle", "browsee")
MARKETING = ("hellotext", "primedata")


@pytest.fixture
def shop(settings: Settings, sandbox: Sandbox, transactional_db: None) -> Sandbox:
    """The four built-in vendors at the sandbox; nothing sent on commit (a worker drains)."""
    vendor_settings = sandbox.vendor_settings()
    settings.EVENTTRACK = {
        "VENDORS": {name: vendor_settings[name] for name in BUILT_IN},
        "DELIVERY": "worker",
    }
    return sandbox


def about(sandbox: Sandbox, user_id: str) -> dict[str, int]:
    """How many requests each vendor accepted that mention ``user_id`` anywhere."""
    return {
        vendor: sum(1 for record in sandbox.requests(vendor) if user_id in record.raw)
        for vendor in BUILT_IN
    }


def row(event: TrackedEvent | None) -> Event:
    """The stored row of a tracked event."""
    assert event is not None
    return Event.objects.get(pk=event.id)


def statuses(event: TrackedEvent | None) -> dict[str, tuple[str, str]]:
    assert event is not None
    return {
        delivery.vendor: (delivery.status, delivery.last_error)
        for delivery in Delivery.objects.filter(event_id=event.id)
    }


def test_analytics_consent_reaches_analytics_vendors_only(shop: Sandbox) -> None:
    event = track(
        "order.placed", {"order": "O1"}, user_id="U-c", session="S-c", consent=["analytics"]
    )
    sender.drain()

    assert about(shop, "U-c") == {"hellotext": 0, "hackle": 1, "browsee": 1, "primedata": 0}
    assert statuses(event) == {
        "hackle": ("delivered", ""),
        "browsee": ("delivered", ""),
        "hellotext": ("skipped", "no consent for marketing"),
        "primedata": ("skipped", "no consent for marketing"),
    }
    stored = row(event)
    assert stored.identity["consent"] == ["analytics"]


def test_consent_true_and_false(shop: Sandbox) -> None:
    granted = track("order.placed", {"order": "O1"}, user_id="U-t", session="S-t", consent=True)
    refused = track("order.placed", {"order": "O2"}, user_id="U-t", session="S-t", consent=False)
    sender.drain()

    assert {status for status, _ in statuses(granted).values()} == {"delivered"}
    assert set(statuses(refused).values()) == {("skipped", "visitor opted out of tracking")}


def test_a_vendors_purposes_are_a_setting(shop: Sandbox, settings: Settings) -> None:
    vendor_settings = settings.EVENTTRACK["VENDORS"]
    vendor_settings["hackle"] = {**vendor_settings["hackle"], "PURPOSES": "analytics,experiments"}
    settings.EVENTTRACK = {**settings.EVENTTRACK, "VENDORS": vendor_settings}
    event = track("order.placed", {"order": "O1"}, user_id="U-p", consent=["analytics"])
    sender.drain()

    assert statuses(event)["hackle"] == ("skipped", "no consent for experiments")
    assert statuses(event)["browsee"][0] == "delivered"


def test_consent_naming_no_vendors_purpose_is_refused(shop: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="'analytcs', which no vendor serves") as raised:
        track("order.placed", user_id="U-x", consent=["analytcs"])
    assert raised.value.field == "consent"
    with pytest.raises(InvalidEvent, match="True, False or a list of purposes"):
        track("order.placed", user_id="U-x", consent="analytics")


def test_forget_stops_what_waits_and_what_comes(shop: Sandbox) -> None:
    first = track(
        "order.placed", {"order": "O1", "email": "f@example.com"}, user_id="U-f", session="S-f"
    )
    second = track("order.placed", {"order": "O2"}, user_id="U-f", session="S-f")
    other = track("order.placed", {"order": "O9"}, user_id="U-o", session="S-o")
    assert first
    assert second
    assert other

    request = django_eventtrack.forget(user_id="U-f")
    assert track("order.placed", {"order": "O2"}, user_id="U-f") is None
    sender.drain()

    assert about(shop, "U-f") == dict.fromkeys(BUILT_IN, 0)
    assert about(shop, "S-f") == dict.fromkeys(BUILT_IN, 0)
    assert Event.objects.count() == 3  # the new event was not stored
    for event in (first, second):
        stored = Event.objects.get(pk=event.id)
        assert (stored.properties, stored.identity, stored.scrubbed_at is not None) == (
            {},
            {},
            True,
        )
        assert set(statuses(event).values()) == {("skipped", "erased")}
    kept = Event.objects.get(pk=other.id)
    assert kept.properties == {"order": "O9"}
    assert {status for status, _ in statuses(other).values()} == {"delivered"}
    assert request.events_scrubbed == 2
    assert request.deliveries_skipped == 8
    assert sorted(request.tasks.values_list("vendor", flat=True)) == sorted(BUILT_IN)
    # Suppression entries hold no id in the clear.
    assert not PrivacySubject.objects.filter(digest__contains="U-f").exists()


def test_forget_skips_what_a_sender_already_claimed(shop: Sandbox) -> None:
    from datetime import timedelta

    from django_eventtrack.outbox import leases

    event = track("order.placed", {"order": "O1"}, user_id="U-k", session="S-k")
    claim = leases.claim_due({"hackle": 10}, timedelta(seconds=60))
    assert [d.event_id for d in claim.deliveries] == [row(event).id]

    django_eventtrack.forget(user_id="U-k")

    assert leases.sendable([(claim, claim.deliveries)]) == set()


def test_forget_deletes_remembered_profiles_and_sessions(shop: Sandbox) -> None:
    VendorProfile.objects.create(vendor="hellotext", user_id="U-r", profile_id="P-r")
    VendorSession.objects.create(vendor="hellotext", session_id="S-r", profile_id="P-r")
    VendorProfile.objects.create(vendor="hellotext", user_id="U-other", profile_id="P-other")

    request = django_eventtrack.forget(user_id="U-r")

    assert list(VendorProfile.objects.values_list("user_id", flat=True)) == ["U-other"]
    assert not VendorSession.objects.exists()
    assert request.profiles_deleted == 2
    task = request.tasks.get(vendor="hellotext")
    assert "profile P-r" in task.instructions
    assert "user_id U-r" in task.instructions
    assert task.status == ErasureTask.Status.TODO
    assert (task.due_at - request.created_at).days == 30
    # The profile and its session are the person's too: nothing is tracked under them.
    assert track("order.placed", {"order": "O1"}, profile="P-r") is None
    assert track("order.placed", {"order": "O1"}, session="S-r") is None


def test_forget_rolls_back_with_the_callers_transaction(shop: Sandbox) -> None:
    event = track("order.placed", {"order": "O1"}, user_id="U-b", session="S-b")

    def failing_view() -> None:
        with transaction.atomic():
            django_eventtrack.forget(user_id="U-b")
            raise RuntimeError("the caller's view failed")

    with pytest.raises(RuntimeError):
        failing_view()

    assert not ErasureRequest.objects.exists()
    assert not PrivacySubject.objects.exists()
    sender.drain()
    assert {status for status, _ in statuses(event).values()} == {"delivered"}


def test_unforget_tracks_again(shop: Sandbox) -> None:
    django_eventtrack.forget(user_id="U-u")
    assert track("order.placed", {"order": "O1"}, user_id="U-u") is None

    assert django_eventtrack.unforget(user_id="U-u") == 1

    event = track("order.placed", {"order": "O2"}, user_id="U-u", session="S-u")
    sender.drain()
    assert {status for status, _ in statuses(event).values()} == {"delivered"}
    assert not PrivacySubject.objects.exists()


def test_forget_needs_an_id(shop: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="needs the person's ids"):
        django_eventtrack.forget()
    with pytest.raises(TypeError, match="unexpected keyword argument 'email'"):
        django_eventtrack.forget(email="a@example.com")


def test_forget_command(shop: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    event = track("order.placed", {"order": "O1"}, user_id="U-cmd", session="S-cmd")

    call_command("eventtrack_forget", "--user-id", "U-cmd")

    out = capsys.readouterr().out
    assert "1 event scrubbed" in out
    assert "4 waiting deliveries skipped" in out
    assert "hellotext" in out  # a task per vendor, listed
    assert track("order.placed", {"order": "O2"}, user_id="U-cmd") is None
    sender.drain()
    assert about(shop, "U-cmd") == dict.fromkeys(BUILT_IN, 0)
    assert row(event).properties == {}


def test_withdraw_marketing_after_full_consent(shop: Sandbox) -> None:
    event = track("order.placed", {"order": "O1"}, user_id="U-w", session="S-w", consent=True)

    assert django_eventtrack.withdraw_consent(["marketing"], user_id="U-w") == 2
    sender.drain()

    assert about(shop, "U-w") == {"hellotext": 0, "hackle": 1, "browsee": 1, "primedata": 0}
    assert statuses(event)["hellotext"] == ("skipped", "consent withdrawn for marketing")
    assert statuses(event)["primedata"] == ("skipped", "consent withdrawn for marketing")


def test_withdrawal_holds_for_later_events_until_granted(shop: Sandbox) -> None:
    django_eventtrack.withdraw_consent(["marketing"], user_id="U-l")

    later = track("order.placed", {"order": "O1"}, user_id="U-l", session="S-l", consent=True)
    assert later is not None
    assert later.identity.consent == frozenset({"analytics"})
    sender.drain()
    assert statuses(later)["hellotext"] == ("skipped", "no consent for marketing")
    assert Event.objects.get(pk=later.id).identity["consent"] == ["analytics"]

    django_eventtrack.grant_consent(["marketing"], user_id="U-l")
    again = track("order.placed", {"order": "O2"}, user_id="U-l", session="S-l")
    sender.drain()
    assert statuses(again)["hellotext"][0] == "delivered"


def test_withdraw_skips_events_not_fanned_out_yet(shop: Sandbox) -> None:
    event = track("order.placed", {"order": "O1"}, user_id="U-n", session="S-n")
    assert row(event).routes is not None  # no sender has looked yet

    django_eventtrack.withdraw_consent(["analytics"], user_id="U-n")

    assert row(event).routes is None
    assert statuses(event)["hackle"] == ("skipped", "consent withdrawn for analytics")
    assert statuses(event)["hellotext"] == ("pending", "")


def test_withdraw_checks_its_purposes(shop: Sandbox) -> None:
    with pytest.raises(InvalidEvent, match="'sales', which no vendor serves"):
        django_eventtrack.withdraw_consent(["sales"], user_id="U-1")
    with pytest.raises(InvalidEvent, match="at least one purpose"):
        django_eventtrack.withdraw_consent([], user_id="U-1")


def test_identify_takes_consent(shop: Sandbox) -> None:
    event = django_eventtrack.identify(
        user_id="U-i", traits={"email": "i@example.com"}, consent=["analytics"]
    )
    assert event is not None
    sender.drain()
    assert statuses(event)["hellotext"] == ("skipped", "no consent for marketing")


def test_identity_snapshot_keeps_consent(shop: Sandbox) -> None:
    from django_eventtrack.core.event import Identity
    from django_eventtrack.web.identity import restore, snapshot

    kept = snapshot(Identity(user_id="U-s", consent=["analytics"]))
    assert json.loads(json.dumps(kept)) == {"user_id": "U-s", "consent": ["analytics"]}
    event = track("order.shipped", {"order": "O1"}, identity=restore(kept))
    sender.drain()
    assert statuses(event)["primedata"] == ("skipped", "no consent for marketing")


def test_forget_command_needs_an_id(shop: Sandbox) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="give the person's ids: one or more of --user-id"):
        call_command("eventtrack_forget")


def test_unforget_command(shop: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    django_eventtrack.forget(user_id="U-cu")
    call_command("eventtrack_forget", "--user-id", "U-cu", "--unforget")
    assert "1 of the ids given were forgotten" in capsys.readouterr().out
    assert track("order.placed", {"order": "O1"}, user_id="U-cu") is not None
