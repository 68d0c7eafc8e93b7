"""``outbox.outcomes``: how a sender's answers settle deliveries (delivered, retried with
backoff, failed), and the signals they fire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from pytest_django import Settings

from django_eventtrack import signals, track
from django_eventtrack.conf import DeliveryOptions, get_config
from django_eventtrack.models import Delivery, Event
from django_eventtrack.outbox import outcomes
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.vendors import Outcome, OutcomeKind
from tests.outbox.conftest import _claim

Status = Delivery.Status


@pytest.mark.django_db
def test_a_stale_claim_cannot_overwrite_a_newer_result(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    config = get_config()
    stale = _claim()
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    fresh = _claim()
    ok = Outcome(OutcomeKind.DELIVERED, 200)
    outcomes.record_outcome(fresh, fresh.deliveries, ok, config.vendors["hackle"], config.options)
    failed = Outcome(OutcomeKind.FAILED, 400, "HTTP 400")
    outcomes.record_outcome(
        stale, stale.deliveries, failed, config.vendors["hackle"], config.options
    )
    delivery = Delivery.objects.get(vendor="hackle")
    assert (delivery.status, delivery.attempts, delivery.claim_token) == (Status.DELIVERED, 1, None)


@pytest.mark.django_db
def test_retry_reschedules_with_backoff_and_retry_after(worker_mode: Sandbox) -> None:
    track("a.b", user_id=1)
    config = get_config()
    claim = _claim()
    before = timezone.now()
    outcome = Outcome(OutcomeKind.RETRY, 429, "HTTP 429", retry_after=30)
    outcomes.record_outcome(
        claim, claim.deliveries, outcome, config.vendors["hackle"], config.options
    )
    delivery = Delivery.objects.get(vendor="hackle")
    assert delivery.status == Status.PENDING
    assert delivery.attempts == 1
    assert delivery.last_status == 429
    assert delivery.next_attempt_at >= before + timedelta(seconds=30)
    assert delivery.claim_token is None


@pytest.mark.parametrize("attempts", [1, 2, 5, 12, 40])
def test_backoff_is_full_jitter_below_a_capped_exponential(attempts: int) -> None:
    options = DeliveryOptions(retry_backoff_base=2.0, retry_backoff_max=60.0)
    ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
    waits = [outcomes.backoff(attempts, options) for _ in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling / 2  # spread, not a constant


@pytest.mark.django_db
def test_signals_fire_for_success_and_final_failure(worker_mode: Sandbox) -> None:
    seen: list[tuple[str, str, Any]] = []

    def on_success(delivery: Delivery, outcome: Outcome, **kwargs: Any) -> None:
        seen.append(("succeeded", delivery.vendor, outcome.http_status))

    def on_failure(delivery: Delivery, outcome: Outcome, **kwargs: Any) -> None:
        seen.append(("failed", delivery.vendor, outcome.message))

    def broken(**kwargs: Any) -> None:
        raise ValueError("a receiver bug must not stop delivery")

    signals.delivery_succeeded.connect(on_success, weak=False)
    signals.delivery_failed.connect(on_failure, weak=False)
    signals.delivery_succeeded.connect(broken, weak=False)
    try:
        track("a.b", user_id=1)
        config = get_config()
        claim = _claim()
        outcomes.record_outcome(
            claim,
            claim.deliveries,
            Outcome(OutcomeKind.DELIVERED, 200),
            config.vendors["hackle"],
            config.options,
        )
        claim = _claim("browsee")
        outcomes.record_outcome(
            claim,
            claim.deliveries,
            Outcome(OutcomeKind.FAILED, 401, "HTTP 401: bad key"),
            config.vendors["browsee"],
            config.options,
        )
    finally:
        signals.delivery_succeeded.disconnect(on_success)
        signals.delivery_failed.disconnect(on_failure)
        signals.delivery_succeeded.disconnect(broken)
    assert seen == [("succeeded", "hackle", 200), ("failed", "browsee", "HTTP 401: bad key")]
    assert Delivery.objects.get(vendor="hackle").status == Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_deliveries_older_than_max_age_are_failed_unsent(
    settings: Settings, sandbox: Sandbox
) -> None:
    from django_eventtrack.delivery import sender

    browsee = sandbox.vendor_settings()["browsee"] | {"MAX_AGE": 6 * 3600}
    settings.EVENTTRACK = {"VENDORS": {"browsee": browsee}, "DELIVERY": "worker"}
    assert get_config().vendors["browsee"].max_age == 6 * 3600
    stale = track("a.b", user_id=1)
    fresh = track("a.b", user_id=2)
    assert stale is not None
    assert fresh is not None
    Event.objects.filter(pk=stale.id).update(created_at=timezone.now() - timedelta(hours=7))
    stats = sender.drain()
    assert (stats.delivered, stats.failed) == (1, 1)
    old = Delivery.objects.get(event_id=stale.id)
    assert old.status == Status.FAILED
    assert "older than MAX_AGE" in old.last_error
    assert len(sandbox.requests("browsee")) == 1
