"""Shared fixtures: a clean configuration per test, a real vendor sandbox on loopback and the
library configured on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pytest_django import Settings

from django_eventtrack import conf
from django_eventtrack.delivery import flow, http
from django_eventtrack.outbox import vendor_profiles
from django_eventtrack.sandbox import Sandbox
from tests.settings import TEST_ADAPTERS

# Property-based tests (tests/test_fuzz.py) are bounded and reproducible: the same
# examples on every run and every machine, each allowed a generous deadline for slow CI.
# EVENTTRACK_TEST_HYPOTHESIS_PROFILE=thorough explores more (and new) examples locally.
hypothesis_settings.register_profile(
    "ci",
    max_examples=120,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile(os.environ.get("EVENTTRACK_TEST_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _clean_eventtrack_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees EVENTTRACK_* variables it did not set, nor a stale cached config or
    vendor profiles another test's database held."""
    for name in list(os.environ):
        if name.startswith("EVENTTRACK_") and not name.startswith("EVENTTRACK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EVENTTRACK_ADAPTERS", ",".join(TEST_ADAPTERS))
    conf.reload()
    vendor_profiles.profiles.reset()
    yield
    conf.reload()
    vendor_profiles.profiles.reset()


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[Sandbox]:
    """One sandbox for the session. Its PrimeData has every event type registered (``*``):
    the tests about PrimeData's schemas start from none (``primedata_schemas``)."""
    with Sandbox(options={"primedata": {"aliases": ["*"]}}) as server:
        yield server
    http.close_sessions()


@pytest.fixture
def sandbox(_sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The loopback vendor sandbox, emptied of records and faults for this test."""
    _sandbox_server.reset()
    yield _sandbox_server
    _sandbox_server.reset()


@pytest.fixture
def vendors(settings: Settings, sandbox: Sandbox) -> Sandbox:
    """Every vendor of the registry configured in settings and pointed at the sandbox."""
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "sync"}
    return sandbox


@pytest.fixture
def closed_breaker() -> Iterator[None]:
    """The senders' circuit breaker closed before and after the test (it is per process)."""
    flow.breaker.reset()
    yield
    flow.breaker.reset()


@pytest.fixture
def configure(settings: Settings, sandbox: Sandbox, transactional_db: None) -> Any:
    """Like ``vendors``, with ``vendor_options`` per vendor and top-level ``options``: call
    it to configure; a transactional database (the sender commits) and a closed circuit
    breaker."""

    def apply(vendor_options: dict[str, dict[str, Any]] | None = None, **options: Any) -> Sandbox:
        vendor_settings: dict[str, dict[str, Any]] = sandbox.vendor_settings()
        for vendor, extra in (vendor_options or {}).items():
            vendor_settings[vendor].update(extra)
        settings.EVENTTRACK = {"VENDORS": vendor_settings, "DELIVERY": "sync", **options}
        return sandbox

    flow.breaker.reset()
    yield apply
    flow.breaker.reset()
