"""Shared fixtures: a clean configuration per test and a real vendor sandbox on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pytest_django import Settings

from django_eventtrack import conf, http
from django_eventtrack.sandbox import Sandbox


@pytest.fixture(autouse=True)
def _clean_eventtrack_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees EVENTTRACK_* variables it did not set, nor a stale cached config."""
    for name in list(os.environ):
        if name.startswith("EVENTTRACK_") and not name.startswith("EVENTTRACK_TEST_"):
            monkeypatch.delenv(name)
    conf.reload()
    yield
    conf.reload()


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as server:
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
    """All four vendors configured in settings and pointed at the sandbox."""
    settings.EVENTTRACK = {"VENDORS": sandbox.vendor_settings(), "DELIVERY": "sync"}
    return sandbox
