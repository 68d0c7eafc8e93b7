"""System checks: what ``manage.py check`` says about each kind of misconfiguration."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.core.checks import CheckMessage, run_checks
from django.db import connections
from pytest_django import Settings

from django_eventtrack import checks
from django_eventtrack.web.middleware import EventTrackMiddleware

SECRET = "hk-secret-value"
HACKLE = {"API_KEY": SECRET}


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id for message in messages if message.id]


def eventtrack_messages() -> list[CheckMessage]:
    return run_checks(tags=[checks.TAG])


@pytest.fixture
def uwsgi(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for the module uWSGI embeds in its workers."""
    module = types.ModuleType("uwsgi")
    module.opt = {}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def test_checks_are_registered_and_a_configuration_without_vendors_warns() -> None:
    messages = eventtrack_messages()
    assert ids(messages) == ["eventtrack.W001"]
    assert "No vendor is active" in messages[0].msg


def test_a_sound_configuration_passes(settings: Settings) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "worker"}
    assert eventtrack_messages() == []


@pytest.mark.parametrize(
    ("eventtrack", "message"),
    [
        ({"VENDORS": {"segment": {"API_KEY": SECRET}}}, "unknown vendors ['segment']"),
        ({"VENDORS": {"hackle": {**HACKLE, "APIKEY": SECRET}}}, "unknown keys ['APIKEY']"),
        ({"DELIVER": "thread"}, "unknown keys ['DELIVER']"),
        (
            {"VENDORS": {"primedata": {"CLIENT_ID": SECRET}}},
            "PrimeData is half configured: CLIENT_ID is set but ACCESS_TOKEN is not",
        ),
        ({"VENDORS": {"hackle": {**HACKLE, "API_URL": "ftp://x"}}}, "must be an http(s) URL"),
        ({"VENDORS": {"hackle": {**HACKLE, "TIMEOUT": "soon"}}}, "must be a number of seconds"),
        ({"VENDORS": {"hackle": {"API_KEY": "hk-secret\nvalue"}}}, "contains a control character"),
        ({"VENDORS": {1: {}, "x": {}}}, "EVENTTRACK could not be read (TypeError)"),
    ],
)
def test_a_configuration_error_is_one_error_without_the_secret(
    settings: Settings, eventtrack: dict[str, Any], message: str
) -> None:
    settings.EVENTTRACK = eventtrack
    messages = eventtrack_messages()
    assert ids(messages) == ["eventtrack.E001"]  # the other checks stay quiet
    assert message in messages[0].msg
    assert "secret" not in messages[0].msg


def test_a_malformed_environment_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTTRACK_HACKLE_API_KEY", SECRET)
    monkeypatch.setenv("EVENTTRACK_HACKLE_MAX_ATTEMPTS", "many")
    [error] = eventtrack_messages()
    assert error.id == "eventtrack.E001"
    assert "EVENTTRACK_HACKLE_MAX_ATTEMPTS" in error.msg


def test_an_unknown_delivery_backend_is_an_error(settings: Settings) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "rabbit.Backend"}
    [error] = eventtrack_messages()
    assert error.id == "eventtrack.E002"
    assert "'rabbit.Backend'" in error.msg


def test_credentials_in_api_url_are_an_error_that_does_not_echo_them(
    settings: Settings,
) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": {**HACKLE, "API_URL": "http://user:pass-word@api.example.com"}},
        "DELIVERY": "worker",
    }
    [error] = eventtrack_messages()
    assert error.id == "eventtrack.E001"
    assert "must not contain credentials" in error.msg
    assert "pass-word" not in error.msg


@pytest.mark.parametrize(
    ("api_url", "debug", "expected"),
    [
        ("http://api.example.com", False, ["eventtrack.E003"]),
        ("http://api.example.com", True, []),
        ("https://api.example.com", False, []),
        ("http://127.0.0.1:8900/hackle", False, []),
        ("http://localhost:8900", False, []),
        ("http://[::1]:8900", False, []),
    ],
)
def test_plain_http_needs_loopback_or_debug(
    settings: Settings, api_url: str, debug: bool, expected: list[str]
) -> None:
    settings.DEBUG = debug
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": {**HACKLE, "API_URL": api_url}},
        "DELIVERY": "worker",
    }
    messages = eventtrack_messages()
    assert ids(messages) == expected
    for message in messages:
        assert 'EVENTTRACK["VENDORS"]["hackle"]["API_URL"]' in message.msg
        assert "api.example.com" in message.msg
        assert "pass-word" not in message.msg


def test_an_inactive_vendor_url_is_not_checked(settings: Settings) -> None:
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": HACKLE, "browsee": {"API_URL": "http://api.example.com"}},
        "DELIVERY": "worker",
    }
    assert eventtrack_messages() == []


@pytest.mark.parametrize(
    ("options", "warns"),
    [
        ({}, True),
        ({"enable-threads": False}, True),
        ({"enable-threads": b"false"}, True),
        ({"threads": b"1"}, True),
        ({"enable-threads": True}, False),
        ({"enable-threads": b"true"}, False),
        ({"threads": b"4"}, False),
    ],
)
def test_thread_delivery_under_uwsgi_needs_threads(
    settings: Settings, uwsgi: types.ModuleType, options: dict[str, object], warns: bool
) -> None:
    uwsgi.opt = options  # type: ignore[attr-defined]
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "thread"}
    assert ids(eventtrack_messages()) == (["eventtrack.W002"] if warns else [])


@pytest.mark.usefixtures("uwsgi")
def test_other_deliveries_do_not_care_about_uwsgi_threads(settings: Settings) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "worker"}
    assert eventtrack_messages() == []


@pytest.mark.parametrize(
    ("name", "warns"),
    [
        (":memory:", True),
        ("file:memorydb?mode=memory&cache=shared", True),
        ("eventtrack.sqlite3", False),
    ],
)
def test_thread_delivery_cannot_share_an_in_memory_sqlite_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, warns: bool
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict, "NAME", name)
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "thread"}
    assert ids(eventtrack_messages()) == (["eventtrack.W003"] if warns else [])


def test_an_identity_error_is_reported_by_check_not_only_by_the_middleware(
    settings: Settings,
) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "IDENTITY": {"USER_ID": "user id"}}
    [error] = eventtrack_messages()
    assert error.id == "eventtrack.E001"
    assert 'EVENTTRACK["IDENTITY"]["USER_ID"] must be \'pk\'' in error.msg


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("EVENTTRACK_HACKLE_APIKEY", "Did you mean EVENTTRACK_HACKLE_API_KEY?"),
        ("EVENTTRACK_HELLOTEXT_TOKEN", "Did you mean EVENTTRACK_HELLOTEXT_API_TOKEN?"),
        ("EVENTTRACK_DELIVERY_MODE", "Did you mean EVENTTRACK_DELIVERY?"),
        ("EVENTTRACK_SHUTDOWN_TIMEOUTS", "Did you mean EVENTTRACK_SHUTDOWN_TIMEOUT?"),
        ("EVENTTRACK_XYZ", "see docs/settings.md"),
    ],
)
def test_an_unknown_environment_variable_warns_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, hint: str
) -> None:
    monkeypatch.setenv("EVENTTRACK_HACKLE_API_KEY", SECRET)
    monkeypatch.setenv(variable, SECRET)
    [warning] = eventtrack_messages()
    assert warning.id == "eventtrack.W006"
    assert f"Environment variable {variable} is not a django-eventtrack setting" in warning.msg
    assert warning.hint is not None
    assert hint in warning.hint
    assert SECRET not in f"{warning.msg} {warning.hint}"


def test_known_environment_variables_and_test_suite_ones_do_not_warn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "EVENTTRACK_PRIMEDATA_CLIENT_ID": "client",
        "EVENTTRACK_PRIMEDATA_ACCESS_TOKEN": SECRET,
        "EVENTTRACK_PRIMEDATA_EVENTS": "order.placed",
        "EVENTTRACK_DELIVERY": "worker",
        "EVENTTRACK_SHUTDOWN_TIMEOUT": "3",
        "EVENTTRACK_TEST_SOMETHING": "ours",
    }.items():
        monkeypatch.setenv(name, value)
    assert eventtrack_messages() == []


SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"
OURS = "django_eventtrack.middleware.EventTrackMiddleware"


class ProjectMiddleware(EventTrackMiddleware):
    """A project's subclass counts as the middleware it extends."""


@pytest.mark.parametrize(
    ("middleware", "after"),
    [
        ([SESSIONS, AUTHENTICATION, OURS], []),
        ([OURS], []),  # without sessions or auth it works with what it has
        ([OURS, SESSIONS, AUTHENTICATION], ["SessionMiddleware", "AuthenticationMiddleware"]),
        ([SESSIONS, OURS, AUTHENTICATION], ["AuthenticationMiddleware"]),
        ([SESSIONS, "tests.test_checks.ProjectMiddleware", AUTHENTICATION], ["Authentication"]),
        (["no.such.Middleware", SESSIONS, AUTHENTICATION, OURS], []),
    ],
)
def test_the_middleware_must_come_after_sessions_and_authentication(
    settings: Settings, middleware: list[str], after: list[str]
) -> None:
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "worker"}
    settings.MIDDLEWARE = middleware
    errors = eventtrack_messages()
    assert ids(errors) == ["eventtrack.E004"] * len(after)
    for error, name in zip(errors, after, strict=True):
        assert "comes before django.contrib" in error.msg
        assert name in error.msg
        assert error.hint is not None
        assert error.hint.startswith("Move django_eventtrack.middleware.EventTrackMiddleware after")


@pytest.mark.parametrize(
    ("options", "delivery", "missing"),
    [
        ({}, "thread", ['"timeout": 20', '"transaction_mode": "IMMEDIATE"']),
        ({"timeout": 20}, "thread", ['"transaction_mode": "IMMEDIATE"']),
        ({"transaction_mode": "DEFERRED"}, "sync", ['"timeout": 20']),
        ({"timeout": 20, "transaction_mode": "IMMEDIATE"}, "thread", []),
        ({}, "worker", []),  # the web process only writes in its own transactions
    ],
)
def test_sqlite_without_busy_timeout_and_immediate_transactions_warns(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    delivery: str,
    missing: list[str],
) -> None:
    options = {**options, "init_command": checks.SQLITE_INIT_COMMAND}  # W007's part
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", options)
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": delivery}
    messages = eventtrack_messages()
    assert ids(messages) == (["eventtrack.W005"] if missing else [])
    if missing:
        for text in missing:
            assert text in messages[0].msg
        assert f"DELIVERY {delivery!r}" in messages[0].msg
        assert messages[0].hint is not None
        assert 'DATABASES["default"]["OPTIONS"]' in messages[0].hint


@pytest.mark.parametrize(
    ("init_command", "warns"),
    [
        ("", True),
        ("PRAGMA journal_mode=WAL;", True),  # every commit still waits for the disk
        ("PRAGMA synchronous=NORMAL", True),
        (checks.SQLITE_INIT_COMMAND, False),
        ("pragma journal_mode = wal; pragma synchronous = 1", False),
    ],
)
def test_sqlite_without_wal_and_normal_synchronous_warns_whatever_the_delivery(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, init_command: str, warns: bool
) -> None:
    options = {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": init_command}
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", options)
    settings.EVENTTRACK = {"VENDORS": {"hackle": HACKLE}, "DELIVERY": "worker"}
    messages = eventtrack_messages()
    assert ids(messages) == (["eventtrack.W007"] if warns else [])
    if warns:
        assert messages[0].hint is not None
        assert checks.SQLITE_INIT_COMMAND in messages[0].hint
