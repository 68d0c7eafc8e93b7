"""Every vendor adapter over real loopback HTTP against the sandbox, for every documented answer."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from pytest_django import Settings

from django_eventtrack.conf import get_config
from django_eventtrack.core.event import Identity, TrackedEvent
from django_eventtrack.delivery import http
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import OutcomeKind, VendorAdapter

VENDORS = sorted(get_config().adapters)
IDENTITY = Identity(user_id="u-7", anonymous_id="a-1", profile="P1", session="S1", device_id="d-1")

Send = Callable[..., http.Attempt]


@pytest.fixture
def send(vendors: Sandbox) -> Send:
    """Send one purchase to ``vendor`` through the real HTTP layer."""

    def send_one(vendor: str, **properties: object) -> http.Attempt:
        adapter: VendorAdapter = get_config().adapter(vendor)
        vendors.state("hellotext").add_profile("P1")
        product = {"reference": "vxqQJ3Yg", "name": "Tee"}
        event = TrackedEvent.create(
            "product.purchased", {"product": product, **properties}, identity=IDENTITY
        )
        return http.send(adapter, adapter.build_request([event]))

    return send_one


@pytest.mark.parametrize("vendor", VENDORS)
def test_success(send: Send, vendors: Sandbox, vendor: str) -> None:
    attempt = send(vendor)
    assert attempt.outcome.kind is OutcomeKind.DELIVERED
    assert attempt.outcome.http_status == 200
    [record] = vendors.requests(vendor)
    assert record.status == 200
    assert record.headers["user-agent"].startswith("django-eventtrack/")
    assert record.headers["content-type"] == "application/json"


@pytest.mark.parametrize("vendor", ["hellotext", "primedata"])
def test_legacy_success_answers_are_success(send: Send, vendors: Sandbox, vendor: str) -> None:
    vendors.set_legacy(vendor, True)
    attempt = send(vendor)
    assert attempt.outcome.kind is OutcomeKind.DELIVERED
    assert vendors.requests(vendor)[0].status == (201 if vendor == "hellotext" else 200)


@pytest.mark.parametrize("vendor", VENDORS)
def test_wrong_credentials_fail_for_good(settings: Settings, sandbox: Sandbox, vendor: str) -> None:
    vendor_settings = sandbox.vendor_settings()
    secret_key = next(key for key in vendor_settings[vendor] if key != "API_URL")
    vendor_settings[vendor][secret_key] = "not-the-right-secret"
    settings.EVENTTRACK = {"VENDORS": vendor_settings}
    adapter = get_config().adapter(vendor)
    event = TrackedEvent.create("product.purchased", identity=IDENTITY)
    attempt = http.send(adapter, adapter.build_request([event]))
    assert attempt.outcome.kind is OutcomeKind.FAILED
    assert attempt.outcome.http_status in {400, 401}
    assert "not-the-right-secret" not in attempt.outcome.message


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_fail_for_good_with_the_vendor_message(
    send: Send, vendors: Sandbox, vendor: str, status: int
) -> None:
    vendors.inject(vendor, status=status, body={"message": "refused by sandbox"})
    attempt = send(vendor)
    assert attempt.outcome.kind is OutcomeKind.FAILED
    assert attempt.outcome.http_status == status
    assert attempt.outcome.message.startswith(f"HTTP {status}")


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(send: Send, vendors: Sandbox, vendor: str, status: int) -> None:
    vendors.inject(vendor, status=status)
    assert send(vendor).outcome.kind is OutcomeKind.RETRY
    assert send(vendor).outcome.kind is OutcomeKind.DELIVERED  # the fault was for one request


@pytest.mark.parametrize("vendor", VENDORS)
def test_rate_limit_honours_retry_after(send: Send, vendors: Sandbox, vendor: str) -> None:
    vendors.inject(vendor, status=429, retry_after="7")
    outcome = send(vendor).outcome
    assert (outcome.kind, outcome.http_status, outcome.retry_after) == (OutcomeKind.RETRY, 429, 7.0)
    vendors.inject(vendor, status=429)
    assert send(vendor).outcome.retry_after is None


@pytest.mark.parametrize("vendor", VENDORS)
def test_read_timeout_is_retryable(settings: Settings, sandbox: Sandbox, vendor: str) -> None:
    vendor_settings = sandbox.vendor_settings()
    vendor_settings[vendor]["TIMEOUT"] = 0.2  # type: ignore[assignment]
    settings.EVENTTRACK = {"VENDORS": vendor_settings}
    sandbox.inject(vendor, delay=0.6)
    adapter = get_config().adapter(vendor)
    attempt = http.send(
        adapter, adapter.build_request([TrackedEvent.create("a.b", identity=IDENTITY)])
    )
    assert attempt.outcome.kind is OutcomeKind.RETRY
    assert attempt.outcome.message.startswith("read timeout")
    assert attempt.elapsed < 0.55


@pytest.mark.parametrize("vendor", VENDORS)
def test_dropped_connection_is_retryable(send: Send, vendors: Sandbox, vendor: str) -> None:
    vendors.inject(vendor, drop=True)
    outcome = send(vendor).outcome
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.message.startswith("connection error")


def test_connection_refused_is_retryable(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EVENTTRACK = {
        "VENDORS": {"hackle": {"API_KEY": "k-secret", "API_URL": f"http://127.0.0.1:{port}"}}
    }
    adapter = get_config().adapter("hackle")
    attempt = http.send(
        adapter, adapter.build_request([TrackedEvent.create("a.b", identity=IDENTITY)])
    )
    assert attempt.outcome.kind is OutcomeKind.RETRY
    assert attempt.response is None
    assert "k-secret" not in attempt.outcome.message


def test_browsee_failure_body_in_a_200_is_a_failure(send: Send, vendors: Sandbox) -> None:
    vendors.inject(
        "browsee", status=200, body={"status": "failure", "message": "event name too long"}
    )
    outcome = send("browsee").outcome
    assert outcome.kind is OutcomeKind.FAILED
    assert "event name too long" in outcome.message


def test_sandbox_validation_errors_carry_the_vendor_words(send: Send, vendors: Sandbox) -> None:
    # Hellotext 422: the sandbox refuses a legacy key smuggled in through vendor_extra.
    adapter = get_config().adapter("hellotext")
    event = TrackedEvent.create(
        "product.purchased", identity=IDENTITY, vendor_extra={"hellotext": {"session_id": "S1"}}
    )
    outcome = http.send(adapter, adapter.build_request([event])).outcome
    assert (outcome.kind, outcome.http_status) == (OutcomeKind.FAILED, 422)
    assert "session_id" in outcome.message


def test_primedata_batch_of_500_in_one_request(vendors: Sandbox) -> None:
    adapter = get_config().adapter("primedata")
    visitor = Identity(anonymous_id="A1")  # PrimeData ties every event to a session
    events = [TrackedEvent.create("page.viewed", {"n": n}, identity=visitor) for n in range(500)]
    attempt = http.send(adapter, adapter.build_request(events))
    assert attempt.outcome.kind is OutcomeKind.DELIVERED
    [record] = vendors.requests("primedata")
    assert record.body is not None
    assert len(record.body["events"]) == 500


def test_sessions_are_pooled_per_vendor_and_rebuilt_after_fork(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = http.session_for("hackle")
    assert http.session_for("hackle") is first
    assert http.session_for("browsee") is not first
    monkeypatch.setattr(http, "_sessions_pid", -1)  # as if this process were a forked child
    assert http.session_for("hackle") is not first
