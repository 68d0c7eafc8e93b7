"""The test helpers users get (django_eventtrack.testing), against the real vendor sandbox.

Every test that captures also proves nothing reached the sandbox: capturing must
never send.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import TestCase, override_settings
from pytest_django import Settings

from django_eventtrack import track
from django_eventtrack.api import identify
from django_eventtrack.delivery import http, sender
from django_eventtrack.delivery.worker import stats_line
from django_eventtrack.models import Delivery
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.testing import (
    BLOCKED,
    CAPTURED,
    EventTrackTestMixin,
    assert_tracked,
    block_http,
    capture_events,
    captured,
)
from tests.processes.helpers import VENDORS

REPO = Path(__file__).resolve().parent.parent
VISITOR = {"user_id": "42", "session": "sess-1"}


def _rolled_back(name: str, **identity: Any) -> None:
    """Track ``name`` in an atomic block that then rolls back (raises ZeroDivisionError)."""
    with transaction.atomic():
        track(name, **identity)
        1 / 0  # noqa: B018


# -- capturing -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_captures_in_a_test_transaction_with_each_vendors_exact_request(vendors: Sandbox) -> None:
    """In a test wrapped in a transaction that never commits (pytest-django's ``db``,
    Django's TestCase), events are captured anyway, with the very request each
    vendor's delivery sends: sending the same rows afterwards delivers exactly those."""
    with capture_events() as events:
        track("order.placed", {"order": "A-1", "amount": Decimal("89.90")}, identity=VISITOR)
        event = events.assert_tracked("order.placed", properties={"amount": 89.9}, user_id=42)

    assert event.vendors == VENDORS
    assert event.identity.session == "sess-1"
    assert event.timestamp.tzinfo is not None
    assert vendors.requests() == []
    # The transaction never committed, so the rows are still pending, as in production
    # before a commit; sending them now must produce exactly the captured requests.
    for vendor in event.vendors:
        sender.drain(vendors=[vendor])
        [received] = vendors.requests(vendor)
        assert received.accepted
        assert received.body == event.payload(vendor)
        assert received.method == event.request(vendor).method
        assert received.path == event.request(vendor).url.removeprefix(vendors.url)


@pytest.mark.django_db
def test_rolled_back_and_unfinished_blocks_are_not_captured(vendors: Sandbox) -> None:
    with capture_events() as events:
        with pytest.raises(ZeroDivisionError):
            _rolled_back("order.cancelled", user_id=1)
        with transaction.atomic():
            track("order.placed", user_id=1)
            assert events.names == []  # not committed yet
        assert events.names == ["order.placed"]
        events.assert_not_tracked("order.cancelled")
    assert vendors.requests() == []


@pytest.mark.django_db(transaction=True)
def test_committed_events_are_taken_by_the_capture_backend_and_marked_not_sent(
    vendors: Sandbox,
) -> None:
    """With real commits the ``capture`` backend takes them on commit, though the
    settings say ``sync``, and marks their deliveries skipped; a rollback leaves none."""
    with capture_events() as events:
        kept = track("order.placed", {"order": "A-1"}, identity=VISITOR)
        with pytest.raises(ZeroDivisionError):
            _rolled_back("order.cancelled", identity=VISITOR)
        assert kept is not None
        assert [event.id for event in captured._events] == [kept.id]  # taken on commit
        assert events.names == ["order.placed"]
    statuses = set(Delivery.objects.filter(event_id=kept.id).values_list("status", "last_error"))
    assert statuses == {(Delivery.Status.SKIPPED, CAPTURED)}
    assert vendors.requests() == []


@pytest.mark.django_db
def test_skipped_vendors_and_identify_calls_are_captured_with_their_reason(
    vendors: Sandbox,
) -> None:
    with capture_events() as events:
        track("product.viewed", {"product": "SKU-1"}, anonymous_id="anon-1")
        identify(user_id=7, traits={"email": "ada@example.com"}, identity={"session": "s-7"})
    viewed = events.assert_tracked("product.viewed")
    assert "hellotext" in viewed.skipped  # no Hellotext profile or session
    with pytest.raises(AssertionError, match="not sent to hellotext: skipped"):
        viewed.payload("hellotext")
    call = events.assert_identified(traits={"email": "ada@example.com"}, user_id=7)
    assert call.kind == "identify"
    assert call.payload("browsee")["traits"]["email"] == "ada@example.com"
    assert vendors.requests() == []


@pytest.mark.django_db
def test_each_capture_starts_empty_and_events_outside_it_are_not_captured(
    vendors: Sandbox,
) -> None:
    track("before", user_id=1)
    with capture_events() as events:
        track("inside", user_id=1)
        assert events.names == ["inside"]
    track("after", user_id=1)
    assert captured.names == ["inside"]
    with capture_events() as events:
        assert events == []
        track("again", user_id=1)
        events.clear()
        assert len(events) == 0


# -- assertions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_failure_messages_list_what_was_tracked_and_why_it_did_not_match(
    vendors: Sandbox,
) -> None:
    with capture_events() as events:
        track("product.viewed", {"sku": "X"}, user_id=42)
        track("product.purchased", {"sku": "Y", "amount": 10}, user_id=42)

        with pytest.raises(AssertionError) as failure:
            assert_tracked("product.purchased", properties={"sku": "X"}, vendor="hackle")
        message = str(failure.value)
        assert message.startswith(
            "expected at least one 'product.purchased' with properties "
            '{"sku": "X"} sent to hackle, found 0.\nTracked (2):\n'
        )
        assert '1. product.viewed {"sku": "X"} [user_id=42] -> hackle, browsee, primedata' in (
            message
        )
        assert "skipped: hellotext (" in message
        assert '2. product.purchased {"sku": "Y", "amount": 10}' in message
        assert "does not match: properties['sku'] is 'Y', not 'X'" in message

        with pytest.raises(AssertionError, match=r"expected exactly 2 'product.viewed', found 1"):
            events.assert_tracked("product.viewed", count=2)
        with pytest.raises(AssertionError, match="not sent to hellotext: skipped"):
            events.assert_tracked("product.viewed", vendor="hellotext")
        with pytest.raises(AssertionError, match="user_id is '42', not '7'"):
            events.assert_tracked("product.viewed", user_id=7)
        with pytest.raises(AssertionError, match=r"expected no 'product.viewed', found 1:\n"):
            events.assert_not_tracked("product.viewed")
        with pytest.raises(TypeError, match="unexpected keyword 'userid'"):
            events.assert_tracked("product.viewed", userid=42)
        assert events.tracked(properties={"sku": "X"}) == [events[0]]
        events.assert_not_tracked("product.viewed", user_id=7)
        with pytest.raises(AssertionError, match=r"expected no event, found 2:\n"):
            events.assert_not_tracked()
        with pytest.raises(AssertionError, match="expected at least one identify\\(\\) call"):
            events.assert_identified(user_id=42)


@pytest.mark.django_db
def test_failure_with_nothing_tracked_says_what_is_captured() -> None:
    with capture_events() as events, pytest.raises(AssertionError) as failure:
        events.assert_tracked("order.placed")
    assert "Nothing was tracked since the capture started" in str(failure.value)


# -- no HTTP ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_send_event_sync_sends_nothing_while_blocked(
    vendors: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_events() as events, pytest.raises(CommandError) as failure:
        call_command("send_event", "order.placed", "--user-id", "7", "--sync")
    assert failure.value.returncode == 2
    output = capsys.readouterr().out
    for vendor in ("hackle", "browsee", "primedata"):
        assert f"{vendor}: skipped: {BLOCKED}" in output
    assert events.names == ["order.placed"]
    assert vendors.requests() == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_drain_sends_nothing_while_blocked(vendors: Sandbox, settings: Settings) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "DELIVERY": "worker"}
    track("order.placed", {"order": "A-1"}, identity=VISITOR)
    with block_http() as refused:
        stats = sender.drain()
    assert sorted(request.vendor for request in refused) == sorted(VENDORS)
    assert stats.delivered == 0
    # Counted as skipped, not as failed requests: nothing went out.
    assert (stats.skipped, stats.failed, stats.requests) == (len(VENDORS), 0, 0)
    skipped = len(VENDORS)
    assert stats_line(stats) == f"delivered 0, retried 0, failed 0 (0 requests); skipped {skipped}"
    rows = set(Delivery.objects.values_list("status", "last_error", "attempts"))
    assert rows == {(Delivery.Status.SKIPPED, BLOCKED, 0)}
    assert http.interceptor is None
    assert vendors.requests() == []


@pytest.mark.django_db(transaction=True)
def test_block_http_setting_blocks_a_whole_suite(vendors: Sandbox, settings: Settings) -> None:
    settings.EVENTTRACK = {**settings.EVENTTRACK, "BLOCK_HTTP": True}
    track("order.placed", {"order": "A-1"}, identity=VISITOR)  # DELIVERY is sync: it tries
    rows = set(Delivery.objects.values_list("status", "last_error"))
    assert rows == {(Delivery.Status.SKIPPED, http.BLOCKED_BY_SETTING)}
    assert vendors.requests() == []


# -- the TestCase mixin ----------------------------------------------------------------------


@override_settings(
    EVENTTRACK={
        "DELIVERY": "sync",
        "VENDORS": {"hackle": {"API_KEY": "test-key", "API_URL": "http://127.0.0.1:9"}},
    }
)
class MixinTests(EventTrackTestMixin, TestCase):
    """A plain TestCase: no captureOnCommitCallbacks, yet tracked events are seen."""

    def test_assert_tracked_in_a_plain_test_case(self) -> None:
        assert len(self.tracked_events) == 0
        track("order.placed", {"order": "A-1"}, user_id=5)
        event = self.assertTracked("order.placed", properties={"order": "A-1"}, vendor="hackle")
        assert event.payload("hackle")["event"]["key"] == "order.placed"
        self.assertNotTracked("order.shipped")
        assert http.interceptor is not None  # HTTP blocked during the test

    def test_each_test_starts_empty_and_rollbacks_are_not_captured(self) -> None:
        assert len(self.tracked_events) == 0
        with pytest.raises(ZeroDivisionError):
            _rolled_back("order.placed", user_id=5)
        self.assertNotTracked()


# -- the pytest plugin -----------------------------------------------------------------------

EXAMPLE_TESTS = """
import pytest
from django.db import transaction
from django_eventtrack import track


@pytest.mark.django_db
def test_order_placed(tracked_events):
    track("order.placed", {"order": "A-1", "amount": 89.9}, user_id=1)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        track("order.cancelled", user_id=1)
        1 / 0
    event = tracked_events.assert_tracked("order.placed", properties={"order": "A-1"}, user_id=1)
    assert event.payload("hackle")["event"]["key"] == "order.placed"
    tracked_events.assert_not_tracked("order.cancelled")


@pytest.mark.django_db(transaction=True)
def test_committed(tracked_events):
    track("order.placed", {"order": "A-2"}, user_id=1)
    tracked_events.assert_tracked("order.placed", vendor="hackle")


@pytest.mark.django_db
def test_fails_readably(tracked_events):
    track("order.placed", {"order": "A-3"}, user_id=1)
    tracked_events.assert_tracked("order.shipped")
"""

SETTINGS = """
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django_eventtrack"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
EVENTTRACK = {"DELIVERY": "sync"}
"""


def _run_pytest(
    tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("EVENTTRACK_", "DJANGO_"))
    }
    environment |= {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO), **env}
    plugin = "django_eventtrack.testing.pytest_plugin"
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", plugin, "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pytest_fixture_in_a_users_project(tmp_path: Path, sandbox: Sandbox) -> None:
    (tmp_path / "user_settings.py").write_text(SETTINGS)
    (tmp_path / "test_shop.py").write_text(textwrap.dedent(EXAMPLE_TESTS))
    result = _run_pytest(
        tmp_path,
        {**sandbox.env(), "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
        "-p",
        "pytest_django.plugin",
        "--ds",
        "user_settings",
    )
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    assert "expected at least one 'order.shipped', found 0." in result.stdout
    assert '1. order.placed {"order": "A-3"} [user_id=1] -> hackle, browsee, primedata' in (
        result.stdout
    )
    assert sandbox.requests() == []


def test_pytest_plugin_loads_without_django(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    result = _run_pytest(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_an_open_transaction_of_the_code_under_test_is_not_captured_before_it_commits(
    vendors: Sandbox,
) -> None:
    """From autocommit (a TransactionTestCase) the outermost block has no savepoint: the
    capture sees it end all the same."""
    with capture_events() as events:
        with transaction.atomic():
            track("order.placed", user_id=1)
            with transaction.atomic():
                track("order.shipped", user_id=1)
            assert events.names == []  # not committed yet
        assert events.names == ["order.placed", "order.shipped"]
    assert vendors.requests() == []
